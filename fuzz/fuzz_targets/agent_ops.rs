//! The stateful target: an agent driven by arbitrary operations.
//! The body, and what it checks: `support::agent_ops`.
#![no_main]

mod support;

libfuzzer_sys::fuzz_target!(|data: &[u8]| support::agent_ops::agent_ops(data));
