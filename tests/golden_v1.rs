//! The golden files of the v1 persisted formats (`tests/fixtures/v1/`, written once by the code
//! of 16b6f5c: see its README) open with today's code, with the status they were written with,
//! and keep working against the manager state they belong to.
//!
//! Expected values come from what the generator did (README "Steps"), not from printing: each
//! date is a step's `now` plus a policy interval (renewal 30 d, deadline 90 d, identity
//! renewal 180 d, identity 365 d, evaluation 90 d).
#![cfg(feature = "manager")]

mod cli;

use std::fs;
use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeDelta, Utc};
use smart_agent::manager::catalogue::{
    self, HCS_UCM_FOUNDATION, HCS_UCM_STANDARD, UCM_BASIC, UCM_CUWL, UCM_ENHANCED, UCM_ESSENTIAL,
};
use smart_agent::manager::{codes, LicenseLine, Manager, StateDir, VirtualAccountId};
use smart_agent::status::{
    Attempt, AuthorizationStatus, EntitlementStatus, EvaluationStatus, Outcome, RegistrationStatus,
    ReservationStatus,
};
use smart_agent::wire::{decode_request, decode_response, RequestKind, ResponseStatus};
use smart_agent::{
    Agent, AuthorizationState, Config, DeterministicRandom, Environment, Force, HostIdentity,
    ManagerPublicKey, ProductKey, Protection, RegistrationState, RestoreError, SnapshotError,
    Status, Tag, TagStatus, TimerReason, TransportSettings, TrustAnchor, Udi,
};

// ---------------------------------------------------------------------------------------------
// The fixtures: every file but the README, with its SHA-256, in one place
// ---------------------------------------------------------------------------------------------

#[rustfmt::skip]
const FIXTURES: &[(&str, &str)] = &[
    ("agent/evaluation.snapshot", "55b33718d1ba854ea612da01e5f60f0c970c6ac82b1399d00b86cec36cd40dbe"),
    ("agent/foreign-udi.snapshot", "dda66a9aa4220890e8a0c8d9c1448b72c2e3f882d199f492357bf772f4dd52ba"),
    ("agent/product.key", "59bee59aa02adee97213f40828ccbf96ffc40f6b245019db75ae8c8c8df58bdf"),
    ("agent/registered-granted.snapshot", "b2f67db0b8ac1c7681b96ebfe7e8ce6c7399b4b4e22520bb72e76c5f267fc6f4"),
    ("agent/registered-outstanding.snapshot", "ab71f1345aa85e0078b6ba61a02b93dd6ca43f574b6d59feb608bdb6b060872b"),
    ("agent/registered-sealed.snapshot", "3065c679dadcedc80fdad9d0129820fefb6cec645b72e4d8f307ef30343d1953"),
    ("cli-state/agent.snapshot", "90bb4005c44cb8276ea6ea1ee61f98deaa16a6204c8bac28fb6f023ba38c4fb9"),
    ("cli-state/events.log", "6450d5b337a9728d3eb6c289fc9a5d80586ac694b5ecb6da882e75cef442cf42"),
    ("cli-state/lock", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    ("cli-state/manager/ca-key.pem", "d6ad8b0fd6986f5232bebaa0e8cdb5bd3736e4f03a5df9effe48dcfb35db6b6f"),
    ("cli-state/manager/ca.pem", "908ab4b826ad9c5ecb485dd2837b635c1330d30257f9b9b689811f992a543855"),
    ("cli-state/manager/clock", "f5797365a2ec7f7e5ac1437a656eda831304fb7af613476d02af865def715b8b"),
    ("cli-state/manager/lock", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    ("cli-state/manager/manager-key.pk8", "dab7a86b265c7ec39a9a9f41c13421f1db3b03b8d8865a740058838c7de41641"),
    ("cli-state/manager/manager-key.pub.pem", "f183da81b13d1b117222b9d3eb7614db60f416c5f2bbb8deec33f3ac7665fdf1"),
    ("cli-state/manager/state", "495ffbe42cee2088b54c6a36ce2f4a7f7bea2816fb5a26536f3a49a94ff56a6f"),
    ("cli-state/udi", "69cb9ab8e2e324638262326b6b2772b07e366a292a833b718bde73676ae2da2e"),
    ("generate_v1.output.txt", "fd30fe2018a898b6600b5e4d04a57cab44f7bf20a5f6b6fa126702df9318c507"),
    ("generate_v1.rs.txt", "09be3c20e9d0405cdc8b67907e5af6cc4f589dc47d2179a9feaf5354919d349c"),
    ("manager/ca-key.pem", "5fe7e873ac0b7027cb0db0b826b48e9baa546ec4d6c79c16043bbccf4a5bfc33"),
    ("manager/ca.pem", "d39d8a8d0cfb68a4d6979f2f31a18743ad093d9f291309848d0365d7f1aabfa2"),
    ("manager/clock", "bb201d553c9e3358397ab19549d1fa84ea12019af5508038715346beaf577d68"),
    ("manager/lock", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    ("manager/manager-key.pk8", "4778ac7a347427bcd2ffc99d63912c3ff2e33bfdabfb5fd0d70d6163fd6eead8"),
    ("manager/manager-key.pub.pem", "4b9170a213a3928824ae581c870610202b8ff0ff99421d116fbc975785a9a8e9"),
    ("manager/server-key.pem", "c2863babb150ac50e2636f1f7ac66f1dc29c5a235dd332f5dfced89da328d15d"),
    ("manager/server-names", "11f1803c1b42c828c742efe7e63e4f7ebdf16ceb6ee9ea514c9ab9588ff51edc"),
    ("manager/server.pem", "de55d191294032aa84014881682df817ccf8e45e20ed82aeb15701037d539c34"),
    ("manager/state", "56245db8769d34efa001968cef515de6abf0f20fd2518c8825a793bd5597c594"),
];

/// The snapshots copied into the `snapshot_decoder` fuzz seeds as `golden_v1_<name>`.
const SNAPSHOTS: [&str; 5] = [
    "registered-granted",
    "registered-outstanding",
    "registered-sealed",
    "evaluation",
    "foreign-udi",
];

const UDI_GRANTED: &str = "PID:UCM,SN:V1GRANT1,UUID:5a1e0c5b3d2f4e6a8b7c1d0e2f3a4b01";
const UDI_OUTSTANDING: &str = "PID:UCM,SN:V1OUTST1,UUID:5a1e0c5b3d2f4e6a8b7c1d0e2f3a4b02";
const UDI_SEALED: &str = "PID:UCM,SN:V1SEAL01,UUID:5a1e0c5b3d2f4e6a8b7c1d0e2f3a4b03";
const UDI_EVALUATION: &str = "PID:UCM,SN:V1EVAL01,UUID:5a1e0c5b3d2f4e6a8b7c1d0e2f3a4b04";
const UDI_FOREIGN: &str = "PID:UCM,SN:V1FORGN1,UUID:5a1e0c5b3d2f4e6a8b7c1d0e2f3a4b05";

const PIID_GRANTED: &str = "f57eb2b2-de28-4af5-b44a-6c8c0334143f";
const PIID_OUTSTANDING: &str = "99a14bbd-398f-4875-9fc4-295ec4d49d9e";
const PIID_SEALED: &str = "c08027f0-6eca-44a7-a70b-ca16b4fb176b";

const TOKEN_USED_UP: &str =
    "/f5avFkpM7PH+bkIKlC6x5YzfstWvh+cEQ0BUvfttvwC6ha7Mhe/zp5vhUrH%0Ado47P///Xe6AH4dEQoq8JCKw4w==";
const TOKEN_REVOKED: &str =
    "me/7jcP5xHS6kmjqYuwSE7R5eeOm0cnFu4rTD2yq4ckbeXiC+lh2qTbNmAM+%0At+TLIckFfcZ+zO0sYR7ku+Ga2Q==";
const TOKEN_VALID_EXPORT: &str =
    "7MlILOQgq6kwJyAiJ1xid+57az6A11MY+A/8kvkdFqvLaDxLqqy09gLOYJ6T%0AuQ3cxirsyDiefuVSRw4BwFgYYA==";

const DEFAULT_SA: &str = "Reference Smart Account";
const DEFAULT_VA: &str = "DEFAULT";
const PARTNER_SA: &str = "Golden Partner Smart Account";
const PARTNER_VA: &str = "HCS-TENANT-1";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1")
}

fn fixture(name: &str) -> Vec<u8> {
    let path = fixtures().join(name);
    fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn snapshot(name: &str) -> Vec<u8> {
    fixture(&format!("agent/{name}.snapshot"))
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

/// The trust anchor of every agent snapshot: the golden manager's key, production.
fn anchor() -> TrustAnchor {
    let pem = String::from_utf8(fixture("manager/manager-key.pub.pem")).unwrap();
    TrustAnchor::new(
        ManagerPublicKey::from_spki_pem(&pem).unwrap(),
        Environment::Production,
    )
}

fn sealed() -> Protection {
    let key: [u8; 32] = fixture("agent/product.key").try_into().unwrap();
    Protection::Sealed(ProductKey::new(key))
}

fn config(udi_text: &str, protection: Protection) -> Config {
    Config::new(udi(udi_text), Environment::Production, vec![anchor()])
        .with_random(Box::new(DeterministicRandom::new(0x601D_1000)))
        .with_protection(protection)
}

/// Restores a golden snapshot at `now`; nothing is raised for a snapshot of its own UDI
/// signed by a trusted key.
fn restore(name: &str, udi_text: &str, protection: Protection, now: DateTime<Utc>) -> Agent {
    let mut agent = Agent::restore(&snapshot(name), config(udi_text, protection), now)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(agent.poll_event().map(|e| e.to_string()), None, "{name}");
    agent
}

fn succeeded(at: DateTime<Utc>) -> Option<Attempt> {
    Some(Attempt {
        at,
        outcome: Outcome::Succeeded,
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

/// A declared tag; `named`: the grant carries the catalogue's names for it.
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

/// A copy of the golden manager state directory (the copy may be written to).
fn manager_dir() -> tempfile::TempDir {
    let temp = tempfile::tempdir().unwrap();
    cli::copy_tree(&fixtures().join("manager"), temp.path());
    temp
}

/// The golden manager, loaded the way the server and the CLI load it.
fn golden_manager(dir: &Path) -> Manager {
    let state = StateDir::open(dir).unwrap();
    let lock = state.lock().unwrap();
    state.load(&lock).unwrap()
}

/// Processes the deadlines due at `now` and runs the exchange with `manager`; returns the
/// bodies of the requests sent.
fn step(agent: &mut Agent, manager: &mut Manager, now: DateTime<Utc>) -> Vec<Vec<u8>> {
    agent.handle_timeout(now);
    let mut sent = Vec::new();
    while let Some(tx) = agent.poll_transmit(now) {
        let answer = manager.handle(&tx.body, now);
        sent.push(tx.body);
        agent.handle_response(tx.id, Ok(answer), now);
    }
    while agent.poll_event().is_some() {}
    sent
}

fn kinds(sent: &[Vec<u8>]) -> Vec<RequestKind> {
    sent.iter()
        .map(|body| decode_request(body, 1 << 20).unwrap().request.kind)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The files themselves
// ---------------------------------------------------------------------------------------------

fn files_under(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(root, &path, out);
        } else {
            let relative = path.strip_prefix(root).unwrap().components();
            let names: Vec<_> = relative.map(|c| c.as_os_str().to_string_lossy()).collect();
            out.push(names.join("/"));
        }
    }
}

#[test]
fn every_v1_fixture_file_is_present_and_unchanged() {
    let mut found = Vec::new();
    files_under(&fixtures(), &fixtures(), &mut found);
    found.retain(|f| f != "README.md");
    found.sort();
    let listed: Vec<String> = FIXTURES.iter().map(|(f, _)| f.to_string()).collect();
    assert_eq!(
        found, listed,
        "the v1 fixtures are never added to or removed"
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
fn fuzz_seeds_of_the_v1_snapshots_are_the_golden_bytes() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/snapshot_decoder");
    for name in SNAPSHOTS {
        let seed = fs::read(corpus.join(format!("golden_v1_{name}"))).unwrap();
        assert!(
            seed == snapshot(name),
            "golden_v1_{name} differs from the fixture"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// (a) registered and authorized
// ---------------------------------------------------------------------------------------------

/// Registered with the one-use token at 2026-06-06T09:00Z after 5 days of evaluation.
fn granted_status(now: DateTime<Utc>, authorization: AuthorizationStatus) -> Status {
    let registered_at = at("2026-06-06T09:00:00Z");
    Status {
        at: now,
        udi: udi(UDI_GRANTED),
        registration: registered((DEFAULT_SA, DEFAULT_VA), false, registered_at),
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
fn v1_registered_granted_snapshot_restores_with_its_complete_status() {
    let now = at("2026-06-20T12:00:00Z");
    let agent = restore(
        "registered-granted",
        UDI_GRANTED,
        Protection::Integrity,
        now,
    );
    let status = agent.status(now);
    assert_eq!(
        status,
        granted_status(now, authorized(at("2026-06-06T09:00:00Z")))
    );
    assert_eq!(
        agent.poll_timeout(),
        Some((
            at("2026-07-06T09:00:00Z"),
            TimerReason::AuthorizationRenewal
        ))
    );
    let host = HostIdentity::new("ucm-pub.golden.example", "192.0.2.10".parse().unwrap());
    assert_eq!(agent.host(), Some(&host.unwrap()));
    assert!(!agent.privacy() && !agent.is_subscriber());
    assert_eq!(agent.transport_settings(), &TransportSettings::Direct);
}

#[test]
fn v1_registered_granted_snapshot_renews_its_authorization_with_the_v1_manager() {
    let dir = manager_dir();
    let mut manager = golden_manager(dir.path());
    let mut agent = restore(
        "registered-granted",
        UDI_GRANTED,
        Protection::Integrity,
        at("2026-06-20T12:00:00Z"),
    );
    let due = at("2026-07-06T09:00:00Z");
    let sent = step(&mut agent, &mut manager, due);
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
// (b) registered, an authorize request outstanding
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
fn v1_outstanding_snapshot_restores_waiting_to_resend_its_request() {
    let now = at("2026-06-04T10:05:00Z");
    let agent = restore(
        "registered-outstanding",
        UDI_OUTSTANDING,
        Protection::Integrity,
        now,
    );
    // The old grant (Enhanced 3) still names the tag; the request is owed, so the next
    // communication is "now".
    let last = at("2026-06-02T10:00:00Z");
    let authorization = AuthorizationStatus {
        next_communication: Some(now),
        ..authorized(last)
    };
    assert_eq!(agent.status(now), outstanding_status(now, authorization));
    assert_eq!(
        agent.poll_timeout(),
        Some((at("2026-06-04T10:01:00Z"), TimerReason::Transmit))
    );
    assert!(agent.privacy());
}

#[test]
fn v1_outstanding_request_is_resent_and_accepted_by_the_v1_manager_as_a_repeat() {
    let dir = manager_dir();
    let mut manager = golden_manager(dir.path());
    let now = at("2026-06-04T10:05:00Z");
    let mut agent = restore(
        "registered-outstanding",
        UDI_OUTSTANDING,
        Protection::Integrity,
        now,
    );
    let sent = step(&mut agent, &mut manager, now);
    assert_eq!(kinds(&sent), [RequestKind::Authorize]);
    let resent = decode_request(&sent[0], 1 << 20).unwrap().request;
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
// (c) registered and authorized, sealed, in the partner account
// ---------------------------------------------------------------------------------------------

/// Registered at 2026-06-03T11:00Z with the export token; CUWL and Enhanced served by the
/// partner account's own and HCS pools.
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
fn v1_sealed_snapshot_restores_with_its_product_key_and_complete_status() {
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
        Some(("golden", "proxy-secret")),
    );
    assert_eq!(agent.transport_settings(), &proxy.unwrap());
}

#[test]
fn v1_sealed_snapshot_does_not_open_without_its_product_key() {
    let bytes = snapshot("registered-sealed");
    let now = at("2026-06-20T12:00:00Z");
    let plain = Agent::restore(&bytes, config(UDI_SEALED, Protection::Integrity), now);
    assert_eq!(
        plain.err(),
        Some(RestoreError::Snapshot(SnapshotError::ProtectionMismatch))
    );
    let other = Protection::Sealed(ProductKey::new([7; 32]));
    let wrong = Agent::restore(&bytes, config(UDI_SEALED, other), now);
    assert!(matches!(
        wrong.err(),
        Some(RestoreError::Snapshot(SnapshotError::Corrupt(_)))
    ));
}

#[test]
fn v1_sealed_snapshot_renews_its_authorization_and_stays_sealed() {
    let dir = manager_dir();
    let mut manager = golden_manager(dir.path());
    let mut agent = restore(
        "registered-sealed",
        UDI_SEALED,
        sealed(),
        at("2026-06-20T12:00:00Z"),
    );
    let due = at("2026-07-03T11:00:00Z");
    let sent = step(&mut agent, &mut manager, due);
    assert_eq!(kinds(&sent), [RequestKind::Authorize]);
    assert_eq!(agent.status(due), sealed_status(due, authorized(due)));
    let again = Agent::restore(&agent.snapshot(), config(UDI_SEALED, sealed()), due).unwrap();
    assert_eq!(again.status(due), sealed_status(due, authorized(due)));
}

// ---------------------------------------------------------------------------------------------
// (d) evaluation, (e) another UDI's snapshot
// ---------------------------------------------------------------------------------------------

#[test]
fn v1_evaluation_snapshot_restores_counting_what_is_left() {
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
fn v1_evaluation_snapshot_runs_out_80_days_after_counting_resumed() {
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

/// (a)'s tags, unregistered and counting evaluation.
fn foreign_status(now: DateTime<Utc>, udi_text: &str, left: TimeDelta) -> Status {
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

#[test]
fn v1_foreign_udi_snapshot_restores_unregistered_with_the_evaluation_kept() {
    // 85 days left, counting since the restore under this UDI at 2026-06-07T09:00Z.
    let now = at("2026-06-20T09:00:00Z");
    let agent = restore("foreign-udi", UDI_FOREIGN, Protection::Integrity, now);
    assert_eq!(
        agent.status(now),
        foreign_status(now, UDI_FOREIGN, days(72))
    );
    assert_eq!(
        agent.poll_timeout(),
        Some((at("2026-08-01T09:00:00Z"), TimerReason::EvaluationWarning))
    );
    let host = HostIdentity::new("ucm-pub.golden.example", "192.0.2.10".parse().unwrap());
    assert_eq!(agent.host(), Some(&host.unwrap()), "settings are kept");
}

#[test]
fn v1_registered_snapshot_restored_under_another_udi_is_unregistered_with_its_evaluation() {
    let now = at("2026-06-20T12:00:00Z");
    let config = config(UDI_FOREIGN, Protection::Integrity);
    let agent = Agent::restore(&snapshot("registered-granted"), config, now).unwrap();
    assert_eq!(
        agent.status(now),
        foreign_status(now, UDI_FOREIGN, days(85))
    );
}

// ---------------------------------------------------------------------------------------------
// The manager state directory
// ---------------------------------------------------------------------------------------------

/// A pool's license line: `[purchased, in use, lent to lower, balance]`, with `names` or the
/// catalogue's.
fn line(text: &str, names: Option<(&str, Option<&str>)>, counts: [u32; 4]) -> LicenseLine {
    let [purchased, in_use, lent_to_lower, balance] = counts;
    let (display_name, description) = match names {
        Some((name, description)) => (Some(name.to_string()), description.map(str::to_string)),
        None => {
            let (name, description) = catalogue_names(text);
            (Some(name), Some(description))
        }
    };
    LicenseLine {
        tag: tag(text),
        display_name,
        description,
        purchased,
        in_use,
        reserved: 0,
        lent_to_lower,
        balance,
    }
}

#[test]
fn v1_manager_state_directory_opens_with_its_accounts_pools_and_clock() {
    let dir = manager_dir();
    let state = StateDir::open(dir.path()).unwrap();
    assert_eq!(state.environment(), Environment::Production);
    assert_eq!(state.now().unwrap(), at("2026-06-07T09:00:00Z"));
    let manager = golden_manager(dir.path());
    assert_eq!(manager.trust_anchors(), [anchor()]);
    let default = VirtualAccountId::new(DEFAULT_SA, DEFAULT_VA);
    let partner = VirtualAccountId::new(PARTNER_SA, PARTNER_VA);
    assert_eq!(manager.default_virtual_account(), default);
    assert_eq!(
        manager.virtual_accounts(),
        [partner.clone(), default.clone()]
    );
    // Basic 12 in use: 10 from its pool, 2 from Enhanced ("To Lower" substitution).
    assert_eq!(
        manager.licenses(&default),
        [
            line(UCM_CUWL, None, [2, 0, 0, 2]),
            line(UCM_ENHANCED, None, [20, 12, 2, 6]),
            line(UCM_BASIC, None, [10, 10, 0, 0]),
        ]
    );
    // Enhanced 5: 2 from its pool, 3 from Foundation; CUWL 1 from Standard (dual parenting).
    let foundation = (
        "HCS Foundation (tenant 1)",
        Some("HCS Cisco UCM Foundation License for tenant 1"),
    );
    let addon = "regid.2026-06.com.cisco.GOLDEN_Addon,1.0_0f1e2d3c-4b5a-4978-8796-a5b4c3d2e1f0";
    assert_eq!(
        manager.licenses(&partner),
        [
            line(UCM_ENHANCED, None, [2, 2, 0, 0]),
            line(HCS_UCM_STANDARD, None, [5, 0, 1, 4]),
            line(HCS_UCM_FOUNDATION, Some(foundation), [20, 0, 3, 17]),
            line(addon, Some(("Golden Add-on (1.x)", None)), [0, 0, 0, 0]),
        ]
    );
}

#[test]
fn v1_manager_state_holds_the_three_instances_the_snapshots_belong_to() {
    let dir = manager_dir();
    let manager = golden_manager(dir.path());
    let rows: Vec<_> = manager
        .instances()
        .into_iter()
        .map(|i| {
            let usage: Vec<(String, u32)> = i.usage.into_iter().collect();
            (
                i.piid.to_string(),
                i.udi.long_form(),
                i.virtual_account.virtual_account().to_string(),
                i.export_controlled,
                i.hostname,
                (i.registered_at, i.identity_not_after, i.last_contact),
                usage,
                (i.last_usage_sequence, i.usage_reports_counted),
            )
        })
        .collect();
    let (b, c, a) = (
        at("2026-06-02T10:00:00Z"),
        at("2026-06-03T11:00:00Z"),
        at("2026-06-06T09:00:00Z"),
    );
    let usage = |pairs: &[(&str, u32)]| -> Vec<(String, u32)> {
        let mut v: Vec<_> = pairs.iter().map(|(t, n)| (t.to_string(), *n)).collect();
        v.sort();
        v
    };
    let b_contact = at("2026-06-04T10:01:00Z"); // the report whose answer was lost
    let expected = vec![
        (
            PIID_OUTSTANDING.to_string(),
            UDI_OUTSTANDING.to_string(),
            DEFAULT_VA.to_string(),
            false,
            None, // privacy on
            (b, b + days(365), b_contact),
            usage(&[(UCM_ENHANCED, 4)]),
            (Some(2), 2),
        ),
        (
            PIID_SEALED.to_string(),
            UDI_SEALED.to_string(),
            PARTNER_VA.to_string(),
            true,
            None,
            (c, c + days(365), c),
            usage(&[(UCM_ENHANCED, 5), (UCM_CUWL, 1)]),
            (Some(1), 1),
        ),
        (
            PIID_GRANTED.to_string(),
            UDI_GRANTED.to_string(),
            DEFAULT_VA.to_string(),
            false,
            Some("ucm-pub.golden.example".to_string()),
            (a, a + days(365), a),
            usage(&[(UCM_ENHANCED, 8), (UCM_BASIC, 12)]),
            (Some(1), 1),
        ),
    ];
    assert_eq!(rows, expected);
}

/// What the manager answers a fresh instance registering with `token` at 2026-06-20T12:00Z.
fn register_answer(manager: &mut Manager, sn: &str, token: &str) -> (ResponseStatus, Agent) {
    let now = at("2026-06-20T12:00:00Z");
    let udi_text = format!("PID:UCM,SN:{sn},UUID:5a1e0c5b3d2f4e6a8b7c1d0e2f3a4b99");
    let mut agent = Agent::new(config(&udi_text, Protection::Integrity), now).unwrap();
    agent.register(token, Force::No, now).unwrap();
    let tx = agent.poll_transmit(now).unwrap();
    let answer = manager.handle(&tx.body, now);
    let status = decode_response(&answer, 1 << 20).unwrap().response.status;
    agent.handle_response(tx.id, Ok(answer), now);
    (status, agent)
}

fn token_refused(message: &str) -> ResponseStatus {
    ResponseStatus::Failed {
        code: codes::TOKEN_INVALID.to_string(),
        message: message.to_string(),
    }
}

#[test]
fn v1_manager_tokens_keep_their_use_limit_revocation_and_export_flag() {
    let dir = manager_dir();
    let mut manager = golden_manager(dir.path());
    let (used_up, _) = register_answer(&mut manager, "V1TOKEN1", TOKEN_USED_UP);
    assert_eq!(
        used_up,
        token_refused("The registration token has no uses left")
    );
    let (revoked, _) = register_answer(&mut manager, "V1TOKEN2", TOKEN_REVOKED);
    assert_eq!(
        revoked,
        token_refused("The registration token has been revoked")
    );
    let (valid, agent) = register_answer(&mut manager, "V1TOKEN3", TOKEN_VALID_EXPORT);
    assert_eq!(valid, ResponseStatus::Ok);
    let registration = agent.status(at("2026-06-20T12:00:00Z")).registration;
    assert_eq!(
        (
            registration.state,
            registration.smart_account.as_deref(),
            registration.export_controlled
        ),
        (RegistrationState::Registered, Some(PARTNER_SA), true)
    );
}

// ---------------------------------------------------------------------------------------------
// The CLI state directory, with today's harness
// ---------------------------------------------------------------------------------------------

/// A sandbox whose state directory is a copy of the golden one.
fn golden_cli() -> cli::Cli {
    let sandbox = cli::Cli::new();
    cli::copy_tree(&fixtures().join("cli-state"), sandbox.dir());
    sandbox
}

#[track_caller]
fn assert_lines(output: &str, lines: &[&str]) {
    for line in lines {
        assert!(
            output.lines().any(|l| l.trim() == *line),
            "missing {line:?} in:\n{output}"
        );
    }
}

#[test]
fn v1_cli_state_directory_shows_its_status_with_the_current_harness() {
    let cli = golden_cli();
    let now = "2026-07-20T09:00:00Z";
    let shown = cli.license(now, &["show", "license", "status"]);
    assert_lines(
        shown.ok(),
        &[
            "Status: REGISTERED",
            "Smart Account: Reference Smart Account",
            "Virtual Account: DEFAULT",
            "Export-Controlled Functionality: Allowed",
            "Initial Registration: SUCCEEDED on Jun 10 09:05:00 2026 UTC",
            "Registration Expires: Jun 10 09:05:00 2027 UTC",
            "Status: AUTHORIZED on Jul 11 16:50:00 2026 UTC",
            "Next Communication Attempt: Aug 10 16:50:00 2026 UTC",
            "Communication Deadline: Oct 9 16:50:00 2026 UTC",
            "Evaluation Mode: Not In Use",
            "Evaluation Period Remaining: 89 days, 23 hours, 55 minutes, 0 seconds",
        ],
    );
    let udi = cli.license(now, &["show", "license", "udi"]);
    assert_eq!(
        udi.ok(),
        "UDI: PID:UCM,SN:V1CLI001,UUID:5a1e0c5b3d2f4e6a8b7c1d0e2f3a4b06\n"
    );
    let events = cli.license(now, &["events"]);
    let log = events.ok();
    assert_eq!(log.lines().count(), 13, "{log}");
    assert_eq!(log.matches("[SmartLicensingRenewAuthFailure]").count(), 7);
}

#[test]
fn v1_cli_state_directory_renews_its_authorization_with_the_current_harness() {
    let cli = golden_cli();
    let now = "2026-07-20T09:00:00Z";
    cli.license(now, &["license", "smart", "renew", "auth"])
        .expect(0, "Authorization succeeded\n", "");
    let shown = cli.license(now, &["show", "license", "status"]);
    assert_lines(
        shown.ok(),
        &[
            "Status: AUTHORIZED on Jul 20 09:00:00 2026 UTC",
            "Next Communication Attempt: Aug 19 09:00:00 2026 UTC",
            "Communication Deadline: Oct 18 09:00:00 2026 UTC",
        ],
    );
    let instances = cli.manager(&["instances"]);
    // `instances` prints a header line first (issue 11).
    assert!(
        instances.ok().lines().nth(1).is_some_and(
            |l| l.starts_with("bcc02431-90e2-4b6c-8567-becf1544628e\tPID:UCM,SN:V1CLI001,")
        ),
        "{}",
        instances.stdout
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
fn every_prefix_and_bit_flip_of_a_v1_snapshot_is_a_typed_error() {
    for (name, udi_text) in [
        ("registered-granted", UDI_GRANTED),
        ("registered-outstanding", UDI_OUTSTANDING),
        ("evaluation", UDI_EVALUATION),
        ("foreign-udi", UDI_FOREIGN),
    ] {
        damage_each(&snapshot(name), 1, |damaged| {
            let restored = Agent::restore(
                damaged,
                config(udi_text, Protection::Integrity),
                at("2026-07-01T00:00:00Z"),
            );
            assert!(
                matches!(restored, Err(RestoreError::Snapshot(_))),
                "{name}: the integrity check refuses any damage"
            );
        });
    }
}

#[test]
fn damaged_parts_of_a_v1_snapshot_behind_a_valid_digest_never_panic() {
    // Past the integrity check: the part decoders themselves meet the damage.
    let now = at("2026-07-01T00:00:00Z");
    let parts =
        smart_agent::snapshot::open(&snapshot("registered-granted"), &Protection::Integrity)
            .unwrap();
    let (mut refused, mut opened) = (0, 0);
    let mut try_parts = |licensing: &[u8], communication: &[u8]| {
        let damaged = smart_agent::SnapshotParts {
            version: parts.version,
            licensing: licensing.to_vec(),
            communication: communication.to_vec(),
        };
        match Agent::from_parts(&damaged, config(UDI_GRANTED, Protection::Integrity), now) {
            Err(RestoreError::Licensing(_) | RestoreError::Communication(_)) => refused += 1,
            Err(other) => panic!("a part's damage is the part's error, not {other}"),
            Ok(agent) => {
                opened += 1;
                let _ = agent.status(now);
            }
        }
    };
    damage_each(&parts.licensing, 3, |l| try_parts(l, &parts.communication));
    damage_each(&parts.communication, 1, |c| try_parts(&parts.licensing, c));
    assert!(
        refused > 0 && opened > 0,
        "{refused} refused, {opened} opened"
    );
}

#[test]
fn every_prefix_and_bit_flip_of_the_v1_manager_state_is_a_typed_error() {
    let state = fixture("manager/state");
    damage_each(&state, 1, |damaged| {
        let loaded = Manager::load_state(damaged, Box::new(DeterministicRandom::new(1)));
        assert!(loaded.is_err(), "the integrity check refuses any damage");
    });
}
