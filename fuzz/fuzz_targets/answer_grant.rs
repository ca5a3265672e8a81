//! An answer carrying an authorization grant (authorize).
//! The body, and what it checks: `support::answers`.
#![no_main]

mod support;

libfuzzer_sys::fuzz_target!(|data: &[u8]| support::answers::grant(data));
