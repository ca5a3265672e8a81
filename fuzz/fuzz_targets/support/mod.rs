//! What the snapshot targets restore with: the UDI and the manager key of the committed seeds
//! (made by `tests/fuzz_corpus.rs`).

use chrono::{DateTime, Utc};
use smart_agent::crypto::ManagerSigningKey;
use smart_agent::{Config, DeterministicRandom, Environment, TrustAnchor};

const UDI: &str = "PID:UCM,SN:37624,UUID:6fe83addc80240bc92dc071ac7a37624";

pub fn config() -> Config {
    static ANCHOR: std::sync::OnceLock<Option<TrustAnchor>> = std::sync::OnceLock::new();
    let anchor = ANCHOR.get_or_init(|| {
        let key =
            ManagerSigningKey::from_pkcs8(include_bytes!("../../fixtures/manager-key.pk8")).ok()?;
        Some(TrustAnchor::new(
            key.public_key().clone(),
            Environment::Production,
        ))
    });
    let udi = UDI.parse().expect("fixed UDI parses");
    Config::new(
        udi,
        Environment::Production,
        anchor.iter().cloned().collect(),
    )
    .with_random(Box::new(DeterministicRandom::new(0)))
}

pub fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_799_056_800, 0).unwrap_or_default()
}
