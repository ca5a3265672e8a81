//! The protocol between agent and manager (ours; the real one is not public).
//!
//! One XML document per HTTPS POST and one back. Every document is signed by its sender over
//! everything but its `<signature>` element (see `signed.rs`): the device with Ed25519, the manager
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
mod send;
mod xml_out;

pub use documents::{Grant, GrantEntry, GrantEntryContent, GrantStatus, IdentityCertificate};
pub use request::{
    decode_request, AuthorizeBody, DeregisterBody, ExportBody, ParsedRequest, RegisterBody,
    Request, RequestBody, UsageLine,
};
pub use response::{decode_response, Answer, ParsedResponse, Response, ResponseStatus};
pub use send::SendFailure;

#[cfg(feature = "manager")]
pub use documents::{encode_grant, encode_identity};
pub(crate) use documents::{
    parse_grant, parse_identity, parse_identity_located, verify_identity, Located,
};
pub use request::encode_request;
#[cfg(feature = "manager")]
pub use response::encode_response;
pub(crate) use response::{verify_response, Expected};

use std::fmt;

use crate::crypto::SignatureError;
use crate::xmlsig::enveloped::EnvelopedError;

/// The `code` of a `FAILED` answer: what the manager refused and why (ours; SPEC §9 maps
/// `TOKEN_INVALID` to the 400 token message and every other code to "unknown error").
pub mod codes {
    /// The request could not be parsed (also: larger than the manager's request limit),
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
    /// This manager does not grant export authorization keys (SPEC §7; permanent).
    pub const NOT_SUPPORTED: &str = "NOT_SUPPORTED";
    /// The message of [`NOT_SUPPORTED`] (SPEC §7).
    pub const NOT_SUPPORTED_MESSAGE: &str =
        "Export authorization keys are not supported by this Smart Software Manager";
    /// The Smart Account is not under export restrictions: the token's export flag applies
    /// (SPEC §7; permanent).
    pub const NOT_RESTRICTED: &str = "NOT_RESTRICTED";
    /// No export authorization key is left for the feature (SPEC §7; permanent).
    pub const NO_KEYS_AVAILABLE: &str = "NO_KEYS_AVAILABLE";
    /// A return of a key the instance does not hold (SPEC §7; permanent).
    pub const NOT_HELD: &str = "NOT_HELD";

    /// Whether a `FAILED` code to an export key request or return is permanent: reported
    /// with the manager's message and not retried (SPEC §7).
    pub fn is_permanent_export_refusal(code: &str) -> bool {
        [NOT_SUPPORTED, NOT_RESTRICTED, NO_KEYS_AVAILABLE, NOT_HELD].contains(&code)
    }
    /// The request is signed by a device key that a newer registration of the same UDI
    /// superseded or a deregistration retired (SPEC §12: device keys are single-use): a replayed
    /// request, or an agent restored from an old backup. SPEC §9's row "manager refused a
    /// request signed by a superseded or deregistered device key".
    pub const KEY_RETIRED: &str = "KEY_RETIRED";
}

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
    /// Deregister (best effort; returns the instance's export authorization keys).
    Deregister,
    /// Ask for an export authorization key for a feature (SPEC §7).
    ExportRequest,
    /// Return an export authorization key.
    ExportReturn,
}

/// Every request kind with its wire spelling: the wire's one table of operations.
const KINDS: [(RequestKind, &str); 6] = [
    (RequestKind::Register, "register"),
    (RequestKind::RenewId, "renewId"),
    (RequestKind::Authorize, "authorize"),
    (RequestKind::Deregister, "deregister"),
    (RequestKind::ExportRequest, "exportRequest"),
    (RequestKind::ExportReturn, "exportReturn"),
];

impl RequestKind {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        KINDS
            .iter()
            .find(|(k, _)| *k == self)
            .map_or("", |(_, s)| s)
    }

    /// Parses the wire spelling.
    pub fn parse(s: &str) -> Option<RequestKind> {
        KINDS.iter().find(|(_, w)| *w == s).map(|(k, _)| *k)
    }
}

impl fmt::Display for RequestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a transport could not deliver a request or bring back its answer; what the product
/// passes to [`Agent::handle_response`](crate::Agent::handle_response) instead of the answer
/// bytes. The transports map their library's errors onto it (SPEC §9), in the words of
/// [`SendFailure`]: `SendError::from(failure)`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// No answer within the configured time.
    #[error("communication timeout")]
    Timeout,
    /// DNS, connection refused or reset, proxy down, HTTP 5xx, a certificate refused for
    /// another reason than its issuer: `detail` says which.
    #[error("send error: {detail}")]
    Send {
        /// What went wrong, shown to users as the failure's detail: a
        /// [`SendFailure::phrase`] when it comes from this crate.
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

impl SendError {
    /// The detail a user sees with the failure's message: `None` for a timeout (its message
    /// says it all), else a [`SendFailure::phrase`] (or a product transport's own words).
    pub fn detail(&self) -> Option<&str> {
        match self {
            SendError::Timeout => None,
            SendError::Send { detail } => Some(detail),
            SendError::UnknownCa => Some(SendFailure::UnknownCa.phrase()),
            SendError::ProxyAuthentication => Some(SendFailure::ProxyAuthentication.phrase()),
            SendError::TooLarge => Some(SendFailure::TooLarge.phrase()),
        }
    }
}

impl From<SendFailure> for SendError {
    /// The three failures with a §9 row of their own keep their variant; every other one is
    /// a [`SendError::Send`] with its phrase as the detail.
    fn from(failure: SendFailure) -> SendError {
        match failure {
            SendFailure::UnknownCa => SendError::UnknownCa,
            SendFailure::ProxyAuthentication => SendError::ProxyAuthentication,
            SendFailure::TooLarge => SendError::TooLarge,
            other => SendError::Send {
                detail: other.phrase().to_string(),
            },
        }
    }
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
    Identity(IdentityError),
    /// The signed grant inside the answer failed verification or validation.
    #[error("authorization grant: {0}")]
    Grant(GrantError),
    /// The answer does not echo the request's nonce.
    #[error("nonce mismatch")]
    NonceMismatch,
    /// The answer does not echo the request's product-instance id.
    #[error("product instance id mismatch")]
    PiidMismatch,
    /// The answer is for another kind of request.
    #[error("answer is for another request type")]
    KindMismatch,
    /// The export authorization key inside the answer failed verification or validation;
    /// the text says which check.
    #[error("export authorization key: {0}")]
    ExportKey(String),
}

impl From<EnvelopedError> for AnswerError {
    fn from(e: EnvelopedError) -> Self {
        match e {
            EnvelopedError::Truncated => AnswerError::Truncated,
            EnvelopedError::Malformed(what) => AnswerError::Malformed(what),
        }
    }
}

/// Why a signed identity certificate was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// Not a well-formed certificate; the text says what is wrong.
    #[error("{0}")]
    Malformed(String),
    /// Its signature failed.
    #[error(transparent)]
    Signature(SignatureError),
    /// It names another UDI than this instance's.
    #[error("certificate is for another UDI")]
    OtherUdi,
    /// It certifies another device key than the one the request was signed with.
    #[error("certificate is for another device key")]
    OtherKey,
    /// Its not-after has already passed.
    #[error("certificate has already expired")]
    Expired,
}

/// Why a signed authorization grant was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GrantError {
    /// Not a well-formed grant; the text says what is wrong.
    #[error("{0}")]
    Malformed(String),
    /// Its signature failed.
    #[error(transparent)]
    Signature(SignatureError),
    /// It names another UDI than this instance's.
    #[error("grant is for another UDI")]
    OtherUdi,
    /// It answers another usage report than the one outstanding.
    #[error("grant answers another usage report")]
    OtherReport,
}

#[cfg(feature = "manager")]
/// Replaces the root signature of a signed document with one by `key`, over the same span.
/// The reference manager re-signs with it; tests use it to build answers that differ from a
/// genuine one in exactly one respect.
pub fn resign(
    document: &[u8],
    key: &crate::crypto::ManagerSigningKey,
) -> Result<Vec<u8>, AnswerError> {
    use crate::xmlsig::enveloped;
    let located = enveloped::locate(document)?;
    let unsigned = String::from_utf8(located.signed_bytes())
        .map_err(|_| AnswerError::Malformed("not UTF-8".into()))?;
    let signature = key
        .sign(unsigned.as_bytes())
        .map_err(|_| AnswerError::Malformed("signing failed".into()))?;
    Ok(enveloped::sign_document(
        &unsigned,
        &located.root,
        &signature,
    ))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
