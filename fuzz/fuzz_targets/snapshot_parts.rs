//! The two snapshot parts behind the container, as every format version.
//! The body, and what it checks: `smart_agent_fuzz::snapshot`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| smart_agent_fuzz::snapshot::parts(data));
