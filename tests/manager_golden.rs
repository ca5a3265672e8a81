//! The golden version 1 manager state directory (tests/fixtures/v1/manager) under the current
//! code: it opens, is imported into a version 2 database (the version 1 file kept as
//! `state.v1`), and serves the instances it holds over HTTPS — the renewal of a
//! v1-registered agent succeeds. The fixtures are copied first and never written.
#![cfg(feature = "manager")]

use std::fs;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use smart_agent::manager::server::{Server, ServerOptions};
use smart_agent::manager::{DirError, StateDir, STATE_VERSION};
use smart_agent::transport::{HttpsTransport, Transport, TransportConfig};
use smart_agent::{
    Agent, AuthorizationState, Config, DeterministicRandom, Environment, ManagerPublicKey,
    RegistrationState, TransportSettings, TrustAnchor, Udi,
};

const UDI_GRANTED: &str = "PID:UCM,SN:V1GRANT1,UUID:5a1e0c5b3d2f4e6a8b7c1d0e2f3a4b01";
const PIID_GRANTED: &str = "f57eb2b2-de28-4af5-b44a-6c8c0334143f";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1")
}

fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .with_timezone(&Utc)
}

/// A writable copy of the golden manager directory.
fn golden_copy() -> tempfile::TempDir {
    let temp = tempfile::tempdir().unwrap();
    for entry in fs::read_dir(fixtures().join("manager")).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), temp.path().join(entry.file_name())).unwrap();
    }
    temp
}

fn anchor(dir: &Path) -> TrustAnchor {
    let pem = fs::read_to_string(dir.join("manager-key.pub.pem")).unwrap();
    TrustAnchor::new(
        ManagerPublicKey::from_spki_pem(&pem).unwrap(),
        Environment::Production,
    )
}

#[test]
fn the_golden_v1_manager_state_opens_is_migrated_and_serves_its_instances() {
    let dir = golden_copy();
    let v1 = fs::read(fixtures().join("manager/state")).unwrap();
    let mut options = ServerOptions::default();
    options.environment = Some(Environment::Production);
    let server = Server::start(dir.path(), options).unwrap();

    // Imported: the state is a database of the current version; the v1 bytes are kept.
    let state = fs::read(dir.path().join("state")).unwrap();
    assert!(state.starts_with(b"SQLite format 3\0"));
    assert_eq!(
        u32::from_be_bytes(state[60..64].try_into().unwrap()),
        u32::from(STATE_VERSION)
    );
    assert_eq!(fs::read(dir.path().join("state.v1")).unwrap(), v1);
    // The published key is still the golden one: the snapshots' anchor.
    assert_eq!(
        fs::read(dir.path().join("manager-key.pub.pem")).unwrap(),
        fs::read(fixtures().join("manager/manager-key.pub.pem")).unwrap()
    );
    let admin = StateDir::open(dir.path()).unwrap();
    let before = admin.read(|m, _| m.instances()).unwrap();
    assert_eq!(before.len(), 3);
    let granted = before
        .iter()
        .position(|i| i.piid.to_string() == PIID_GRANTED)
        .unwrap();

    // A second server on the same directory refuses to start, and says why.
    let refused = Server::start(dir.path(), ServerOptions::default()).unwrap_err();
    assert!(
        matches!(
            &refused,
            smart_agent::manager::ServerError::Dir(DirError::AlreadyServed(_))
        ),
        "{refused}"
    );
    assert!(
        refused
            .to_string()
            .contains("another server is already serving this state directory"),
        "{refused}"
    );

    // The v1-registered, authorized agent renews its authorization over HTTPS when due.
    let due = at("2026-07-06T09:00:00Z");
    admin.set_clock(due).unwrap();
    let snapshot = fs::read(fixtures().join("agent/registered-granted.snapshot")).unwrap();
    let config = Config::new(
        UDI_GRANTED.parse::<Udi>().unwrap(),
        Environment::Production,
        vec![anchor(dir.path())],
    )
    .with_random(Box::new(DeterministicRandom::new(0x601D_1000)));
    let mut agent = Agent::restore(&snapshot, config, at("2026-06-20T12:00:00Z")).unwrap();
    let mut transport_config = TransportConfig::new();
    transport_config
        .add_ca_pem(&fs::read(dir.path().join("ca.pem")).unwrap())
        .unwrap();
    let mut transport = HttpsTransport::new(transport_config).unwrap();
    let settings =
        TransportSettings::on_prem(&format!("https://{}/SmartTransport", server.addr())).unwrap();
    agent.handle_timeout(due);
    let mut sent = 0;
    while let Some(tx) = agent.poll_transmit(due) {
        let answer = transport.send(&settings, &tx.body);
        agent.handle_response(tx.id, answer, due);
        sent += 1;
    }
    assert_eq!(sent, 1);
    let status = agent.status(due);
    assert_eq!(status.registration.state, RegistrationState::Registered);
    assert_eq!(status.authorization.state, AuthorizationState::Authorized);
    assert_eq!(
        status.authorization.last_communication.map(|a| a.at),
        Some(due)
    );
    server.shutdown();

    // Stored, and not imported again on the next open.
    let again = StateDir::open(dir.path()).unwrap();
    let mut after = again.read(|m, _| m.instances()).unwrap();
    let renewed = after.remove(granted);
    assert_eq!(renewed.last_contact, due);
    let mut others = before.clone();
    let old = others.remove(granted);
    assert_eq!(renewed.usage_reports_counted, old.usage_reports_counted + 1);
    assert_eq!(after, others);
    assert_eq!(fs::read(dir.path().join("state.v1")).unwrap(), v1);
    assert_eq!(
        again.read(|m, _| m.integrity_check()).unwrap().unwrap(),
        "ok"
    );
}
