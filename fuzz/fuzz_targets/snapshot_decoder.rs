//! A snapshot is read back from the product's storage, which may be damaged or tampered with:
//! restoring one must give an agent or a typed error, never a panic. This runs the whole
//! restore: container (magic, version, integrity), both parts, and the re-verification of the
//! stored identity and grant against the fixture key the committed seeds were signed with.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod support;

fuzz_target!(|data: &[u8]| {
    let _ = smart_agent::Agent::restore(data, support::config(), support::now());
});
