//! The reference manager's saved state (v1).
//! The body, and what it checks: `support::manager_state`.
#![no_main]

mod support;

libfuzzer_sys::fuzz_target!(|data: &[u8]| support::manager_state::manager_state(data));
