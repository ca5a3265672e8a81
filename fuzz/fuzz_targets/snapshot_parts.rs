//! The integrity check in front of the snapshot decoder stops almost every mutated input, so
//! this target feeds the two parts straight to the decoder behind it: input = u32 big-endian
//! length of the licensing part, the licensing part, then the communication part, decoded as
//! every format version the crate reads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smart_agent::SnapshotParts;

mod support;

fuzz_target!(|data: &[u8]| {
    let Some((len, rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let len = (u32::from_be_bytes(*len) as usize).min(rest.len());
    let (licensing, communication) = rest.split_at(len);
    for version in smart_agent::snapshot::FIRST_VERSION..=smart_agent::snapshot::VERSION {
        let parts = SnapshotParts {
            version,
            licensing: licensing.to_vec(),
            communication: communication.to_vec(),
        };
        let _ = smart_agent::Agent::from_parts(&parts, support::config(), support::now());
    }
});
