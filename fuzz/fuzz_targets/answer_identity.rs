//! An answer carrying an identity certificate (register, renewId).
//! The body, and what it checks: `smart_agent_fuzz::answers`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| smart_agent_fuzz::answers::identity(data));
