//! A manager answer: the bytes an agent takes from the network.
//! The body, and what it checks: `smart_agent_fuzz::wire`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| smart_agent_fuzz::wire::response(data));
