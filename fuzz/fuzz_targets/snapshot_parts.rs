//! The two snapshot parts behind the container, as every format version.
//! The body, and what it checks: `support::snapshot`.
#![no_main]

mod support;

libfuzzer_sys::fuzz_target!(|data: &[u8]| support::snapshot::parts(data));
