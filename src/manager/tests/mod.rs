//! Behaviour of the whole manager, driven like the agent drives it: signed requests in,
//! answers verified with the manager's trust anchor out. Time moves only through `now`.

mod authorization;
mod registration;
mod replay;
mod robustness;
mod state_file;
mod totals;

use chrono::{DateTime, TimeDelta, Utc};

use super::*;
use crate::crypto::{DeterministicRandom, DeviceKey};
use crate::udi::Udi;
use crate::wire::{
    decode_response, encode_request, verify_response, Answer, AuthorizeBody, Expected, Grant,
    GrantEntryContent, IdentityCertificate, RegisterBody, Request, RequestBody, UsageLine,
    PROTOCOL_VERSION,
};

fn t0() -> DateTime<Utc> {
    "2026-01-26T09:41:23Z".parse().unwrap()
}

fn days(n: i64) -> TimeDelta {
    TimeDelta::days(n)
}

fn tag(s: &str) -> Tag {
    Tag::parse(s).unwrap()
}

fn manager() -> Manager {
    Manager::new(
        Environment::Development,
        Box::new(DeterministicRandom::new(7)),
    )
    .unwrap()
}

/// A product instance as the manager sees it from outside.
struct Device {
    udi: Udi,
    key: DeviceKey,
    piid: Option<Uuid>,
    nonces: u64,
    version: u32,
    hostname: Option<String>,
}

impl Device {
    fn new(n: u8) -> Device {
        Device {
            udi: format!("PID:UCM,SN:{n},UUID:6fe83addc80240bc92dc071ac7a376{n:02x}")
                .parse()
                .unwrap(),
            key: DeviceKey::from_seed([n; 32]),
            piid: None,
            nonces: 0,
            version: PROTOCOL_VERSION,
            hostname: Some(format!("ucm-{n}.example.com")),
        }
    }

    /// A signed request and its nonce.
    fn request(&mut self, body: RequestBody, now: DateTime<Utc>) -> (Vec<u8>, String) {
        self.nonces += 1;
        let nonce = format!("{:016x}", self.nonces);
        let kind = if body.as_register().is_some() {
            RequestKind::Register
        } else if body.as_authorize().is_some() {
            RequestKind::Authorize
        } else if body == RequestBody::renew_id() {
            RequestKind::RenewId
        } else {
            RequestKind::Deregister
        };
        let request = Request {
            kind,
            version: self.version,
            nonce: nonce.clone(),
            piid: self.piid,
            udi: self.udi.clone(),
            sent_at: now,
            hostname: self.hostname.clone(),
            ip: Some("192.0.2.10".into()),
            body,
        };
        (encode_request(&request, &self.key), nonce)
    }

    fn register_body(&self, token: &Token) -> RequestBody {
        use base64::Engine as _;
        RequestBody::register(RegisterBody {
            token: token.expose().to_string(),
            public_key: crate::crypto::B64.encode(self.key.public_key()),
            force: false,
        })
    }
}

fn usage_body(sequence: u64, usage: &[(&str, u32)]) -> RequestBody {
    RequestBody::authorize(AuthorizeBody {
        sequence,
        usage: usage
            .iter()
            .map(|(tag, count)| UsageLine {
                tag: tag.to_string(),
                count: *count,
            })
            .collect(),
    })
}

/// Verifies an answer as the agent would, with the manager's current anchor only.
fn verify(m: &Manager, raw: &[u8], kind: RequestKind, nonce: &str, piid: Option<Uuid>) -> Answer {
    let parsed = decode_response(raw, MAX_REQUEST_LEN).unwrap();
    let expected = Expected { kind, nonce, piid };
    let (answer, _) =
        verify_response(&parsed, &[m.trust_anchor()], m.environment(), &expected).unwrap();
    answer
}

/// Sends `body` from `d` and verifies the answer; a new identity's piid is adopted.
fn exchange(m: &mut Manager, d: &mut Device, body: RequestBody, now: DateTime<Utc>) -> Answer {
    let (raw, nonce) = d.request(body, now);
    let kind = crate::wire::decode_request(&raw, MAX_REQUEST_LEN)
        .unwrap()
        .request
        .kind;
    let answer_bytes = m.handle(&raw, now);
    let parsed = decode_response(&answer_bytes, MAX_REQUEST_LEN).unwrap();
    assert_eq!(parsed.response.server_time, now);
    assert_eq!(parsed.response.environment, m.environment());
    let answer = verify(m, &answer_bytes, kind, &nonce, d.piid);
    if let Answer::Identity { certificate, .. } = &answer {
        d.piid = Some(certificate.piid);
    }
    answer
}

fn register(m: &mut Manager, d: &mut Device, token: &Token, now: DateTime<Utc>) -> Answer {
    let body = d.register_body(token);
    exchange(m, d, body, now)
}

fn authorize(
    m: &mut Manager,
    d: &mut Device,
    sequence: u64,
    usage: &[(&str, u32)],
    now: DateTime<Utc>,
) -> Answer {
    exchange(m, d, usage_body(sequence, usage), now)
}

fn identity(answer: Answer) -> (Vec<u8>, IdentityCertificate) {
    match answer {
        Answer::Identity { raw, certificate } => (raw, certificate),
        other => panic!("expected an identity, got {other:?}"),
    }
}

fn grant(answer: Answer) -> Grant {
    match answer {
        Answer::Grant { grant, .. } => grant,
        other => panic!("expected a grant, got {other:?}"),
    }
}

/// The content of the grant's entry for `tag`.
fn entry(grant: &Grant, tag: &str) -> GrantEntryContent {
    grant
        .entries
        .iter()
        .find(|e| e.tag == tag)
        .unwrap_or_else(|| panic!("no entry for {tag}"))
        .content
        .clone()
        .unwrap()
}

fn failure(answer: Answer) -> (String, String) {
    match answer {
        Answer::Failed { code, message } => (code, message),
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// A manager with `count` licenses of `tag` in the default account and a device registered
/// with an unlimited token.
fn registered(pools: &[(&str, u32)]) -> (Manager, Device, Token) {
    let mut m = manager();
    let va = m.default_virtual_account();
    for (t, n) in pools {
        m.add_licenses(&va, &tag(t), *n, None, None).unwrap();
    }
    let token = m.create_token(&va, TokenOptions::default(), t0()).unwrap();
    let mut d = Device::new(1);
    identity(register(&mut m, &mut d, &token, t0()));
    (m, d, token)
}
