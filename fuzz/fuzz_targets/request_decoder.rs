//! Agent requests are the bytes the reference manager takes from the network: decoding one
//! must never panic, whatever arrives. Parse only; no signature is verified here.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = smart_agent::wire::decode_request(data, 1 << 20);
});
