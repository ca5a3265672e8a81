//! Answers carrying each nested document: the identity certificate (register, renewId), the
//! authorization grant (authorize) and the export authorization key (exportRequest). The
//! input is `mode | document`:
//!
//! - always, the document is put into the body of a genuine answer envelope and decoded (the
//!   decoder parses the nested document's structure): cheap, so most executions go here;
//! - with mode bit 0, it is also the answer to a real request of an agent waiting for it,
//!   in an envelope signed by the manager's key, so the agent's whole check runs: the nested
//!   signature, then its content against the request (instance, key, UDI, report, feature);
//!   with bit 1 the document is first re-signed by the manager's key (an identity or grant
//!   over its own span; an export key re-issued with the fields it parses to), so that a
//!   mutated document gets past its signature to the content checks.
//!
//! Invariants: no panic; a rejected answer leaves the licensing part byte-identical
//! ([`World::deliver`]); an accepted one survives a snapshot and restore.

use std::sync::OnceLock;

use smart_agent::codes::ExportKey;
use smart_agent::manager::Manager;
use smart_agent::wire::{
    self, decode_request, decode_response, encode_response, resign, Response, ResponseStatus,
};
use smart_agent::{Agent, DeterministicRandom, Environment, Force, Transmit, Uuid};

use super::sim::{Fate, World, FEATURES};
use super::wire::MAX_LEN;
use super::{config_for, now, signing_key, UDI};

/// Which nested document an answer carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nested {
    Identity,
    Grant,
    ExportKey,
}

impl Nested {
    /// The document's root element.
    pub fn root(self) -> &'static str {
        match self {
            Nested::Identity => "identity",
            Nested::Grant => "grant",
            Nested::ExportKey => "exportAuthorization",
        }
    }

    fn kind(self) -> wire::RequestKind {
        match self {
            Nested::Identity => wire::RequestKind::Register,
            Nested::Grant => wire::RequestKind::Authorize,
            Nested::ExportKey => wire::RequestKind::ExportRequest,
        }
    }
}

const PLACEHOLDER: &[u8] = b"@@FUZZ-DOCUMENT@@";

/// A signed `OK` answer of the right kind with [`PLACEHOLDER`] as its body, split around it.
fn template(nested: Nested) -> &'static (Vec<u8>, Vec<u8>) {
    static TEMPLATES: [OnceLock<(Vec<u8>, Vec<u8>)>; 3] =
        [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    TEMPLATES[nested as usize].get_or_init(|| {
        let response = Response {
            kind: nested.kind(),
            version: wire::PROTOCOL_VERSION,
            nonce: "00112233445566778899aabbccddeeff".into(),
            piid: Some(Uuid([0x42; 16])),
            status: ResponseStatus::Ok,
            server_time: now(),
            environment: Environment::Production,
        };
        let answer = encode_response(&response, &[PLACEHOLDER], &signing_key())
            .expect("the template answer signs");
        let at = answer
            .windows(PLACEHOLDER.len())
            .position(|w| w == PLACEHOLDER)
            .expect("the placeholder is in the body");
        (
            answer[..at].to_vec(),
            answer[at + PLACEHOLDER.len()..].to_vec(),
        )
    })
}

/// The first `<root>…</root>` element of an answer, as bytes (for the seeds).
pub fn nested(answer: &[u8], root: &str) -> Option<Vec<u8>> {
    let open = format!("<{root}>");
    let close = format!("</{root}>");
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    let start = find(answer, open.as_bytes())?;
    let end = start + find(&answer[start..], close.as_bytes())? + close.len();
    Some(answer[start..end].to_vec())
}

/// A registered and authorized agent (with the export token for export keys) and its
/// manager, as the agent's snapshot and the manager's state, made once per process.
fn registered(export: bool) -> &'static (Vec<u8>, Vec<u8>) {
    static SAVED: [OnceLock<(Vec<u8>, Vec<u8>)>; 2] = [OnceLock::new(), OnceLock::new()];
    SAVED[usize::from(export)].get_or_init(|| {
        let world = World::registered(3, export);
        (world.agent.snapshot(), world.manager.save_state())
    })
}

/// A world whose agent has just handed out the request `nested` answers, and that request.
pub fn prepare(nested: Nested) -> (World, Transmit) {
    let mut world = World::new(2);
    let t = world.now;
    match nested {
        Nested::Identity => {
            let token = world.token.clone();
            world
                .agent
                .register(&token, Force::No, t)
                .expect("a fresh agent registers");
        }
        Nested::Grant | Nested::ExportKey => {
            let export = nested == Nested::ExportKey;
            let (snapshot, state) = registered(export);
            let config = config_for(UDI).with_random(Box::new(DeterministicRandom::new(4)));
            world.agent =
                Agent::restore(snapshot, config, t).expect("the registered snapshot restores");
            world.manager = Manager::load_state(state, Box::new(DeterministicRandom::new(5)))
                .expect("the registered manager loads");
            if export {
                world
                    .agent
                    .export_request(FEATURES[0], t)
                    .expect("an export-controlled agent asks for keys");
            } else {
                world
                    .agent
                    .renew_auth(t)
                    .expect("a registered agent renews");
            }
        }
    }
    let tx = world
        .agent
        .poll_transmit(t)
        .expect("the request is due at once");
    assert_eq!(tx.kind, nested.kind());
    let _ = world.take_events();
    (world, tx)
}

/// The text of the first `<piid>` in `doc`, as a UUID.
fn piid_in(doc: &[u8]) -> Option<Uuid> {
    let text = std::str::from_utf8(doc).ok()?;
    let start = text.find("<piid>")? + "<piid>".len();
    let end = start + text[start..].find("</piid>")?;
    text[start..end].parse().ok()
}

/// `doc` signed again by the manager's key, if it is still shaped enough to be.
fn resigned(nested: Nested, doc: &[u8], world: &World) -> Option<Vec<u8>> {
    match nested {
        Nested::Identity | Nested::Grant => resign(doc, &world.key).ok(),
        Nested::ExportKey => {
            let key = ExportKey::parse(std::str::from_utf8(doc).ok()?).ok()?;
            let issued = ExportKey::issue(
                key.key_id(),
                key.feature(),
                key.piid(),
                key.udi(),
                key.issued_at(),
                key.environment(),
                &world.key,
            )
            .ok()?;
            Some(issued.to_string().into_bytes())
        }
    }
}

/// Runs one input; returns what became of the answer when it went to an agent.
pub fn answer(nested: Nested, data: &[u8]) -> Option<Fate> {
    let (&mode, doc) = data.split_first()?;
    let (head, tail) = template(nested);
    let mut wrapped = head.clone();
    wrapped.extend_from_slice(doc);
    wrapped.extend_from_slice(tail);
    let _ = decode_response(&wrapped, MAX_LEN);
    if mode & 1 == 0 {
        return None;
    }
    let (mut world, tx) = prepare(nested);
    let request = decode_request(&tx.body, MAX_LEN)
        .expect("the agent's request decodes")
        .request;
    let doc = match mode & 2 {
        0 => doc.to_vec(),
        _ => resigned(nested, doc, &world).unwrap_or_else(|| doc.to_vec()),
    };
    let piid = match nested {
        Nested::Identity => piid_in(&doc),
        Nested::Grant | Nested::ExportKey => request.piid,
    };
    let response = Response {
        kind: tx.kind,
        version: wire::PROTOCOL_VERSION,
        nonce: request.nonce,
        piid,
        status: ResponseStatus::Ok,
        server_time: world.now,
        environment: Environment::Production,
    };
    let answer = encode_response(&response, &[&doc], &world.key).ok()?;
    let fate = world.deliver(tx.id, Ok(answer));
    if fate == Fate::Taken {
        let config = config_for(UDI).with_random(Box::new(DeterministicRandom::new(8)));
        let restored = Agent::restore(&world.agent.snapshot(), config, world.now)
            .expect("an agent that took an answer restores");
        let _ = restored.status(world.now);
    }
    Some(fate)
}

/// An answer carrying an identity certificate, to a registration.
pub fn identity(data: &[u8]) {
    let _ = answer(Nested::Identity, data);
}

/// An answer carrying a grant, to an authorization.
pub fn grant(data: &[u8]) {
    let _ = answer(Nested::Grant, data);
}

/// An answer carrying an export authorization key, to an export key request.
pub fn export_key(data: &[u8]) {
    let _ = answer(Nested::ExportKey, data);
}
