//! The `code` of a `FAILED` answer: what the manager refused and why (ours; SPEC §9 maps
//! `TOKEN_INVALID` to the 400 token message and every other code to "unknown error").

/// The request could not be parsed (also: larger than [`MAX_REQUEST_LEN`](super::MAX_REQUEST_LEN)),
/// or its body is inconsistent (a usage report naming a tag twice, a register body without a
/// valid public key).
pub const MALFORMED: &str = "MALFORMED";
/// The device signature does not verify with the key of the instance (for `register`, the
/// key in the body).
pub const BAD_SIGNATURE: &str = "BAD_SIGNATURE";
/// No product instance has the request's piid (or the request carries none).
pub const UNKNOWN_INSTANCE: &str = "UNKNOWN_INSTANCE";
/// The request's UDI is not the UDI the instance registered with.
pub const UDI_MISMATCH: &str = "UDI_MISMATCH";
/// The registration token is unknown, expired, used up or revoked (the message says which).
pub const TOKEN_INVALID: &str = "TOKEN_INVALID";
/// The instance's identity certificate has expired: it must register again.
pub const IDENTITY_EXPIRED: &str = "IDENTITY_EXPIRED";
/// The manager could not sign its answer (random source failure).
pub const INTERNAL: &str = "INTERNAL";
