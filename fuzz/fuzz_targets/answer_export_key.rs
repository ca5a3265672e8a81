//! An answer carrying an export authorization key (exportRequest).
//! The body, and what it checks: `support::answers`.
#![no_main]

mod support;

libfuzzer_sys::fuzz_target!(|data: &[u8]| support::answers::export_key(data));
