//! The golden files of the agent snapshot format version 2 (`tests/fixtures/v2/`, written once
//! by the code of acb4dad: see its README) open with today's code, with the status they were
//! written with, and keep working against the manager that served them (`manager.state`,
//! which holds both of its signing keys; it signs with the second).
//!
//! Expected values come from what the generator did (README "Steps"), not from printing: each
//! date is a step's `now` plus a policy interval (renewal 30 d, deadline 90 d, identity
//! renewal 180 d, identity 365 d, evaluation 90 d, retries 15 min doubling).
#![cfg(feature = "manager")]

use std::fs;
use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeDelta, Utc};
use smart_agent::crypto::{ManagerSigningKey, SignatureError};
use smart_agent::manager::catalogue::{self, UCM_BASIC, UCM_CUWL, UCM_ENHANCED, UCM_ESSENTIAL};
use smart_agent::manager::Manager;
use smart_agent::status::{
    Attempt, AuthorizationStatus, EntitlementStatus, EvaluationStatus, Outcome, RegistrationStatus,
    ReservationStatus,
};
use smart_agent::wire::{decode_request, AnswerError, RequestKind};
use smart_agent::{
    Agent, AuthorizationState, Config, DeterministicRandom, Environment, EventKind, Failure,
    FailureKind, HostIdentity, ManagerPublicKey, Operation, ProductKey, Protection,
    RegistrationState, RestoreError, SendError, SnapshotError, Status, Tag, TagStatus, TimerReason,
    TransportSettings, TrustAnchor, Udi,
};

// ---------------------------------------------------------------------------------------------
// The fixtures: every file but the README, with its SHA-256, in one place
// ---------------------------------------------------------------------------------------------

#[rustfmt::skip]
const FIXTURES: &[(&str, &str)] = &[
    ("dormant-grant.snapshot", "964c1459d25a41b2591a260223fc5ec1c1ce25e285de9191955f0d51c85e5b44"),
    ("dormant-identity.snapshot", "29a9e8dd9b396f8ea9ee10f4ba59469440f2c1f0438e72b0ff01db0f97d43ad5"),
    ("evaluation.snapshot", "12408d82cf33c09a637466e16b6e5cd9863cb03bd8b5d8e583a4ebd1d9febefc"),
    ("failing-renewal.snapshot", "5d544324ec342280070876031435e8688821aab361c939a9acf54dd20d32fa4b"),
    ("foreign-udi.snapshot", "9dc377c6984a4d70ecb3df093302a3a08cc92eb138db65910d944d039177a678"),
    ("generate_v2.output.txt", "e2bf878aea0f03f71dc85ffa47042160dc0b2ccbcc49248afde7ce1aac5c4f18"),
    ("generate_v2.rs.txt", "1c62a6963cc8643645d3d0eee719cef7f267305df1fb36d484906708d5db03e9"),
    ("manager-key-2.pub.pem", "22b2594b2caa5d9e2576323b77ddf77de1cdadb942eb4186cbc03004771b251a"),
    ("manager-key.pk8", "27cea00cbfff9e93325d5fad4caf4621bef30059b69fe233e498c9f88d86c4f7"),
    ("manager-key.pub.pem", "99ef8aab3381992afd1a510a6f7e10cf3f39a4dbc534c1386e46de5e3c3f2167"),
    ("manager.state", "4c2c67bb3debfd3a4b566a381b2380879828f12823b2a87cf733d64d4b07f6b3"),
    ("product.key", "29691f99d340d6ea5697e6f3a7586793c801b856d78794929b1377ff5a9461bd"),
    ("registered-granted.snapshot", "6b63cd96ada0ed90287a2f87d64937a8c143a328ad7b12425373676831904810"),
    ("registered-outstanding.snapshot", "8c947de4500826f3763caaaf1af5fa92050d562d5a8ef672846167ec4217f647"),
    ("registered-sealed.snapshot", "1824b59793bf4be6c282281760acf10bf5f4b621420ba1f0bcc192c078462f97"),
];

/// The snapshots copied into the `snapshot_decoder` fuzz seeds as `golden_v2_<name>`.
const SNAPSHOTS: [&str; 8] = [
    "registered-granted",
    "registered-outstanding",
    "registered-sealed",
    "evaluation",
    "dormant-identity",
    "dormant-grant",
    "foreign-udi",
    "failing-renewal",
];

const UDI_GRANTED: &str = "PID:UCM,SN:V2GRANT1,UUID:5a1e0c5b3d2f4e6a8b7c1d0e2f3a4c01";
const UDI_OUTSTANDING: &str = "PID:UCM,SN:V2OUTST1,UUID:5a1e0c5b3d2f4e6a8b7c1d0e2f3a4c02";
const UDI_SEALED: &str = "PID:UCM,SN:V2SEAL01,UUID:5a1e0c5b3d2f4e6a8b7c1d0e2f3a4c03";
const UDI_EVALUATION: &str = "PID:UCM,SN:V2EVAL01,UUID:5a1e0c5b3d2f4e6a8b7c1d0e2f3a4c04";
const UDI_FOREIGN: &str = "PID:UCM,SN:V2FORGN1,UUID:5a1e0c5b3d2f4e6a8b7c1d0e2f3a4c05";
const UDI_GRANT_ROTATED: &str = "PID:UCM,SN:V2DGRNT1,UUID:5a1e0c5b3d2f4e6a8b7c1d0e2f3a4c06";
const UDI_FAILING: &str = "PID:UCM,SN:V2FAIL01,UUID:5a1e0c5b3d2f4e6a8b7c1d0e2f3a4c07";

const PIID_FAILING: &str = "1c6c5d1e-dcf6-4336-9141-d8cbb9278c96";
const PIID_OUTSTANDING: &str = "fc59db96-2030-41f1-a1a8-52e4013fc72e";
const PIID_SEALED: &str = "5d7fce37-de18-4fdd-a51f-caf7da64e12c";
const PIID_GRANT_ROTATED: &str = "7d1b0fbb-845e-45ec-83cb-83d1e3b4ab4a";
const PIID_GRANTED: &str = "459ce8fc-1932-4f6e-9f44-0740063e56c7";

const DEFAULT_SA: &str = "Reference Smart Account";
const DEFAULT_VA: &str = "DEFAULT";
const PARTNER_SA: &str = "Golden Partner Smart Account";
const PARTNER_VA: &str = "HCS-TENANT-2";

const TIMEOUT_MESSAGE: &str =
    "The requested operation was not successful due to a communication timeout";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v2")
}

fn fixture(name: &str) -> Vec<u8> {
    let path = fixtures().join(name);
    fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn snapshot(name: &str) -> Vec<u8> {
    fixture(&format!("{name}.snapshot"))
}

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap_or_else(|e| panic!("{rfc3339}: {e}"))
        .with_timezone(&Utc)
}

fn days(n: i64) -> TimeDelta {
    TimeDelta::days(n)
}

fn minutes(n: i64) -> TimeDelta {
    TimeDelta::minutes(n)
}

fn tag(text: &str) -> Tag {
    Tag::parse(text).unwrap()
}

fn udi(text: &str) -> Udi {
    text.parse().unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn anchor_of(pem_file: &str) -> TrustAnchor {
    let pem = String::from_utf8(fixture(pem_file)).unwrap();
    TrustAnchor::new(
        ManagerPublicKey::from_spki_pem(&pem).unwrap(),
        Environment::Production,
    )
}

/// The manager's first key: it signed every identity and every grant but one.
fn first_key() -> TrustAnchor {
    anchor_of("manager-key.pub.pem")
}

/// The key the manager rotated to: it signed the renewed grant of `dormant-grant`, and it
/// signs every answer of `manager.state`.
fn second_key() -> TrustAnchor {
    anchor_of("manager-key-2.pub.pem")
}

fn both_keys() -> Vec<TrustAnchor> {
    vec![first_key(), second_key()]
}

fn sealed() -> Protection {
    let key: [u8; 32] = fixture("product.key").try_into().unwrap();
    Protection::Sealed(ProductKey::new(key))
}

fn config(udi_text: &str, anchors: Vec<TrustAnchor>, protection: Protection) -> Config {
    Config::new(udi(udi_text), Environment::Production, anchors)
        .with_random(Box::new(DeterministicRandom::new(0x602D_1000)))
        .with_protection(protection)
}

/// Restores a golden snapshot at `now`; returns the agent and the events the restore raised.
fn restore_with(name: &str, config: Config, now: DateTime<Utc>) -> (Agent, Vec<EventKind>) {
    let mut agent =
        Agent::restore(&snapshot(name), config, now).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut events = Vec::new();
    while let Some(event) = agent.poll_event() {
        events.push(event.kind);
    }
    (agent, events)
}

/// Restores a golden snapshot at `now` trusting both manager keys; nothing is raised.
fn restore(name: &str, udi_text: &str, protection: Protection, now: DateTime<Utc>) -> Agent {
    let (agent, events) = restore_with(name, config(udi_text, both_keys(), protection), now);
    assert_eq!(events, [], "{name}");
    agent
}

/// The golden manager, as it was when the last snapshot was written.
fn golden_manager() -> Manager {
    Manager::load_state(
        &fixture("manager.state"),
        Box::new(DeterministicRandom::new(0x602D_2000)),
    )
    .unwrap()
}

/// Processes the deadlines due at `now` and runs the exchange with `manager`; returns the
/// bodies of the requests sent and the events raised.
fn step(
    agent: &mut Agent,
    manager: &mut Manager,
    now: DateTime<Utc>,
) -> (Vec<Vec<u8>>, Vec<EventKind>) {
    agent.handle_timeout(now);
    let mut sent = Vec::new();
    while let Some(tx) = agent.poll_transmit(now) {
        let answer = manager.handle(&tx.body, now);
        sent.push(tx.body);
        agent.handle_response(tx.id, Ok(answer), now);
    }
    let mut events = Vec::new();
    while let Some(event) = agent.poll_event() {
        events.push(event.kind);
    }
    (sent, events)
}

fn kinds(sent: &[Vec<u8>]) -> Vec<RequestKind> {
    sent.iter()
        .map(|body| decode_request(body, 1 << 20).unwrap().request.kind)
        .collect()
}

fn succeeded(at: DateTime<Utc>) -> Option<Attempt> {
    Some(Attempt {
        at,
        outcome: Outcome::Succeeded,
    })
}

fn timed_out(at: DateTime<Utc>) -> Option<Attempt> {
    Some(Attempt {
        at,
        outcome: Outcome::Failed {
            reason: TIMEOUT_MESSAGE.to_string(),
        },
    })
}

/// The catalogue's display name and description of a tag (what the golden grants carry).
fn catalogue_names(text: &str) -> (String, String) {
    let entry = catalogue::lookup(text).unwrap();
    (
        entry.display_name.to_string(),
        entry.description.to_string(),
    )
}

/// A declared tag; `named`: the grant in use carries the catalogue's names for it.
fn entitlement(text: &str, named: bool, count: u32, status: TagStatus) -> EntitlementStatus {
    let names = named.then(|| catalogue_names(text));
    EntitlementStatus {
        tag: tag(text),
        display_name: names.as_ref().map(|n| n.0.clone()),
        description: names.map(|n| n.1),
        count,
        version: "12.0".to_string(),
        status,
    }
}

fn unregistered() -> RegistrationStatus {
    RegistrationStatus {
        state: RegistrationState::Unregistered,
        smart_account: None,
        virtual_account: None,
        export_controlled: false,
        initial_registration: None,
        last_renewal: None,
        next_renewal: None,
        expires: None,
        next_registration_attempt: None,
    }
}

/// Registered at `at` with a 1-year identity renewed after 180 days, never renewed yet.
fn registered(account: (&str, &str), export: bool, at: DateTime<Utc>) -> RegistrationStatus {
    RegistrationStatus {
        state: RegistrationState::Registered,
        smart_account: Some(account.0.to_string()),
        virtual_account: Some(account.1.to_string()),
        export_controlled: export,
        initial_registration: succeeded(at),
        last_renewal: None,
        next_renewal: Some(at + days(180)),
        expires: Some(at + days(365)),
        next_registration_attempt: None,
    }
}

/// Authorized by the answer received at `at`: renewal 30 days later, deadline 90 days.
fn authorized(at: DateTime<Utc>) -> AuthorizationStatus {
    AuthorizationStatus {
        state: AuthorizationState::Authorized,
        since: Some(at),
        last_communication: succeeded(at),
        next_communication: Some(at + days(30)),
        deadline: Some(at + days(90)),
    }
}

fn in_evaluation() -> AuthorizationStatus {
    AuthorizationStatus {
        state: AuthorizationState::EvalMode,
        since: None,
        last_communication: None,
        next_communication: None,
        deadline: None,
    }
}

fn evaluation(in_use: bool, remaining: TimeDelta) -> EvaluationStatus {
    EvaluationStatus {
        in_use,
        remaining,
        expired_at: None,
    }
}

// ---------------------------------------------------------------------------------------------
// The files themselves
// ---------------------------------------------------------------------------------------------

#[test]
fn every_v2_fixture_file_is_present_and_unchanged() {
    let mut found: Vec<String> = fs::read_dir(fixtures())
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            assert!(
                entry.file_type().unwrap().is_file(),
                "{entry:?}: no folders"
            );
            entry.file_name().to_string_lossy().into_owned()
        })
        .filter(|name| name != "README.md")
        .collect();
    found.sort();
    let listed: Vec<String> = FIXTURES.iter().map(|(f, _)| f.to_string()).collect();
    assert_eq!(
        found, listed,
        "the v2 fixtures are never added to or removed"
    );
    for (name, sha256) in FIXTURES {
        assert_eq!(
            sha256_hex(&fixture(name)),
            *sha256,
            "{name} changed: golden files are never regenerated or edited"
        );
    }
}

#[test]
fn every_v2_golden_snapshot_is_a_version_2_container() {
    for name in SNAPSHOTS {
        let protection = match name {
            "registered-sealed" => sealed(),
            _ => Protection::Integrity,
        };
        let parts = smart_agent::snapshot::open(&snapshot(name), &protection).unwrap();
        assert_eq!(parts.version, 2, "{name}");
    }
}

#[test]
fn fuzz_seeds_of_the_v2_snapshots_are_the_golden_bytes() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/snapshot_decoder");
    for name in SNAPSHOTS {
        let seed = fs::read(corpus.join(format!("golden_v2_{name}"))).unwrap();
        assert!(
            seed == snapshot(name),
            "golden_v2_{name} differs from the fixture"
        );
    }
}

#[test]
fn v2_manager_state_holds_both_signing_keys_and_the_instances_it_served() {
    let manager = golden_manager();
    assert_eq!(manager.environment(), Environment::Production);
    assert_eq!(manager.trust_anchors(), both_keys());
    assert_eq!(
        manager.trust_anchor(),
        second_key(),
        "it signs with the second"
    );
    let first = ManagerSigningKey::from_pkcs8(&fixture("manager-key.pk8")).unwrap();
    assert_eq!(
        first.public_key(),
        &first_key().key,
        "manager-key.pk8 is the first key"
    );
    let rows: Vec<_> = manager
        .instances()
        .into_iter()
        .map(|i| {
            (
                i.piid.to_string(),
                i.udi.long_form(),
                i.virtual_account.virtual_account().to_string(),
                i.export_controlled,
                i.registered_at,
                i.last_contact,
                (i.last_usage_sequence, i.usage_reports_counted),
            )
        })
        .collect();
    let row = |piid: &str, udi: &str, va: &str, export, registered, contact, seq| {
        let (piid, udi, va) = (piid.to_string(), udi.to_string(), va.to_string());
        (piid, udi, va, export, at(registered), at(contact), seq)
    };
    assert_eq!(
        rows,
        [
            row(
                PIID_FAILING,
                UDI_FAILING,
                DEFAULT_VA,
                false,
                "2026-05-04T08:00:00Z",
                "2026-05-04T08:00:00Z",
                (Some(1), 1)
            ),
            row(
                PIID_OUTSTANDING,
                UDI_OUTSTANDING,
                DEFAULT_VA,
                false,
                "2026-06-02T10:00:00Z",
                "2026-06-04T10:01:00Z", // the report whose answer was lost
                (Some(2), 2)
            ),
            row(
                PIID_SEALED,
                UDI_SEALED,
                PARTNER_VA,
                true,
                "2026-06-03T11:00:00Z",
                "2026-06-03T11:00:00Z",
                (Some(1), 1)
            ),
            row(
                PIID_GRANT_ROTATED,
                UDI_GRANT_ROTATED,
                DEFAULT_VA,
                false,
                "2026-06-05T12:00:00Z",
                "2026-06-12T12:00:00Z", // the renewal signed by the second key
                (Some(2), 2)
            ),
            row(
                PIID_GRANTED,
                UDI_GRANTED,
                DEFAULT_VA,
                false,
                "2026-06-06T09:00:00Z",
                "2026-06-06T09:00:00Z",
                (Some(1), 1)
            ),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// registered-granted: registered and authorized, one tag at count 0
// ---------------------------------------------------------------------------------------------

/// Registered at 2026-06-06T09:00Z after 5 days of evaluation.
fn granted_status(now: DateTime<Utc>, authorization: AuthorizationStatus) -> Status {
    Status {
        at: now,
        udi: udi(UDI_GRANTED),
        registration: registered((DEFAULT_SA, DEFAULT_VA), false, at("2026-06-06T09:00:00Z")),
        authorization,
        evaluation: evaluation(false, days(85)),
        entitlements: vec![
            entitlement(UCM_ENHANCED, true, 8, TagStatus::InCompliance),
            entitlement(UCM_BASIC, true, 12, TagStatus::InCompliance),
            entitlement(UCM_ESSENTIAL, false, 0, TagStatus::Init),
        ],
        reservation: ReservationStatus::default(),
    }
}

#[test]
fn v2_registered_granted_snapshot_restores_with_its_complete_status() {
    let now = at("2026-06-20T12:00:00Z");
    let expected = granted_status(now, authorized(at("2026-06-06T09:00:00Z")));
    let renewal = (
        at("2026-07-06T09:00:00Z"),
        TimerReason::AuthorizationRenewal,
    );
    for anchors in [both_keys(), vec![first_key()]] {
        let config = config(UDI_GRANTED, anchors, Protection::Integrity);
        let (agent, events) = restore_with("registered-granted", config, now);
        assert_eq!(events, []);
        assert_eq!(agent.status(now), expected);
        assert_eq!(agent.poll_timeout(), Some(renewal));
        let host = HostIdentity::new("ucm-pub.golden.example", "192.0.2.20".parse().unwrap());
        assert_eq!(agent.host(), Some(&host.unwrap()));
        assert!(!agent.privacy() && !agent.is_subscriber());
        assert_eq!(agent.transport_settings(), &TransportSettings::Direct);
    }
}

#[test]
fn v2_registered_granted_snapshot_renews_its_authorization_with_the_golden_manager() {
    let mut manager = golden_manager();
    let now = at("2026-06-20T12:00:00Z");
    let mut agent = restore(
        "registered-granted",
        UDI_GRANTED,
        Protection::Integrity,
        now,
    );
    let due = at("2026-07-06T09:00:00Z");
    let (sent, _) = step(&mut agent, &mut manager, due);
    assert_eq!(kinds(&sent), [RequestKind::Authorize]);
    assert_eq!(agent.status(due), granted_status(due, authorized(due)));
    assert_eq!(
        agent.poll_timeout(),
        Some((
            at("2026-08-05T09:00:00Z"),
            TimerReason::AuthorizationRenewal
        ))
    );
}

// ---------------------------------------------------------------------------------------------
// registered-outstanding: an authorize request taken, no answer
// ---------------------------------------------------------------------------------------------

/// Registered at 2026-06-02T10:00Z; Enhanced 3 → 4, the report taken at 10:01 on 06-04.
fn outstanding_status(now: DateTime<Utc>, authorization: AuthorizationStatus) -> Status {
    Status {
        at: now,
        udi: udi(UDI_OUTSTANDING),
        registration: registered((DEFAULT_SA, DEFAULT_VA), false, at("2026-06-02T10:00:00Z")),
        authorization,
        evaluation: evaluation(false, days(90)),
        entitlements: vec![entitlement(UCM_ENHANCED, true, 4, TagStatus::InCompliance)],
        reservation: ReservationStatus::default(),
    }
}

#[test]
fn v2_outstanding_snapshot_restores_waiting_to_resend_its_request() {
    let now = at("2026-06-04T10:05:00Z");
    let agent = restore(
        "registered-outstanding",
        UDI_OUTSTANDING,
        Protection::Integrity,
        now,
    );
    // The old grant (Enhanced 3) still names the tag; the request is owed, so the next
    // communication is "now".
    let authorization = AuthorizationStatus {
        next_communication: Some(now),
        ..authorized(at("2026-06-02T10:00:00Z"))
    };
    assert_eq!(agent.status(now), outstanding_status(now, authorization));
    assert_eq!(
        agent.poll_timeout(),
        Some((at("2026-06-04T10:01:00Z"), TimerReason::Transmit))
    );
    assert!(agent.privacy());
}

#[test]
fn v2_outstanding_request_is_resent_and_taken_by_the_golden_manager_as_a_repeat() {
    let mut manager = golden_manager();
    let now = at("2026-06-04T10:05:00Z");
    let mut agent = restore(
        "registered-outstanding",
        UDI_OUTSTANDING,
        Protection::Integrity,
        now,
    );
    let (sent, _) = step(&mut agent, &mut manager, now);
    assert_eq!(kinds(&sent), [RequestKind::Authorize]);
    let resent = decode_request(&sent[0], 1 << 20).unwrap().request;
    assert_eq!(
        resent.piid.map(|p| p.to_string()).as_deref(),
        Some(PIID_OUTSTANDING)
    );
    let report = resent.body.as_authorize().unwrap();
    assert_eq!(report.sequence, 2, "the report keeps its number");
    let usage: Vec<(&str, u32)> = report
        .usage
        .iter()
        .map(|l| (l.tag.as_str(), l.count))
        .collect();
    assert_eq!(usage, [(UCM_ENHANCED, 4)]);
    assert_eq!(agent.status(now), outstanding_status(now, authorized(now)));
    // The manager had counted report 2 before the crash: the resend is not counted again.
    let instance = manager
        .instances()
        .into_iter()
        .find(|i| i.piid.to_string() == PIID_OUTSTANDING)
        .unwrap();
    assert_eq!(
        (instance.last_usage_sequence, instance.usage_reports_counted),
        (Some(2), 2)
    );
}

// ---------------------------------------------------------------------------------------------
// registered-sealed: sealed with product.key, in the partner account, export allowed
// ---------------------------------------------------------------------------------------------

fn sealed_status(now: DateTime<Utc>, authorization: AuthorizationStatus) -> Status {
    Status {
        at: now,
        udi: udi(UDI_SEALED),
        registration: registered((PARTNER_SA, PARTNER_VA), true, at("2026-06-03T11:00:00Z")),
        authorization,
        evaluation: evaluation(false, days(90)),
        entitlements: vec![
            entitlement(UCM_CUWL, true, 1, TagStatus::InCompliance),
            entitlement(UCM_ENHANCED, true, 5, TagStatus::InCompliance),
        ],
        reservation: ReservationStatus::default(),
    }
}

#[test]
fn v2_sealed_snapshot_restores_with_its_product_key_and_complete_status() {
    let now = at("2026-06-20T12:00:00Z");
    let agent = restore("registered-sealed", UDI_SEALED, sealed(), now);
    assert_eq!(
        agent.status(now),
        sealed_status(now, authorized(at("2026-06-03T11:00:00Z")))
    );
    assert_eq!(
        agent.poll_timeout(),
        Some((
            at("2026-07-03T11:00:00Z"),
            TimerReason::AuthorizationRenewal
        ))
    );
    let proxy = TransportSettings::proxy(
        "proxy.golden.example",
        "3128",
        Some(("golden", "proxy-secret-2")),
    );
    assert_eq!(agent.transport_settings(), &proxy.unwrap());
}

#[test]
fn v2_sealed_snapshot_does_not_open_without_its_product_key() {
    let bytes = snapshot("registered-sealed");
    let now = at("2026-06-20T12:00:00Z");
    let plain = Agent::restore(
        &bytes,
        config(UDI_SEALED, both_keys(), Protection::Integrity),
        now,
    );
    assert_eq!(
        plain.err(),
        Some(RestoreError::Snapshot(SnapshotError::ProtectionMismatch))
    );
    let other = Protection::Sealed(ProductKey::new([7; 32]));
    let wrong = Agent::restore(&bytes, config(UDI_SEALED, both_keys(), other), now);
    assert!(matches!(
        wrong.err(),
        Some(RestoreError::Snapshot(SnapshotError::Corrupt(_)))
    ));
}

#[test]
fn v2_sealed_snapshot_renews_its_authorization_and_stays_sealed() {
    let mut manager = golden_manager();
    let now = at("2026-06-20T12:00:00Z");
    let mut agent = restore("registered-sealed", UDI_SEALED, sealed(), now);
    let due = at("2026-07-03T11:00:00Z");
    let (sent, _) = step(&mut agent, &mut manager, due);
    assert_eq!(kinds(&sent), [RequestKind::Authorize]);
    assert_eq!(agent.status(due), sealed_status(due, authorized(due)));
    let config = config(UDI_SEALED, both_keys(), sealed());
    let again = Agent::restore(&agent.snapshot(), config, due).unwrap();
    assert_eq!(again.status(due), sealed_status(due, authorized(due)));
}

// ---------------------------------------------------------------------------------------------
// evaluation: never registered
// ---------------------------------------------------------------------------------------------

#[test]
fn v2_evaluation_snapshot_restores_counting_what_is_left() {
    // 80 days left when Enhanced came back into use at 2026-05-21T12:00Z; 11 days later:
    let now = at("2026-06-01T12:00:00Z");
    let agent = restore("evaluation", UDI_EVALUATION, Protection::Integrity, now);
    let expected = Status {
        at: now,
        udi: udi(UDI_EVALUATION),
        registration: unregistered(),
        authorization: in_evaluation(),
        evaluation: evaluation(true, days(69)),
        entitlements: vec![
            entitlement(UCM_ENHANCED, false, 2, TagStatus::EvalMode),
            entitlement(UCM_BASIC, false, 0, TagStatus::Init),
        ],
        reservation: ReservationStatus::default(),
    };
    assert_eq!(agent.status(now), expected);
    // The 30-day warning: 50 days after counting resumed.
    assert_eq!(
        agent.poll_timeout(),
        Some((at("2026-07-10T12:00:00Z"), TimerReason::EvaluationWarning))
    );
    let on_prem = TransportSettings::on_prem("https://ssm.golden.example:8443/SmartTransport");
    assert_eq!(agent.transport_settings(), &on_prem.unwrap());
}

#[test]
fn v2_evaluation_snapshot_runs_out_80_days_after_counting_resumed() {
    let now = at("2026-08-10T12:00:00Z");
    let agent = restore("evaluation", UDI_EVALUATION, Protection::Integrity, now);
    let status = agent.status(now);
    assert_eq!(status.authorization.state, AuthorizationState::EvalExpired);
    assert_eq!(
        status.evaluation,
        EvaluationStatus {
            in_use: false,
            remaining: TimeDelta::zero(),
            expired_at: Some(at("2026-08-09T12:00:00Z")),
        }
    );
    assert_eq!(status.entitlements[0].status, TagStatus::EvalExpired);
}

// ---------------------------------------------------------------------------------------------
// dormant-identity: registered-granted restored trusting only a key that signed none of it
// ---------------------------------------------------------------------------------------------

/// registered-granted's tags, unregistered and counting evaluation.
fn granted_tags_in_evaluation(now: DateTime<Utc>, udi_text: &str, left: TimeDelta) -> Status {
    Status {
        at: now,
        udi: udi(udi_text),
        registration: unregistered(),
        authorization: in_evaluation(),
        evaluation: evaluation(true, left),
        entitlements: vec![
            entitlement(UCM_ENHANCED, false, 8, TagStatus::EvalMode),
            entitlement(UCM_BASIC, false, 12, TagStatus::EvalMode),
            entitlement(UCM_ESSENTIAL, false, 0, TagStatus::Init),
        ],
        reservation: ReservationStatus::default(),
    }
}

/// registered-granted's registration and grant back after a restore, the exchanges started
/// over (no last communication), `left` evaluation days not in use.
fn granted_reinstated(now: DateTime<Utc>, left: TimeDelta) -> Status {
    let granted = at("2026-06-06T09:00:00Z");
    Status {
        evaluation: evaluation(false, left),
        ..granted_status(
            now,
            AuthorizationStatus {
                last_communication: None,
                ..authorized(granted)
            },
        )
    }
}

#[test]
fn v2_dormant_identity_snapshot_stays_unregistered_while_only_the_other_key_is_trusted() {
    // 85 days left at the restore of 2026-06-14T09:00Z that set the identity aside; 6 later:
    let now = at("2026-06-20T09:00:00Z");
    let config = config(UDI_GRANTED, vec![second_key()], Protection::Integrity);
    let (agent, events) = restore_with("dormant-identity", config, now);
    assert_eq!(events, [], "already dormant: nothing new to say");
    assert_eq!(
        agent.status(now),
        granted_tags_in_evaluation(now, UDI_GRANTED, days(79))
    );
    assert_eq!(
        agent.poll_timeout(),
        Some((at("2026-08-08T09:00:00Z"), TimerReason::EvaluationWarning))
    );
    let host = HostIdentity::new("ucm-pub.golden.example", "192.0.2.20".parse().unwrap());
    assert_eq!(agent.host(), Some(&host.unwrap()), "settings are kept");
}

#[test]
fn v2_dormant_identity_comes_back_registered_when_its_key_is_trusted_again() {
    let now = at("2026-06-20T09:00:00Z");
    for anchors in [vec![first_key()], both_keys()] {
        let trusting = config(UDI_GRANTED, anchors, Protection::Integrity);
        let (agent, events) = restore_with("dormant-identity", trusting, now);
        assert_eq!(events, [EventKind::IdentityReinstated]);
        // Same registration date and grant; the evaluation stopped at this restore.
        assert_eq!(agent.status(now), granted_reinstated(now, days(79)));
        assert_eq!(
            agent.poll_timeout(),
            Some((
                at("2026-07-06T09:00:00Z"),
                TimerReason::AuthorizationRenewal
            ))
        );
        // Written again, it is an ordinary registered snapshot.
        let config = config(UDI_GRANTED, vec![first_key()], Protection::Integrity);
        let mut again = Agent::restore(&agent.snapshot(), config, now).unwrap();
        assert_eq!(again.poll_event(), None);
        assert_eq!(again.status(now), granted_reinstated(now, days(79)));
    }
}

#[test]
fn v2_dormant_identity_brought_back_renews_with_the_golden_manager() {
    let mut manager = golden_manager();
    let now = at("2026-06-20T09:00:00Z");
    let config = config(UDI_GRANTED, both_keys(), Protection::Integrity);
    let (mut agent, _) = restore_with("dormant-identity", config, now);
    let due = at("2026-07-06T09:00:00Z");
    let (sent, _) = step(&mut agent, &mut manager, due);
    assert_eq!(kinds(&sent), [RequestKind::Authorize]);
    let expected = Status {
        evaluation: evaluation(false, days(79)),
        ..granted_status(due, authorized(due))
    };
    assert_eq!(agent.status(due), expected);
}

// ---------------------------------------------------------------------------------------------
// dormant-grant: the identity's key trusted, the renewed grant's (the second) not
// ---------------------------------------------------------------------------------------------

/// Registered at 2026-06-05T12:00Z (first key); grant renewed at 2026-06-12T12:00Z (second).
fn rotated_status(
    now: DateTime<Utc>,
    authorization: AuthorizationStatus,
    tags: (bool, TagStatus),
) -> Status {
    let (named, status) = tags;
    Status {
        at: now,
        udi: udi(UDI_GRANT_ROTATED),
        registration: registered((DEFAULT_SA, DEFAULT_VA), false, at("2026-06-05T12:00:00Z")),
        authorization,
        evaluation: evaluation(false, days(90)),
        entitlements: vec![
            entitlement(UCM_ENHANCED, named, 6, status),
            entitlement(UCM_BASIC, named, 2, status),
        ],
        reservation: ReservationStatus::default(),
    }
}

#[test]
fn v2_dormant_grant_snapshot_is_not_applicable_while_the_grants_key_is_not_trusted() {
    let now = at("2026-06-20T12:00:00Z");
    let config = config(UDI_GRANT_ROTATED, vec![first_key()], Protection::Integrity);
    let (agent, events) = restore_with("dormant-grant", config, now);
    assert_eq!(events, [], "already untrusted: nothing new to say");
    // The grant is kept but unused: no deadline, no names, the tags wait for a new one,
    // which is asked for at once.
    let authorization = AuthorizationStatus {
        state: AuthorizationState::NotApplicable,
        since: None,
        last_communication: succeeded(at("2026-06-12T12:00:00Z")),
        next_communication: Some(now),
        deadline: None,
    };
    assert_eq!(
        agent.status(now),
        rotated_status(now, authorization, (false, TagStatus::Waiting))
    );
    assert_eq!(
        agent.poll_timeout(),
        Some((
            at("2026-06-12T12:00:00Z"),
            TimerReason::AuthorizationRenewal
        ))
    );
}

#[test]
fn v2_dormant_grant_comes_back_authorized_when_its_key_is_trusted() {
    let now = at("2026-06-20T12:00:00Z");
    let renewed = at("2026-06-12T12:00:00Z");
    let agent = restore(
        "dormant-grant",
        UDI_GRANT_ROTATED,
        Protection::Integrity,
        now,
    );
    let expected = rotated_status(now, authorized(renewed), (true, TagStatus::InCompliance));
    assert_eq!(agent.status(now), expected);
    assert_eq!(
        agent.poll_timeout(),
        Some((
            at("2026-07-12T12:00:00Z"),
            TimerReason::AuthorizationRenewal
        ))
    );
    // Written again and restored with the first key only, it is untrusted again.
    let config = config(UDI_GRANT_ROTATED, vec![first_key()], Protection::Integrity);
    let again = Agent::restore(&agent.snapshot(), config, now).unwrap();
    assert_eq!(
        again.status(now).authorization.state,
        AuthorizationState::NotApplicable
    );
}

#[test]
fn v2_dormant_grant_renews_with_the_golden_manager_once_both_keys_are_trusted() {
    let mut manager = golden_manager();
    let now = at("2026-06-20T12:00:00Z");
    let mut agent = restore(
        "dormant-grant",
        UDI_GRANT_ROTATED,
        Protection::Integrity,
        now,
    );
    let due = at("2026-07-12T12:00:00Z");
    let (sent, _) = step(&mut agent, &mut manager, due);
    assert_eq!(kinds(&sent), [RequestKind::Authorize]);
    assert_eq!(
        agent.status(due),
        rotated_status(due, authorized(due), (true, TagStatus::InCompliance))
    );
}

#[test]
fn v2_dormant_grant_trusting_only_the_first_key_refuses_the_rotated_managers_answer() {
    let mut manager = golden_manager();
    let now = at("2026-06-20T12:00:00Z");
    let config = config(UDI_GRANT_ROTATED, vec![first_key()], Protection::Integrity);
    let (mut agent, _) = restore_with("dormant-grant", config, now);
    let (sent, events) = step(&mut agent, &mut manager, now);
    assert_eq!(kinds(&sent), [RequestKind::Authorize], "asked at once");
    let refused = Failure {
        operation: Operation::RenewAuth,
        kind: FailureKind::Rejected(AnswerError::Signature(SignatureError::Untrusted)),
    };
    assert!(
        events.iter().any(|e| matches!(
            e,
            EventKind::AuthorizationFailed { failure, .. } if *failure == refused
        )),
        "{events:?}"
    );
    assert_eq!(
        agent.status(now).authorization.state,
        AuthorizationState::NotApplicable
    );
}

// ---------------------------------------------------------------------------------------------
// foreign-udi: registered-granted restored under another UDI
// ---------------------------------------------------------------------------------------------

#[test]
fn v2_foreign_udi_snapshot_restores_unregistered_with_the_evaluation_kept() {
    // 85 days left, counting since the restore under this UDI at 2026-06-07T09:00Z.
    let now = at("2026-06-20T09:00:00Z");
    let agent = restore("foreign-udi", UDI_FOREIGN, Protection::Integrity, now);
    assert_eq!(
        agent.status(now),
        granted_tags_in_evaluation(now, UDI_FOREIGN, days(72))
    );
    assert_eq!(
        agent.poll_timeout(),
        Some((at("2026-08-01T09:00:00Z"), TimerReason::EvaluationWarning))
    );
    let host = HostIdentity::new("ucm-pub.golden.example", "192.0.2.20".parse().unwrap());
    assert_eq!(agent.host(), Some(&host.unwrap()), "settings are kept");
}

#[test]
fn v2_foreign_udi_snapshot_gives_the_kept_identity_back_under_its_own_udi() {
    let now = at("2026-06-20T09:00:00Z");
    let config = config(UDI_GRANTED, both_keys(), Protection::Integrity);
    let (agent, events) = restore_with("foreign-udi", config, now);
    assert_eq!(events, [EventKind::IdentityReinstated]);
    // 85 days at 2026-06-07T09:00Z, counted until this restore: 72 left.
    assert_eq!(agent.status(now), granted_reinstated(now, days(72)));
}

#[test]
fn v2_registered_snapshot_restored_under_another_udi_is_unregistered_with_its_evaluation() {
    let now = at("2026-06-20T12:00:00Z");
    let config = config(UDI_FOREIGN, both_keys(), Protection::Integrity);
    let (agent, events) = restore_with("registered-granted", config, now);
    assert_eq!(
        events,
        [],
        "another instance's identity is kept without an event"
    );
    assert_eq!(
        agent.status(now),
        granted_tags_in_evaluation(now, UDI_FOREIGN, days(85))
    );
}

// ---------------------------------------------------------------------------------------------
// failing-renewal: two renewals timed out, the next retry 30 minutes on
// ---------------------------------------------------------------------------------------------

/// Registered at 2026-05-04T08:00Z; renewal due 2026-06-03T08:00Z timed out, so did the retry
/// at 08:15.
fn failing_status(now: DateTime<Utc>, authorization: AuthorizationStatus) -> Status {
    Status {
        at: now,
        udi: udi(UDI_FAILING),
        registration: registered((DEFAULT_SA, DEFAULT_VA), false, at("2026-05-04T08:00:00Z")),
        authorization,
        evaluation: evaluation(false, days(90)),
        entitlements: vec![entitlement(UCM_ENHANCED, true, 3, TagStatus::InCompliance)],
        reservation: ReservationStatus::default(),
    }
}

#[test]
fn v2_failing_renewal_snapshot_restores_with_its_failure_and_backoff() {
    let now = at("2026-06-03T08:30:00Z");
    let agent = restore("failing-renewal", UDI_FAILING, Protection::Integrity, now);
    let registered_at = at("2026-05-04T08:00:00Z");
    let retry = at("2026-06-03T08:45:00Z");
    let authorization = AuthorizationStatus {
        last_communication: timed_out(at("2026-06-03T08:15:00Z")),
        next_communication: Some(retry),
        ..authorized(registered_at)
    };
    assert_eq!(agent.status(now), failing_status(now, authorization));
    assert_eq!(
        agent.poll_timeout(),
        Some((retry, TimerReason::AuthorizationRenewal))
    );
}

#[test]
fn v2_failing_renewal_keeps_its_failure_count_and_notice_across_the_restore() {
    let now = at("2026-06-03T08:30:00Z");
    let mut agent = restore("failing-renewal", UDI_FAILING, Protection::Integrity, now);
    let retry = at("2026-06-03T08:45:00Z");
    agent.handle_timeout(retry);
    let tx = agent.poll_transmit(retry).expect("the retry is due");
    agent.handle_response(tx.id, Err(SendError::Timeout), retry);
    let mut events = Vec::new();
    while let Some(event) = agent.poll_event() {
        events.push(event.kind);
    }
    // The third failure in a row: 15, 30, then 60 minutes; the communication failure was
    // already announced before the snapshot.
    let next = retry + minutes(60);
    let failure = Failure {
        operation: Operation::RenewAuth,
        kind: FailureKind::Send(SendError::Timeout),
    };
    assert_eq!(
        events,
        [EventKind::AuthorizationFailed {
            failure,
            next_attempt: Some(next),
        }]
    );
    assert_eq!(
        agent.poll_timeout(),
        Some((next, TimerReason::AuthorizationRenewal))
    );
}

#[test]
fn v2_failing_renewal_succeeds_at_its_retry_with_the_golden_manager() {
    let mut manager = golden_manager();
    let now = at("2026-06-03T08:30:00Z");
    let mut agent = restore("failing-renewal", UDI_FAILING, Protection::Integrity, now);
    let retry = at("2026-06-03T08:45:00Z");
    let (sent, events) = step(&mut agent, &mut manager, retry);
    assert_eq!(kinds(&sent), [RequestKind::Authorize]);
    assert!(
        events.contains(&EventKind::CommunicationRestored),
        "{events:?}"
    );
    assert_eq!(
        agent.status(retry),
        failing_status(retry, authorized(retry))
    );
}

// ---------------------------------------------------------------------------------------------
// Damage: every prefix and bit flip is a typed error, never a panic
// ---------------------------------------------------------------------------------------------

/// Cuts and flips `bytes` every way at `stride`, giving each damaged copy to `open`.
fn damage_each(bytes: &[u8], stride: usize, mut open: impl FnMut(&[u8])) {
    for len in (0..bytes.len()).step_by(stride) {
        open(&bytes[..len]);
    }
    for i in (0..bytes.len()).step_by(stride) {
        let mut flipped = bytes.to_vec();
        flipped[i] ^= 1 << (i % 8);
        open(&flipped);
    }
}

#[test]
fn every_prefix_and_bit_flip_of_a_v2_snapshot_is_a_typed_error() {
    let udis = [
        UDI_GRANTED,
        UDI_OUTSTANDING,
        UDI_SEALED,
        UDI_EVALUATION,
        UDI_GRANTED,
        UDI_GRANT_ROTATED,
        UDI_FOREIGN,
        UDI_FAILING,
    ];
    for (name, udi_text) in SNAPSHOTS.into_iter().zip(udis) {
        let protection = match name {
            "registered-sealed" => sealed(),
            _ => Protection::Integrity,
        };
        damage_each(&snapshot(name), 1, |damaged| {
            let restored = Agent::restore(
                damaged,
                config(udi_text, both_keys(), protection.clone()),
                at("2026-07-01T00:00:00Z"),
            );
            assert!(
                matches!(restored, Err(RestoreError::Snapshot(_))),
                "{name}: the integrity check (or the seal) refuses any damage"
            );
        });
    }
}

#[test]
fn damaged_parts_of_a_v2_snapshot_behind_a_valid_digest_never_panic() {
    // Past the integrity check: the part decoders of version 2 meet the damage (the dormant
    // registration, the kept grant, the one outstanding layout, the stored failures).
    let now = at("2026-07-01T00:00:00Z");
    for (name, udi_text, anchors) in [
        ("dormant-identity", UDI_GRANTED, both_keys()),
        ("dormant-grant", UDI_GRANT_ROTATED, vec![first_key()]),
        ("registered-outstanding", UDI_OUTSTANDING, both_keys()),
        ("failing-renewal", UDI_FAILING, both_keys()),
    ] {
        let parts = smart_agent::snapshot::open(&snapshot(name), &Protection::Integrity).unwrap();
        assert_eq!(parts.version, 2);
        let (mut refused, mut opened) = (0, 0);
        let mut try_parts = |licensing: &[u8], communication: &[u8]| {
            let damaged = smart_agent::SnapshotParts {
                version: parts.version,
                licensing: licensing.to_vec(),
                communication: communication.to_vec(),
            };
            let config = config(udi_text, anchors.clone(), Protection::Integrity);
            match Agent::from_parts(&damaged, config, now) {
                Err(RestoreError::Licensing(_) | RestoreError::Communication(_)) => refused += 1,
                Err(other) => panic!("{name}: a part's damage is the part's error, not {other}"),
                Ok(agent) => {
                    opened += 1;
                    let _ = agent.status(now);
                    let _ = agent.poll_timeout();
                }
            }
        };
        damage_each(&parts.licensing, 3, |l| try_parts(l, &parts.communication));
        damage_each(&parts.communication, 1, |c| try_parts(&parts.licensing, c));
        assert!(
            refused > 0 && opened > 0,
            "{name}: {refused} refused, {opened} opened"
        );
    }
}
