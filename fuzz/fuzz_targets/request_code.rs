//! A reservation request code.
//! The body, and what it checks: `support::codes`.
#![no_main]

mod support;

libfuzzer_sys::fuzz_target!(|data: &[u8]| support::codes::request_code(data));
