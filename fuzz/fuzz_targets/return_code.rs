//! A reservation return code.
//! The body, and what it checks: `smart_agent_fuzz::codes`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| smart_agent_fuzz::codes::return_code(data));
