//! The protocol between agent and manager (ours; the real one is not public).
//!
//! One XML document per HTTPS POST and one back. Every document is signed by its sender over
//! everything but its `<signature>` element ([`signed`]): the device with Ed25519, the manager
//! with ECDSA P-256. Answers echo the request's nonce and product-instance id. The identity
//! certificate and the grant are separately signed documents inside the answer, kept verbatim
//! by the agent.
//!
//! ```text
//! <request><type>authorize</type><version>1</version><nonce>…</nonce><piid>…</piid>
//!   <udi>P:UCM,S:…</udi><sentAt>…</sentAt><hostname>…</hostname><ip>…</ip>
//!   <body><authorize><sequence>7</sequence><entitlement><tag>…</tag><count>5</count></entitlement></authorize></body>
//!   <signature>…</signature></request>
//! <response><type>authorize</type><version>1</version><nonce>…</nonce><piid>…</piid><status>OK</status>
//!   <serverTime>…</serverTime><environment>production</environment>
//!   <body><grant>…<signature>…</signature></grant></body><signature>…</signature></response>
//! ```

mod documents;
mod request;
mod response;
pub(crate) mod signed;

pub use documents::{Grant, GrantEntry, GrantEntryContent, GrantStatus, IdentityCertificate};
pub use request::{
    decode_request, AuthorizeBody, ParsedRequest, RegisterBody, Request, RequestBody, UsageLine,
};
pub use response::{decode_response, Answer, ParsedResponse, Response, ResponseStatus};

pub(crate) use documents::{encode_grant, encode_identity, parse_grant, parse_identity};
pub(crate) use request::encode_request;
pub(crate) use response::{encode_response, verify_response, Expected};

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::crypto::SignatureError;

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// The kinds of request the agent sends (DESIGN "Wire protocol").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[non_exhaustive]
pub enum RequestKind {
    /// Register with a token.
    Register,
    /// Renew the identity certificate.
    RenewId,
    /// Report usage and ask for a grant.
    Authorize,
    /// Deregister (best effort).
    Deregister,
}

impl RequestKind {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::Register => "register",
            RequestKind::RenewId => "renewId",
            RequestKind::Authorize => "authorize",
            RequestKind::Deregister => "deregister",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(s: &str) -> Option<RequestKind> {
        [
            RequestKind::Register,
            RequestKind::RenewId,
            RequestKind::Authorize,
            RequestKind::Deregister,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

impl fmt::Display for RequestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a transport could not deliver a request or bring back its answer; what the product
/// passes to [`Agent::handle_response`](crate::Agent::handle_response) instead of the answer
/// bytes. The transports map their library's errors onto it (SPEC §9).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// No answer within the configured time.
    #[error("communication timeout")]
    Timeout,
    /// DNS, connection refused or reset, proxy down, HTTP 5xx: `detail` says which.
    #[error("send error: {detail}")]
    Send {
        /// What went wrong, for logs.
        detail: String,
    },
    /// The server's TLS certificate does not chain to a configured CA ("Unknown CA", 004:1701).
    #[error("Unknown CA")]
    UnknownCa,
    /// The proxy asked for (other) credentials: HTTP 407, or the 401 some proxies send.
    #[error("proxy authentication required")]
    ProxyAuthentication,
    /// The answer was larger than the transport's limit.
    #[error("answer too large")]
    TooLarge,
}

/// Why the agent rejected an answer that did arrive (SPEC §9, "answer rejected by the agent").
/// Each variant names the failed check.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AnswerError {
    /// Larger than the policy's limit; not parsed.
    #[error("answer of {len} bytes exceeds the limit of {max}")]
    Oversize {
        /// Bytes received.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The document ends before its root element is closed.
    #[error("answer is truncated")]
    Truncated,
    /// Not a well-formed document of the expected structure.
    #[error("malformed answer: {0}")]
    Malformed(String),
    /// The answer's own signature failed.
    #[error("answer signature: {0}")]
    Signature(SignatureError),
    /// The signed identity certificate inside the answer failed verification or validation.
    #[error("identity certificate: {0}")]
    Identity(String),
    /// The signed grant inside the answer failed verification or validation.
    #[error("authorization grant: {0}")]
    Grant(String),
    /// The answer does not echo the request's nonce.
    #[error("nonce mismatch")]
    NonceMismatch,
    /// The answer does not echo the request's product-instance id.
    #[error("product instance id mismatch")]
    PiidMismatch,
    /// The answer is for another kind of request.
    #[error("answer is for another request type")]
    KindMismatch,
}

pub(crate) fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

pub(crate) fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
