//! The persisted state, read back from the product's storage, which may be damaged or
//! tampered with: the container (magic, version, mode, integrity or seal) and the two parts
//! behind it, in every format version the crate reads. Restoring gives an agent or a typed
//! error, never a panic; whatever restores writes a snapshot that restores to the same parts.

use smart_agent::snapshot::{self, FIRST_VERSION, VERSION};
use smart_agent::{Agent, ProductKey, Protection, SnapshotParts};

use super::{config_for, now, protection, PRODUCT_KEYS, UDIS};

/// Restores `parts` under `udi` and checks that the snapshot the agent writes is a fixed
/// point: restoring it gives the same parts again.
fn restore_parts(parts: &SnapshotParts, udi: &str) {
    let Ok(agent) = Agent::from_parts(parts, config_for(udi), now()) else {
        return;
    };
    let written = agent.snapshot_parts();
    assert_eq!(written.version, VERSION);
    let again = Agent::from_parts(&written, config_for(udi), now())
        .expect("a snapshot the agent wrote restores");
    assert_eq!(again.snapshot_parts(), written, "restore is not idempotent");
    let _ = again.status(now());
    let _ = again.poll_timeout();
}

/// The container only: opening refuses or gives parts that seal back to the same bytes; and
/// parts made of the input seal into a container that opens to them.
pub fn container(data: &[u8]) {
    let mut protections = vec![Protection::Integrity];
    protections.extend(
        PRODUCT_KEYS
            .iter()
            .map(|k| Protection::Sealed(ProductKey::new(**k))),
    );
    for p in &protections {
        if let Ok(parts) = snapshot::open(data, p) {
            assert_eq!(
                snapshot::seal(&parts, p),
                data,
                "open then seal changed the bytes"
            );
        }
    }
    let Some((&v, rest)) = data.split_first() else {
        return;
    };
    let split = rest.len() / 2;
    let parts = SnapshotParts {
        version: FIRST_VERSION + u16::from(v) % (VERSION - FIRST_VERSION + 1),
        licensing: rest[..split].to_vec(),
        communication: rest[split..].to_vec(),
    };
    for p in &protections {
        let sealed = snapshot::seal(&parts, p);
        assert_eq!(snapshot::open(&sealed, p).as_ref(), Ok(&parts));
    }
}

/// A whole snapshot as stored: the container, then both parts and the re-verification of the
/// stored identity, grant, reservation and export keys, under every seed UDI (a snapshot
/// under its own UDI keeps its registration).
pub fn restore(data: &[u8]) {
    for key in 0..PRODUCT_KEYS.len() {
        let p = protection(data, key);
        let sealed = p != Protection::Integrity;
        let config = config_for(UDIS[0]).with_protection(p.clone());
        let _ = Agent::restore(data, config, now());
        if let Ok(parts) = snapshot::open(data, &p) {
            for udi in UDIS {
                restore_parts(&parts, udi);
            }
        }
        if !sealed {
            break;
        }
    }
}

/// The two parts straight, past the integrity check that stops almost every mutated
/// container: input = u8 UDI choice (an index into the seed UDIs) | u32 big-endian length of
/// the licensing part | the licensing part | the communication part, decoded as every format
/// version the crate reads.
pub fn parts(data: &[u8]) {
    let Some((&profile, rest)) = data.split_first() else {
        return;
    };
    let Some((len, rest)) = rest.split_first_chunk::<4>() else {
        return;
    };
    let len = (u32::from_be_bytes(*len) as usize).min(rest.len());
    let (licensing, communication) = rest.split_at(len);
    let udi = UDIS[usize::from(profile) % UDIS.len()];
    for version in FIRST_VERSION..=VERSION {
        let parts = SnapshotParts {
            version,
            licensing: licensing.to_vec(),
            communication: communication.to_vec(),
        };
        restore_parts(&parts, udi);
    }
}

/// The `parts` target's input for `parts` under `UDIS[profile]`.
pub fn parts_input(profile: u8, parts: &SnapshotParts) -> Vec<u8> {
    let mut out = vec![profile];
    out.extend_from_slice(&(parts.licensing.len() as u32).to_be_bytes());
    out.extend_from_slice(&parts.licensing);
    out.extend_from_slice(&parts.communication);
    out
}
