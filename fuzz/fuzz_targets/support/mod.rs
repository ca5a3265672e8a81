//! What the targets share: the UDIs, trust anchors and product keys the committed seeds were
//! made with (`tests/fuzz_corpus.rs` for the `real_*` seeds, `tests/fixtures/v1`, `v2` and `v3`
//! for the `golden_*` ones), so that a seed restores or verifies as far as it did when it was made
//! and the fuzzer starts from deep inside every decoder.
#![allow(dead_code)] // each target uses part of it

pub mod agent_ops;
pub mod answers;
pub mod codes;
pub mod manager_state;
pub mod sim;
pub mod snapshot;
pub mod wire;

use chrono::{DateTime, Utc};
use smart_agent::crypto::ManagerSigningKey;
use smart_agent::{
    Config, DeterministicRandom, Environment, ManagerPublicKey, ProductKey, Protection,
    TrustAnchor, Udi,
};

/// The UDI of the `real_*` seeds.
pub const UDI: &str = "PID:UCM,SN:37624,UUID:6fe83addc80240bc92dc071ac7a37624";

/// Every UDI a committed snapshot seed was written for: the `real_*` seeds' first, then the
/// golden v1, v2 and v3 instances (`tests/fixtures/v*/generate_v*.rs.txt`). A snapshot restored
/// under its own UDI keeps its registration; under another it goes dormant.
pub const UDIS: [&str; 18] = [
    UDI,
    "PID:UCM,SN:V1GRANT1,UUID:5a1e0c5b3d2f4e6a8b7c1d0e2f3a4b01",
    "PID:UCM,SN:V1OUTST1,UUID:5a1e0c5b3d2f4e6a8b7c1d0e2f3a4b02",
    "PID:UCM,SN:V1SEAL01,UUID:5a1e0c5b3d2f4e6a8b7c1d0e2f3a4b03",
    "PID:UCM,SN:V1EVAL01,UUID:5a1e0c5b3d2f4e6a8b7c1d0e2f3a4b04",
    "PID:UCM,SN:V1FORGN1,UUID:5a1e0c5b3d2f4e6a8b7c1d0e2f3a4b05",
    "PID:UCM,SN:V2GRANT1,UUID:5a1e0c5b3d2f4e6a8b7c1d0e2f3a4c01",
    "PID:UCM,SN:V2OUTST1,UUID:5a1e0c5b3d2f4e6a8b7c1d0e2f3a4c02",
    "PID:UCM,SN:V2SEAL01,UUID:5a1e0c5b3d2f4e6a8b7c1d0e2f3a4c03",
    "PID:UCM,SN:V2EVAL01,UUID:5a1e0c5b3d2f4e6a8b7c1d0e2f3a4c04",
    "PID:UCM,SN:V2FORGN1,UUID:5a1e0c5b3d2f4e6a8b7c1d0e2f3a4c05",
    "PID:UCM,SN:V2DGRNT1,UUID:5a1e0c5b3d2f4e6a8b7c1d0e2f3a4c06",
    "PID:UCM,SN:V2FAIL01,UUID:5a1e0c5b3d2f4e6a8b7c1d0e2f3a4c07",
    "PID:UCM,SN:V3XKEY01,UUID:7b2f1d6c4e3a5f7b9c8d2e1f3a4b5d01",
    "PID:UCM,SN:V3ALLOW1,UUID:7b2f1d6c4e3a5f7b9c8d2e1f3a4b5d02",
    "PID:UCM,SN:V3SLR001,UUID:7b2f1d6c4e3a5f7b9c8d2e1f3a4b5d03",
    "PID:EXPRESSWAY,SN:V3PLR001,UUID:7b2f1d6c4e3a5f7b9c8d2e1f3a4b5d04",
    "PID:UCM,SN:V3REQ001,UUID:7b2f1d6c4e3a5f7b9c8d2e1f3a4b5d05",
];

/// The product keys of the sealed golden snapshots (v1, v2, v3).
pub const PRODUCT_KEYS: [&[u8; 32]; 3] = [
    b"smart-agent golden v1 seal key!!",
    b"smart-agent golden v2 seal key!!",
    b"smart-agent golden v3 seal key!!",
];

/// The manager key the `real_*` seeds are signed with (`fuzz/fixtures/manager-key.pk8`).
pub fn signing_key() -> ManagerSigningKey {
    ManagerSigningKey::from_pkcs8(include_bytes!("../../fixtures/manager-key.pk8"))
        .expect("the committed fixture key parses")
}

/// Every manager key a seed was signed with, production: the fixture key, the golden v1
/// manager's, the golden v2 manager's two, the golden v3 manager's.
pub fn anchors() -> Vec<TrustAnchor> {
    static ANCHORS: std::sync::OnceLock<Vec<TrustAnchor>> = std::sync::OnceLock::new();
    ANCHORS
        .get_or_init(|| {
            let pems: [&str; 4] = [
                include_str!("../../../tests/fixtures/v1/manager/manager-key.pub.pem"),
                include_str!("../../../tests/fixtures/v2/manager-key.pub.pem"),
                include_str!("../../../tests/fixtures/v2/manager-key-2.pub.pem"),
                include_str!("../../../tests/fixtures/v3/manager-key.pub.pem"),
            ];
            let mut keys = vec![signing_key().public_key().clone()];
            keys.extend(pems.iter().map(|pem| {
                ManagerPublicKey::from_spki_pem(pem).expect("the golden public keys parse")
            }));
            keys.into_iter()
                .map(|k| TrustAnchor::new(k, Environment::Production))
                .collect()
        })
        .clone()
}

/// The configuration of the agent of `udi` (one of [`UDIS`]), trusting [`anchors`].
pub fn config_for(udi: &str) -> Config {
    let udi: Udi = udi.parse().expect("the seed UDIs parse");
    Config::new(udi, Environment::Production, anchors())
        .with_random(Box::new(DeterministicRandom::new(0)))
}

/// The configuration of the `real_*` seeds' agent.
pub fn config() -> Config {
    config_for(UDI)
}

/// How a container is protected, by its mode byte (offset 10): integrity, or sealed with one
/// of [`PRODUCT_KEYS`] (`key` picks which).
pub fn protection(container: &[u8], key: usize) -> Protection {
    match container.get(10) {
        Some(1) => Protection::Sealed(ProductKey::new(*PRODUCT_KEYS[key % PRODUCT_KEYS.len()])),
        _ => Protection::Integrity,
    }
}

/// The time the `real_*` seeds were made at: 2027-01-04 10:00:00 UTC.
pub fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_799_056_800, 0).unwrap_or_default()
}

/// Input bytes as text, or `None` (the text decoders take `&str`).
pub fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// Every target: its name (the `fuzz/fuzz_targets/<name>.rs` binary, its seeds in
/// `fuzz/corpus/<name>/`) and its body. `tests/fuzz_regressions.rs` runs the committed seeds and
/// crash inputs through the same bodies.
pub const TARGETS: &[(&str, Body)] = &[
    ("request_decoder", wire::request),
    ("response_decoder", wire::response),
    ("answer_identity", answers::identity),
    ("answer_grant", answers::grant),
    ("answer_export_key", answers::export_key),
    ("snapshot_container", snapshot::container),
    ("snapshot_decoder", snapshot::restore),
    ("snapshot_parts", snapshot::parts),
    ("udi", codes::udi),
    ("entitlement_tag", codes::entitlement_tag),
    ("registration_token", codes::registration_token),
    ("request_code", codes::request_code),
    ("slr_code", codes::slr_code),
    ("plr_code", codes::plr_code),
    ("confirmation_code", codes::confirmation_code),
    ("return_code", codes::return_code),
    ("export_key", codes::export_key),
    ("manager_state", manager_state::manager_state),
    ("agent_ops", agent_ops::agent_ops),
];

/// A target's body: runs one input, panics on a violated invariant.
pub type Body = fn(&[u8]);

/// The body of target `name`.
pub fn target(name: &str) -> Option<Body> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}
