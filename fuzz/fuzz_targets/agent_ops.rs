//! The stateful target: an agent driven by arbitrary operations.
//! The body, and what it checks: `smart_agent_fuzz::agent_ops`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| smart_agent_fuzz::agent_ops::agent_ops(data));
