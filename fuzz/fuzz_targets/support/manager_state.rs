//! The reference manager's saved state (`Manager::load_state`, state file version 1), read
//! back from its state directory, which may be damaged or tampered with. Input: a whole state
//! file (it starts with the magic), or else a payload the target wraps in the header and the
//! SHA-256 the loader checks first, so that mutations reach the decoder behind it. Whatever
//! loads saves to bytes that load and save to the same bytes.

use ring::digest;
use smart_agent::manager::{Manager, STATE_MAGIC, STATE_VERSION};
use smart_agent::DeterministicRandom;

/// The state file for `payload`: magic, version, payload, SHA-256 of all before.
pub fn wrap(payload: &[u8]) -> Vec<u8> {
    let mut out = STATE_MAGIC.to_vec();
    out.extend_from_slice(&STATE_VERSION.to_be_bytes());
    out.extend_from_slice(payload);
    let sum = digest::digest(&digest::SHA256, &out);
    out.extend_from_slice(sum.as_ref());
    out
}

fn load(bytes: &[u8]) -> Option<Manager> {
    Manager::load_state(bytes, Box::new(DeterministicRandom::new(9))).ok()
}

pub fn manager_state(data: &[u8]) {
    let wrapped;
    let bytes = if data.starts_with(STATE_MAGIC) {
        data
    } else {
        wrapped = wrap(data);
        &wrapped
    };
    let Some(manager) = load(bytes) else { return };
    for va in manager.virtual_accounts() {
        let _ = manager.licenses(&va);
    }
    let _ = manager.instances();
    let saved = manager.save_state();
    let again = load(&saved).expect("a state the manager saved loads");
    assert_eq!(
        again.save_state(),
        saved,
        "load then save is not a fixed point"
    );
}
