//! The snapshot container: magic, version, mode, integrity or seal.
//! The body, and what it checks: `smart_agent_fuzz::snapshot`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| smart_agent_fuzz::snapshot::container(data));
