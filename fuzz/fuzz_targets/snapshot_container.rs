//! The snapshot container: magic, version, mode, integrity or seal.
//! The body, and what it checks: `support::snapshot`.
#![no_main]

mod support;

libfuzzer_sys::fuzz_target!(|data: &[u8]| support::snapshot::container(data));
