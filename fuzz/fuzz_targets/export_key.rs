//! An export authorization key.
//! The body, and what it checks: `smart_agent_fuzz::codes`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| smart_agent_fuzz::codes::export_key(data));
