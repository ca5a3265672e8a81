//! An agent request: the bytes the reference manager takes from the network.
//! The body, and what it checks: `smart_agent_fuzz::wire`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| smart_agent_fuzz::wire::request(data));
