//! An answer carrying an identity certificate (register, renewId).
//! The body, and what it checks: `support::answers`.
#![no_main]

mod support;

libfuzzer_sys::fuzz_target!(|data: &[u8]| support::answers::identity(data));
