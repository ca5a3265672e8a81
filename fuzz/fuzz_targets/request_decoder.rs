//! An agent request: the bytes the reference manager takes from the network.
//! The body, and what it checks: `support::wire`.
#![no_main]

mod support;

libfuzzer_sys::fuzz_target!(|data: &[u8]| support::wire::request(data));
