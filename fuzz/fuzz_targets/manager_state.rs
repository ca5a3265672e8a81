//! The reference manager's saved state (v1).
//! The body, and what it checks: `smart_agent_fuzz::manager_state`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| smart_agent_fuzz::manager_state::manager_state(data));
