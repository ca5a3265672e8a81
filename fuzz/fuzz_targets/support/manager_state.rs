//! The reference manager's saved state (`Manager::load_state`), read back from its state
//! directory, which may be damaged or tampered with. Input: a whole state as stored — a
//! SQLite database (format version 2, what the manager writes) or a version 1 state file
//! (starts with the `SMAGMGRS` magic, imported) — or else a version 1 payload the target wraps
//! in the header and the SHA-256 the loader checks first, so that mutations reach the decoder
//! behind it. Whatever loads saves to bytes that load and save to the same bytes.

use std::borrow::Cow;

use ring::digest;
use smart_agent::manager::{Manager, STATE_MAGIC};
use smart_agent::DeterministicRandom;

/// The first bytes of a SQLite database file (what `Manager::save_state` writes).
pub const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// The version of the `SMAGMGRS` container (the only one: later states are SQLite).
const V1: u16 = 1;

/// The version 1 state file for `payload`: magic, version, payload, SHA-256 of all before.
pub fn wrap(payload: &[u8]) -> Vec<u8> {
    let mut out = STATE_MAGIC.to_vec();
    out.extend_from_slice(&V1.to_be_bytes());
    out.extend_from_slice(payload);
    let sum = digest::digest(&digest::SHA256, &out);
    out.extend_from_slice(sum.as_ref());
    out
}

/// The state the target loads for input `data`: whole if it starts like a stored state,
/// else `data` wrapped as a version 1 payload.
pub fn state_of(data: &[u8]) -> Cow<'_, [u8]> {
    if data.starts_with(STATE_MAGIC) || data.starts_with(SQLITE_MAGIC) {
        Cow::Borrowed(data)
    } else {
        Cow::Owned(wrap(data))
    }
}

fn load(bytes: &[u8]) -> Option<Manager> {
    Manager::load_state(bytes, Box::new(DeterministicRandom::new(9))).ok()
}

pub fn manager_state(data: &[u8]) {
    let Some(manager) = load(&state_of(data)) else {
        return;
    };
    for va in manager.virtual_accounts() {
        let _ = manager.licenses(&va);
        let _ = manager.instances_of(&va);
        let _ = manager.export_key_pools(&va);
    }
    let _ = manager.instances();
    let _ = manager.reservations();
    let saved = manager.save_state();
    let again = load(&saved).expect("a state the manager saved loads");
    assert_eq!(
        again.save_state(),
        saved,
        "load then save is not a fixed point"
    );
}
