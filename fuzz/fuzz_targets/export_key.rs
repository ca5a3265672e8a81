//! An export authorization key.
//! The body, and what it checks: `support::codes`.
#![no_main]

mod support;

libfuzzer_sys::fuzz_target!(|data: &[u8]| support::codes::export_key(data));
