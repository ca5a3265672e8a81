//! The golden files of the agent snapshot format version 3 and of the manager's SQLite state,
//! schema version 2 (`tests/fixtures/v3/`, written once by the code of commit 1bafc3a: see its
//! README), open with today's code with the status they were written with, and keep working
//! against the manager that served them: renewals, an export key's return, an SLR update's
//! confirmation, reservation returns and a code installed after the restore.
//!
//! Expected values come from what the generator did (`generate_v3.rs.txt`), not from printing:
//! dates are a step's `now` plus a policy interval (renewal 30 d, evaluation 90 d).
#![cfg(feature = "manager")]

use std::fs;
use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeDelta, Utc};
use smart_agent::entitlement::EXPY_PLR_WITH_EXPORT_CONTROL;
use smart_agent::manager::catalogue::{UCM_BASIC, UCM_ENHANCED};
use smart_agent::manager::{Manager, SCHEMA_VERSION};
use smart_agent::wire::{decode_request, RequestKind};
use smart_agent::{
    Agent, AuthorizationState, Config, DeterministicRandom, Environment, EventKind,
    ManagerPublicKey, ProductKey, Protection, RegistrationState, ReservationKind, TagStatus,
    TimerReason, TrustAnchor, Udi,
};

#[rustfmt::skip]
const FIXTURES: &[(&str, &str)] = &[
    ("generate_v3.output.txt", "3596767a81ae8ed7a8ccb89c28e3e525c2571df7e15918993440b8930c826dde"),
    ("generate_v3.rs.txt", "084bcf8c8a3b4506186829c0eee95cfe3c288fe5a3cbea40d23ad5472f2b4740"),
    ("manager-key.pk8", "3924aeb5dec07e381501027964231a7515c57887c30e1f932b3dc0d51e7c1fac"),
    ("manager-key.pub.pem", "449c1b369550da02e315cf88dad56e947a98adf002bec2ade4ff146e63e1cdda"),
    ("manager.state", "7bbec39cef1e16ead565cc8264f4a0d730a52e80c0071b273cfa8873b3bf01fd"),
    ("plr-installed.snapshot", "0c98b0e77c813777e8207aef5bde6d37a1bf40bdd77291778ec757c5816b0439"),
    ("product.key", "ca8d494bf88437415566e6b7c614f7a17699efaa16e66915939e739cdfe10311"),
    ("registered-allowed.snapshot", "6172860613e4bf139cb99a7ea6d14b7fddc192612cb4b0e22e2e144df839fdfd"),
    ("registered-export-key.snapshot", "ee429bbed192e8f01dac296145d0e08601be4accbba3585851063fbc1745c08c"),
    ("requested.authorization-code.txt", "9367d5ea6f635f2c3e501a3c939aa4d96a745ded0b33b9e03d7e469b0f99ab35"),
    ("reservation-requested.snapshot", "c3266bb223d90127f921860324a5fcac08d112c6551a18d8c46c0c1f843d174f"),
    ("slr-installed.snapshot", "bb3eb784e74a1a1772edae3f82c9aad0a581f50ebc659741a49e59830e016132"),
    ("slr-update.confirmation.txt", "6f0a42890be9cf927c1a054277a01e9bbf92891bfc0d70b40e9839769d7c09f5"),
];

/// The snapshots, with the protection each was written with.
const SNAPSHOTS: [&str; 5] = [
    "registered-export-key",
    "registered-allowed",
    "slr-installed",
    "plr-installed",
    "reservation-requested",
];

const UDI_EXPORT_KEY: &str = "PID:UCM,SN:V3XKEY01,UUID:7b2f1d6c4e3a5f7b9c8d2e1f3a4b5d01";
const UDI_ALLOWED: &str = "PID:UCM,SN:V3ALLOW1,UUID:7b2f1d6c4e3a5f7b9c8d2e1f3a4b5d02";
const UDI_SLR: &str = "PID:UCM,SN:V3SLR001,UUID:7b2f1d6c4e3a5f7b9c8d2e1f3a4b5d03";
const UDI_PLR: &str = "PID:EXPRESSWAY,SN:V3PLR001,UUID:7b2f1d6c4e3a5f7b9c8d2e1f3a4b5d04";
const UDI_REQUESTED: &str = "PID:UCM,SN:V3REQ001,UUID:7b2f1d6c4e3a5f7b9c8d2e1f3a4b5d05";

const RESTRICTED_SA: &str = "Golden Restricted Smart Account";
const RESTRICTED_VA: &str = "EXPORT-RESTRICTED";
const FEATURE: &str = "CUCM_Export_Restricted_Authorization_Key";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v3")
}

fn fixture(name: &str) -> Vec<u8> {
    let path = fixtures().join(name);
    fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn text(name: &str) -> String {
    String::from_utf8(fixture(name)).unwrap()
}

fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .with_timezone(&Utc)
}

fn days(n: i64) -> TimeDelta {
    TimeDelta::days(n)
}

fn sha256_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn anchor() -> TrustAnchor {
    TrustAnchor::new(
        ManagerPublicKey::from_spki_pem(&text("manager-key.pub.pem")).unwrap(),
        Environment::Production,
    )
}

fn protection_of(name: &str) -> Protection {
    match name {
        "slr-installed" => {
            let key: [u8; 32] = fixture("product.key").try_into().unwrap();
            Protection::Sealed(ProductKey::new(key))
        }
        _ => Protection::Integrity,
    }
}

fn udi_of(name: &str) -> &'static str {
    match name {
        "registered-export-key" => UDI_EXPORT_KEY,
        "registered-allowed" => UDI_ALLOWED,
        "slr-installed" => UDI_SLR,
        "plr-installed" => UDI_PLR,
        _ => UDI_REQUESTED,
    }
}

/// Restores a golden snapshot at `now` trusting the golden manager; nothing is raised.
fn restore(name: &str, now: DateTime<Utc>) -> Agent {
    let config = Config::new(
        udi_of(name).parse::<Udi>().unwrap(),
        Environment::Production,
        vec![anchor()],
    )
    .with_random(Box::new(DeterministicRandom::new(0x603D_1000)))
    .with_protection(protection_of(name));
    let bytes = fixture(&format!("{name}.snapshot"));
    let mut agent = Agent::restore(&bytes, config, now).unwrap_or_else(|e| panic!("{name}: {e}"));
    let events: Vec<EventKind> = std::iter::from_fn(|| agent.poll_event())
        .map(|e| e.kind)
        .collect();
    assert_eq!(events, [], "{name}");
    agent
}

fn golden_manager() -> Manager {
    Manager::load_state(
        &fixture("manager.state"),
        Box::new(DeterministicRandom::new(0x603D_2000)),
    )
    .unwrap()
}

/// Processes what is due at `now` against `manager`; returns the kinds sent and the events.
fn step(
    agent: &mut Agent,
    manager: &mut Manager,
    now: DateTime<Utc>,
) -> (Vec<RequestKind>, Vec<EventKind>) {
    agent.handle_timeout(now);
    let mut sent = Vec::new();
    while let Some(tx) = agent.poll_transmit(now) {
        sent.push(decode_request(&tx.body, 1 << 20).unwrap().request.kind);
        let answer = manager.handle(&tx.body, now);
        agent.handle_response(tx.id, Ok(answer), now);
    }
    let events = std::iter::from_fn(|| agent.poll_event())
        .map(|e| e.kind)
        .collect();
    (sent, events)
}

/// (purchased, in use, reserved, balance) of a tag in the default Virtual Account.
fn pool(manager: &Manager, tag_text: &str) -> (u32, u32, u32, u32) {
    let va = manager.default_virtual_account();
    let line = manager
        .licenses(&va)
        .into_iter()
        .find(|l| l.tag.as_str() == tag_text)
        .unwrap();
    (line.purchased, line.in_use, line.reserved, line.balance)
}

fn export_keys_in_use(manager: &Manager) -> u32 {
    let va = manager
        .virtual_accounts()
        .into_iter()
        .find(|va| va.smart_account() == RESTRICTED_SA)
        .unwrap();
    manager
        .export_key_pools(&va)
        .into_iter()
        .find(|p| p.feature == FEATURE)
        .unwrap()
        .in_use
}

#[test]
fn every_v3_fixture_file_is_present_and_unchanged() {
    let mut found: Vec<String> = fs::read_dir(fixtures())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "README.md")
        .collect();
    found.sort();
    let listed: Vec<String> = FIXTURES.iter().map(|(f, _)| f.to_string()).collect();
    assert_eq!(
        found, listed,
        "the v3 fixtures are never added to or removed"
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
fn every_v3_golden_snapshot_is_a_version_3_container() {
    for name in SNAPSHOTS {
        let bytes = fixture(&format!("{name}.snapshot"));
        let parts = smart_agent::snapshot::open(&bytes, &protection_of(name)).unwrap();
        assert_eq!(parts.version, 3, "{name}");
    }
}

#[test]
fn the_sealed_v3_snapshot_does_not_open_without_its_product_key() {
    let bytes = fixture("slr-installed.snapshot");
    assert!(smart_agent::snapshot::open(&bytes, &Protection::Integrity).is_err());
}

#[test]
fn the_v3_golden_manager_state_is_schema_2_with_its_reservations_and_export_keys() {
    assert!(fixture("manager.state").starts_with(b"SQLite format 3\0"));
    const { assert!(SCHEMA_VERSION >= 2) };
    let m = golden_manager();
    assert_eq!(m.trust_anchor(), anchor());
    // Online 4 (allowed) + SLR 6 (update to 4 in transit) + requested 2.
    assert_eq!(pool(&m, UCM_ENHANCED), (20, 12, 8, 8));
    assert_eq!(pool(&m, UCM_BASIC), (10, 4, 2, 6));
    assert_eq!(pool(&m, EXPY_PLR_WITH_EXPORT_CONTROL), (3, 1, 1, 2));
    let reservations = m.reservations();
    let kinds: Vec<(String, ReservationKind, bool)> = reservations
        .iter()
        .map(|r| (r.udi.long_form(), r.kind, r.in_transit))
        .collect();
    assert_eq!(
        kinds,
        [
            (
                UDI_PLR.parse::<Udi>().unwrap().long_form(),
                ReservationKind::Universal,
                false
            ),
            (
                UDI_REQUESTED.parse::<Udi>().unwrap().long_form(),
                ReservationKind::Specific,
                false
            ),
            (
                UDI_SLR.parse::<Udi>().unwrap().long_form(),
                ReservationKind::Specific,
                true
            ),
        ]
    );
    assert!(reservations[0].export_controlled);
    assert_eq!(export_keys_in_use(&m), 1);
    assert_eq!(m.instances().len(), 2);
    assert!(m.is_export_restricted(RESTRICTED_SA).unwrap());
}

#[test]
fn the_v3_export_key_snapshot_holds_its_key_and_renews_then_returns_it() {
    let now = at("2026-09-02T09:00:00Z");
    let mut agent = restore("registered-export-key", now);
    let status = agent.status(now);
    assert_eq!(status.registration.state, RegistrationState::Registered);
    assert_eq!(
        status.registration.smart_account.as_deref(),
        Some(RESTRICTED_SA)
    );
    assert_eq!(
        status.registration.virtual_account.as_deref(),
        Some(RESTRICTED_VA)
    );
    assert!(!status.registration.export_controlled);
    assert_eq!(status.authorization.state, AuthorizationState::Authorized);
    assert_eq!(status.authorization.deadline, Some(now + days(90)));
    assert_eq!(status.entitlements.len(), 1);
    assert_eq!(status.entitlements[0].count, 3);
    assert_eq!(status.entitlements[0].status, TagStatus::InCompliance);
    assert!(agent.export_key_allowed(FEATURE, now));
    assert!(!agent.export_allowed(now));
    assert_eq!(
        agent.poll_timeout(),
        Some((now + days(30), TimerReason::AuthorizationRenewal))
    );

    let mut m = golden_manager();
    let renewal = now + days(30);
    let (sent, events) = step(&mut agent, &mut m, renewal);
    assert_eq!(sent, [RequestKind::Authorize]);
    assert!(
        events.contains(&EventKind::Authorized {
            in_compliance: true
        }),
        "{events:?}"
    );
    assert!(agent.export_key_allowed(FEATURE, renewal));

    agent.export_return(FEATURE, renewal).unwrap();
    let (sent, _) = step(&mut agent, &mut m, renewal);
    assert_eq!(sent, [RequestKind::ExportReturn]);
    assert!(!agent.export_key_allowed(FEATURE, renewal));
    assert_eq!(export_keys_in_use(&m), 0);
}

#[test]
fn the_v3_export_allowed_snapshot_keeps_its_flag_and_renews() {
    let now = at("2026-09-03T09:00:00Z");
    let mut agent = restore("registered-allowed", now);
    let status = agent.status(now);
    assert_eq!(status.registration.state, RegistrationState::Registered);
    assert!(status.registration.export_controlled);
    assert!(agent.export_allowed(now));
    assert_eq!(status.authorization.state, AuthorizationState::Authorized);
    let counts: Vec<(String, u32, TagStatus)> = status
        .entitlements
        .iter()
        .map(|e| (e.tag.to_string(), e.count, e.status))
        .collect();
    assert_eq!(
        counts,
        [
            (UCM_ENHANCED.to_string(), 4, TagStatus::InCompliance),
            (UCM_BASIC.to_string(), 2, TagStatus::InCompliance),
        ]
    );
    let mut m = golden_manager();
    let (sent, events) = step(&mut agent, &mut m, now + days(30));
    assert_eq!(sent, [RequestKind::Authorize]);
    assert!(
        events.contains(&EventKind::Authorized {
            in_compliance: true
        }),
        "{events:?}"
    );
    assert!(agent.export_allowed(now + days(30)));
}

#[test]
fn the_v3_slr_snapshot_is_reserved_and_its_update_confirmation_then_return_settle_the_pools() {
    let now = at("2026-09-10T09:00:00Z");
    let mut agent = restore("slr-installed", now);
    let status = agent.status(now);
    assert_eq!(
        status.registration.state,
        RegistrationState::SpecificReservation
    );
    assert_eq!(
        status.authorization.state,
        AuthorizationState::NotAuthorizedReserved
    );
    assert!(!status.evaluation.in_use);
    assert_eq!(status.evaluation.remaining, days(90));
    // 5 Enhanced in use but 4 reserved by the update; 1 Basic of 2.
    let tags: Vec<(String, u32, TagStatus)> = status
        .entitlements
        .iter()
        .map(|e| (e.tag.to_string(), e.count, e.status))
        .collect();
    assert_eq!(
        tags,
        [
            (UCM_ENHANCED.to_string(), 5, TagStatus::NotAuthorized),
            (UCM_BASIC.to_string(), 1, TagStatus::ReservedInCompliance),
        ]
    );
    let installed = status.reservation.installed.unwrap();
    assert_eq!(installed.kind, ReservationKind::Specific);
    assert!(installed.trusted);
    assert_eq!(
        installed.confirmation.as_deref(),
        Some(text("slr-update.confirmation.txt").as_str())
    );
    let reserved: Vec<(String, u32)> = installed
        .entitlements
        .iter()
        .map(|e| (e.tag.to_string(), e.count))
        .collect();
    assert_eq!(
        reserved,
        [(UCM_ENHANCED.to_string(), 4), (UCM_BASIC.to_string(), 2)]
    );
    assert_eq!(agent.poll_timeout(), None);

    let mut m = golden_manager();
    m.confirm_reservation(UDI_SLR, &text("slr-update.confirmation.txt"))
        .unwrap();
    assert_eq!(pool(&m, UCM_ENHANCED), (20, 10, 6, 10));
    let code = agent.reservation_return(now + days(1)).unwrap().to_string();
    let back = m.return_reservation(&code, now + days(1)).unwrap();
    assert_eq!(back.freed.len(), 2);
    assert_eq!(pool(&m, UCM_ENHANCED), (20, 6, 2, 14));
    assert_eq!(pool(&m, UCM_BASIC), (10, 2, 0, 8));
}

#[test]
fn the_v3_plr_snapshot_allows_export_and_returns_its_plr_entitlement() {
    let now = at("2026-09-05T09:00:00Z");
    let mut agent = restore("plr-installed", now);
    let status = agent.status(now);
    assert_eq!(
        status.registration.state,
        RegistrationState::UniversalReservation
    );
    assert_eq!(
        status.authorization.state,
        AuthorizationState::AuthorizedReserved
    );
    assert!(agent.export_allowed(now));
    let installed = status.reservation.installed.unwrap();
    assert_eq!(installed.kind, ReservationKind::Universal);
    assert_eq!(installed.confirmation, None);
    assert_eq!(installed.entitlements.len(), 1);
    assert_eq!(
        installed.entitlements[0].tag.as_str(),
        EXPY_PLR_WITH_EXPORT_CONTROL
    );
    assert_eq!(agent.poll_timeout(), None);

    let mut m = golden_manager();
    let code = agent.reservation_return(now).unwrap().to_string();
    m.return_reservation(&code, now).unwrap();
    assert_eq!(pool(&m, EXPY_PLR_WITH_EXPORT_CONTROL), (3, 0, 0, 3));
    assert!(!agent.export_allowed(now));
}

#[test]
fn the_v3_requested_snapshot_keeps_its_request_and_installs_the_code_issued_for_it() {
    let now = at("2026-09-06T09:00:00Z");
    let mut agent = restore("reservation-requested", now);
    let status = agent.status(now);
    assert_eq!(
        status.registration.state,
        RegistrationState::ReservationInProgress
    );
    assert!(status.reservation.enabled);
    let request = status.reservation.request_code.unwrap();
    assert!(request.starts_with("CB-PUCM,SV3REQ001,U7b2f1d6c4e3a5f7b9c8d2e1f3a4b5d05-"));
    // Evaluation counts while the reservation is not installed (SPEC §5).
    assert!(status.evaluation.in_use);
    assert_eq!(
        agent.poll_timeout(),
        Some((at("2026-11-05T09:00:00Z"), TimerReason::EvaluationWarning))
    );

    let later = now + days(3);
    let installed = agent
        .reservation_install(&text("requested.authorization-code.txt"), later)
        .unwrap();
    assert_eq!(
        agent.status(later).registration.state,
        RegistrationState::SpecificReservation
    );
    let mut m = golden_manager();
    m.confirm_reservation(UDI_REQUESTED, &installed.confirmation.unwrap().to_string())
        .unwrap();
    assert_eq!(pool(&m, UCM_ENHANCED), (20, 12, 8, 8));
}
