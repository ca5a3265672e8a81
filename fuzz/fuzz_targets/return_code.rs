//! A reservation return code.
//! The body, and what it checks: `support::codes`.
#![no_main]

mod support;

libfuzzer_sys::fuzz_target!(|data: &[u8]| support::codes::return_code(data));
