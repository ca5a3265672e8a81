//! Byte-exact XML signatures (DESIGN "Signed bytes, exactly"): signed XML is verified over the
//! raw input bytes, located with `quick_xml::Reader` positions, never over anything serde
//! re-creates.
//!
//! - **enveloped** (the wire protocol's requests, answers, identity certificates and grants):
//!   `<signature>` is the root's last child; the signed bytes are the document without it.

pub(crate) mod enveloped;
