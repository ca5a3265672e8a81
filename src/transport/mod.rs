//! Reaching the manager over HTTPS (SPEC §8): directly, through an HTTP CONNECT proxy, or at an
//! on-prem manager; and [`diagnose`], which walks the same path step by step for the CLI.
//!
//! [`HttpsTransport`] is a [`Transport`] built from a [`TransportConfig`] (trusted CA
//! certificates, the direct URL, timeouts, the answer cap) and driven by the agent's
//! [`TransportSettings`] on every call:
//!
//! | settings | endpoint | path |
//! |---|---|---|
//! | [`Direct`](TransportSettings::Direct) | [`TransportConfig::direct_url`] | straight |
//! | [`OnPrem`](TransportSettings::OnPrem) | the gateway URL (its host name must match its certificate) | straight |
//! | [`Proxy`](TransportSettings::Proxy) | [`TransportConfig::direct_url`] | HTTP `CONNECT` through the proxy, optional basic auth |
//!
//! Trust is explicit (SPEC §2): only the configured CA certificates, never the platform store
//! or bundled web roots; ring is the rustls provider. Proxy environment variables
//! (`HTTPS_PROXY`, `ALL_PROXY`, …) are ignored: only the configured proxy is used.
//!
//! Failures map onto [`SendError`] as the SPEC §9 table says: a timeout is
//! [`SendError::Timeout`]; DNS, refused, reset, proxy down and HTTP errors are
//! [`SendError::Send`] with a detail naming what happened; a certificate that does not chain
//! to a configured CA (issued by another CA, self-signed, or a CA certificate presented as the
//! server's) is [`SendError::UnknownCa`] ("invalid trust chain pool", "Unknown CA"), while a
//! certificate for another host name or an expired one is a [`SendError::Send`] saying so;
//! a proxy answering 407 (or the 401 some proxies send for a wrong password) is
//! [`SendError::ProxyAuthentication`]; an answer over the cap is [`SendError::TooLarge`].
//! Every detail is one of the phrases of [`SendFailure`](crate::SendFailure), and
//! [`diagnose`] says its failures in the same words.
//!
//! ```no_run
//! use smart_agent::transport::{HttpsTransport, Transport, TransportConfig};
//! use smart_agent::TransportSettings;
//!
//! let mut config = TransportConfig::new();
//! config.add_ca_pem(&std::fs::read("manager-ca.pem")?)?;
//! let mut transport = HttpsTransport::new(config)?;
//! let settings = TransportSettings::on_prem("https://satellite.example.com:8443/SmartTransport")?;
//! let answer = transport.send(&settings, b"<request>...</request>");
//! # let _ = answer;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod config;
mod diagnose;
mod errors;
mod https;

pub use config::{
    TransportConfig, TransportError, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_ANSWER_BYTES,
    DEFAULT_RESPONSE_TIMEOUT,
};
pub use diagnose::{diagnose, Diagnosis, Step, StepOutcome, StepReport, PROBE};
pub use https::HttpsTransport;

use crate::settings::TransportSettings;
use crate::wire::SendError;

/// What the Driver uses to reach the manager.
pub trait Transport: Send {
    /// POSTs one request document to the manager named by `settings`; the answer body, or why
    /// not.
    fn send(&mut self, settings: &TransportSettings, body: &[u8]) -> Result<Vec<u8>, SendError>;
}

/// A boxed transport is a transport, so a Driver can hold `Box<dyn Transport>`.
impl<T: Transport + ?Sized> Transport for Box<T> {
    fn send(&mut self, settings: &TransportSettings, body: &[u8]) -> Result<Vec<u8>, SendError> {
        (**self).send(settings, body)
    }
}
