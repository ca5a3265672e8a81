//! An answer carrying an authorization grant (authorize).
//! The body, and what it checks: `smart_agent_fuzz::answers`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| smart_agent_fuzz::answers::grant(data));
