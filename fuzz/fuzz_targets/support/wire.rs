//! The wire messages: a request is what the manager takes from the network, an answer what
//! the agent takes. Decoding parses only (no signature is checked); whatever decodes encodes
//! back to a document that decodes to the same message.

use smart_agent::crypto::DeviceKey;
use smart_agent::wire::{decode_request, decode_response, encode_request, encode_response};

use super::signing_key;

/// The decoders' size limit in these targets (the agent's default policy allows less).
pub const MAX_LEN: usize = 1 << 20;

/// A request: decoded, re-encoded and signed with a fixed device key, decoded again.
pub fn request(data: &[u8]) {
    let Ok(parsed) = decode_request(data, MAX_LEN) else {
        return;
    };
    let _ = parsed.register_key();
    let key = DeviceKey::from_seed([0x11; 32]);
    let bytes = encode_request(&parsed.request, &key);
    let again = decode_request(&bytes, MAX_LEN).expect("a re-encoded request decodes");
    assert_eq!(again.request, parsed.request);
    assert!(again.verify(&key.public_key()));
}

/// An answer: decoded (envelope and the structure of every nested document), its envelope
/// re-encoded and signed with the fixture key, decoded again.
pub fn response(data: &[u8]) {
    let Ok(parsed) = decode_response(data, MAX_LEN) else {
        return;
    };
    let Ok(bytes) = encode_response(&parsed.response, &[], &signing_key()) else {
        return; // the random source failed
    };
    let again = decode_response(&bytes, MAX_LEN).expect("a re-encoded answer decodes");
    assert_eq!(again.response, parsed.response);
}
