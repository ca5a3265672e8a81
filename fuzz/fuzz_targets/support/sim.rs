//! One agent and the in-process reference manager, with the invariants every exchange must
//! keep: what the stateful target (`agent_ops`) and the answer targets drive.
//!
//! Everything random is seeded ([`DeterministicRandom`]) except the manager's ECDSA
//! signatures (ring draws their nonces itself), so a run repeats but for signature bytes.

use chrono::{DateTime, TimeDelta, Utc};
use smart_agent::codes::ExportKey;
use smart_agent::crypto::ManagerSigningKey;
use smart_agent::manager::catalogue::{UCM_BASIC, UCM_ENHANCED};
use smart_agent::manager::{codes, Manager, TokenOptions};
use smart_agent::wire::{
    self, decode_request, encode_response, RequestKind, Response, ResponseStatus,
};
use smart_agent::{
    Agent, DeterministicRandom, Environment, Event, EventKind, Failure, FailureKind, Force,
    SendError, SnapshotParts, Tag, Transmit, TransmitId, Uuid,
};

use super::{config_for, now, signing_key, UDI};

/// The tags the agent may declare: two the manager has pools of, one it does not know.
pub const TAGS: [&str; 3] = [
    UCM_ENHANCED,
    UCM_BASIC,
    "regid.2099-01.com.cisco.Fuzz_Unknown,1.0_00000000-0000-4000-8000-000000000001",
];

/// The export-restricted features the agent may ask keys for (the last one is not a feature
/// name: the agent refuses it).
pub const FEATURES: [&str; 3] = [
    "CUCM_Export_Restricted_Authorization_Key",
    "Fuzz_Feature.2",
    "not a feature",
];

/// The export key ids the in-target manager issues, one per feature.
fn export_key_id(feature: &str) -> Uuid {
    let n = FEATURES.iter().position(|f| *f == feature).unwrap_or(0);
    Uuid([0xE0 + n as u8; 16])
}

/// How an answer to an export request or return comes back from the in-target manager (the
/// reference manager grants no export keys: these answers are made here, signed with its key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportAnswer {
    /// `OK`, with a key for an export request.
    Ok,
    /// A permanent refusal (`NO_KEYS_AVAILABLE`).
    NoKeys,
    /// What the reference manager answers (`NOT_SUPPORTED`, permanent).
    Reference,
    /// A failure that is retried (`INTERNAL`).
    Internal,
}

impl ExportAnswer {
    pub fn from_byte(b: u8) -> ExportAnswer {
        match b % 4 {
            0 => ExportAnswer::Ok,
            1 => ExportAnswer::NoKeys,
            2 => ExportAnswer::Reference,
            _ => ExportAnswer::Internal,
        }
    }
}

/// The failure an event reports, if it reports one.
pub fn failure(kind: &EventKind) -> Option<&Failure> {
    match kind {
        EventKind::RegistrationRetrying { failure, .. }
        | EventKind::RegistrationFailed { failure }
        | EventKind::IdentityRenewalFailed { failure, .. }
        | EventKind::ExportKeyFailed { failure, .. }
        | EventKind::AuthorizationFailed { failure, .. }
        | EventKind::DeregistrationFailed { failure }
        | EventKind::CommunicationFailure { failure } => Some(failure),
        _ => None,
    }
}

/// What became of an answer handed to the agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Not for the outstanding request: ignored.
    Ignored,
    /// Rejected by the agent (a check failed) or not delivered (a transport error).
    Failed,
    /// Taken (applied, or a refusal by the manager).
    Taken,
}

/// One agent, the reference manager it talks to, and its signing key (also used for the
/// reservation codes and export keys the manager's side issues here).
pub struct World {
    pub now: DateTime<Utc>,
    pub agent: Agent,
    pub manager: Manager,
    pub key: ManagerSigningKey,
    /// A token of the default Virtual Account, valid for ten years.
    pub token: String,
    /// The same, allowing export-controlled functionality.
    pub export_token: String,
    /// Every event the agent raised since the last [`World::take_events`].
    pub events: Vec<Event>,
}

impl World {
    /// A fresh agent (key seeds and nonces from `seed`) and a manager with pools of the first
    /// two [`TAGS`], at [`now`].
    pub fn new(seed: u64) -> World {
        let t = now();
        let mut manager = Manager::with_signing_key(
            Environment::Production,
            Box::new(DeterministicRandom::new(5)),
            signing_key(),
        )
        .expect("the manager starts");
        let va = manager.default_virtual_account();
        for (tag, count) in [(TAGS[0], 2), (TAGS[1], 10)] {
            let tag = Tag::parse(tag).expect("catalogue tags parse");
            manager
                .add_licenses(&va, &tag, count, None, None)
                .expect("the default account takes licenses");
        }
        let mut token = |export_controlled| {
            let options = TokenOptions {
                expires_after: TimeDelta::days(3650),
                max_uses: None,
                export_controlled,
            };
            manager
                .create_token(&va, options, t)
                .expect("the default account makes tokens")
                .expose()
                .to_string()
        };
        let (token, export_token) = (token(false), token(true));
        let config = config_for(UDI).with_random(Box::new(DeterministicRandom::new(seed)));
        World {
            now: t,
            agent: Agent::new(config, t).expect("the fuzz configuration is valid"),
            manager,
            key: signing_key(),
            token,
            export_token,
            events: Vec::new(),
        }
    }

    /// A world whose agent is registered and authorized (with the export token if `export`),
    /// using the first two tags.
    pub fn registered(seed: u64, export: bool) -> World {
        let mut w = World::new(seed);
        for (i, count) in [(0, 3), (1, 1)] {
            let tag = Tag::parse(TAGS[i]).expect("tags parse");
            w.agent.declare(tag.clone(), w.now);
            w.agent.set_usage(&tag, count, w.now).expect("declared");
        }
        let token = if export {
            w.export_token.clone()
        } else {
            w.token.clone()
        };
        w.agent
            .register(&token, Force::No, w.now)
            .expect("a fresh agent registers");
        w.pump();
        w.take_events();
        w
    }

    /// The licensing part.
    pub fn licensing(&self) -> Vec<u8> {
        self.agent.snapshot_parts().licensing
    }

    /// The agent's effective time: the highest time it has recorded.
    pub fn agent_time(&self) -> DateTime<Utc> {
        self.agent.status(DateTime::<Utc>::MIN_UTC).at
    }

    /// The evaluation left at the agent's own time.
    pub fn evaluation_left(&self) -> TimeDelta {
        self.agent
            .status(DateTime::<Utc>::MIN_UTC)
            .evaluation
            .remaining
    }

    pub fn take_events(&mut self) -> Vec<Event> {
        let mut out = std::mem::take(&mut self.events);
        out.extend(std::iter::from_fn(|| self.agent.poll_event()));
        out
    }

    fn collect_events(&mut self) {
        while let Some(e) = self.agent.poll_event() {
            self.events.push(e);
        }
    }

    /// The manager's answer to `tx`, as it would come back: the reference manager's, except
    /// for export requests and returns, answered as `export` says.
    pub fn genuine_answer(&mut self, tx: &Transmit, export: ExportAnswer) -> Vec<u8> {
        let exporting = matches!(
            tx.kind,
            RequestKind::ExportRequest | RequestKind::ExportReturn
        );
        if !exporting || export == ExportAnswer::Reference {
            return self.manager.handle(&tx.body, self.now);
        }
        self.export_answer(tx, export)
            .unwrap_or_else(|| self.manager.handle(&tx.body, self.now))
    }

    /// An answer to an export request or return made with the manager's key.
    fn export_answer(&self, tx: &Transmit, export: ExportAnswer) -> Option<Vec<u8>> {
        let request = decode_request(&tx.body, 1 << 20).ok()?.request;
        let feature = request.body.as_export()?.feature.clone();
        let status = match export {
            ExportAnswer::Ok | ExportAnswer::Reference => ResponseStatus::Ok,
            ExportAnswer::NoKeys => ResponseStatus::Failed {
                code: codes::NO_KEYS_AVAILABLE.into(),
                message: "No export authorization key is left".into(),
            },
            ExportAnswer::Internal => ResponseStatus::Failed {
                code: codes::INTERNAL.into(),
                message: "try again".into(),
            },
        };
        let mut documents = Vec::new();
        if request.kind == RequestKind::ExportRequest && status == ResponseStatus::Ok {
            let key = ExportKey::issue(
                export_key_id(&feature),
                &feature,
                request.piid?,
                &request.udi,
                self.now,
                Environment::Production,
                &self.key,
            )
            .ok()?;
            documents.push(key.to_string());
        }
        let response = Response {
            kind: request.kind,
            version: wire::PROTOCOL_VERSION,
            nonce: request.nonce,
            piid: request.piid,
            status,
            server_time: self.now,
            environment: Environment::Production,
        };
        let docs: Vec<&[u8]> = documents.iter().map(|d| d.as_bytes()).collect();
        encode_response(&response, &docs, &self.key).ok()
    }

    /// Hands `result` to the agent as the answer to `id` and checks what must hold: an
    /// answer for another transmission changes nothing at all; a rejected answer or a
    /// transport error changes nothing but the communication part.
    pub fn deliver(&mut self, id: TransmitId, result: Result<Vec<u8>, SendError>) -> Fate {
        let before = self.agent.snapshot_parts();
        let left = self.evaluation_left();
        let send_error = result.is_err();
        self.agent.handle_response(id, result, self.now);
        let after = self.agent.snapshot_parts();
        let events: Vec<Event> = std::iter::from_fn(|| self.agent.poll_event()).collect();
        let failed = events.iter().any(|e| {
            failure(&e.kind)
                .is_some_and(|f| matches!(f.kind, FailureKind::Rejected(_) | FailureKind::Send(_)))
        });
        self.events.extend(events);
        assert!(
            self.evaluation_left() <= left,
            "an answer gave evaluation back"
        );
        if before == after && !failed {
            return Fate::Ignored;
        }
        if failed || send_error {
            assert_eq!(
                before.licensing, after.licensing,
                "a rejected answer or a transport error changed the licensing part"
            );
            return Fate::Failed;
        }
        Fate::Taken
    }

    /// Sends everything due and feeds back the genuine answers (bounded).
    pub fn pump(&mut self) {
        for _ in 0..16 {
            let Some(tx) = self.agent.poll_transmit(self.now) else {
                break;
            };
            let answer = self.genuine_answer(&tx, ExportAnswer::Ok);
            self.deliver(tx.id, Ok(answer));
        }
        self.collect_events();
    }
}

/// The parts a product would persist, with what it knew when it persisted them.
#[derive(Clone)]
pub struct Persisted {
    pub snapshot: Vec<u8>,
    pub parts: SnapshotParts,
    pub evaluation_left: TimeDelta,
}

impl Persisted {
    pub fn of(world: &World) -> Persisted {
        let parts = world.agent.snapshot_parts();
        Persisted {
            // What `Agent::snapshot` writes (the fuzz configuration checks integrity only).
            snapshot: smart_agent::snapshot::seal(&parts, &smart_agent::Protection::Integrity),
            parts,
            evaluation_left: world.evaluation_left(),
        }
    }
}
