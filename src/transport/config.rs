//! What an HTTPS transport is built from, and where a request goes for given settings.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::RootCertStore;

use crate::error::Error;
use crate::settings::{Host, ProxySettings, TransportSettings, DIRECT_URL};

/// How long to wait for a TCP connection and the TLS handshake (per attempt) by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for sending the request and receiving the whole answer by default.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
/// The largest answer body read by default (1 MiB, as [`Policy`](crate::Policy)'s default).
pub const DEFAULT_MAX_ANSWER_BYTES: usize = 1 << 20;

/// Why a transport configuration is unusable. Callers applying transport settings report it
/// as [`Error::TransportApplyFailed`] (500 "Failed to apply the Transport Settings"); the
/// `From` conversion does that.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// No CA certificate is configured, so no manager could be trusted.
    #[error("no CA certificate configured: only configured CA certificates are trusted")]
    NoCaCertificate,
    /// [`TransportConfig::add_ca_pem`] / [`TransportConfig::add_ca_der`] were given something
    /// that is not a usable certificate; nothing was added.
    #[error("not a usable CA certificate: {0}")]
    BadCertificate(String),
    /// The manager URL is not `https://host[:port][/path]`.
    #[error("invalid manager URL {url:?}: {why}")]
    BadUrl {
        /// The URL as configured.
        url: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A timeout or the answer cap is zero.
    #[error("invalid transport configuration: {0}")]
    BadLimit(&'static str),
}

impl From<TransportError> for Error {
    fn from(_: TransportError) -> Error {
        Error::TransportApplyFailed
    }
}

/// Trusted CA certificates, the direct URL, timeouts and the answer cap: everything an
/// [`HttpsTransport`](super::HttpsTransport) and [`diagnose`](super::diagnose) need besides
/// the agent's [`TransportSettings`].
///
/// ```
/// use std::time::Duration;
/// use smart_agent::transport::TransportConfig;
///
/// let config = TransportConfig::new()
///     .with_direct_url("https://staging.example.com/licservice/license")
///     .with_connect_timeout(Duration::from_secs(5));
/// assert_eq!(config.response_timeout(), Duration::from_secs(60));
/// assert_eq!(config.ca_certificates().count(), 0); // add_ca_pem / add_ca_der before use
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct TransportConfig {
    ca: Vec<CertificateDer<'static>>,
    direct_url: String,
    connect_timeout: Duration,
    response_timeout: Duration,
    max_answer_bytes: usize,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            ca: Vec::new(),
            direct_url: DIRECT_URL.to_string(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            max_answer_bytes: DEFAULT_MAX_ANSWER_BYTES,
        }
    }
}

impl fmt::Debug for TransportConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportConfig")
            .field("ca_certificates", &self.ca.len())
            .field("direct_url", &self.direct_url)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("max_answer_bytes", &self.max_answer_bytes)
            .finish()
    }
}

impl TransportConfig {
    /// No trusted CA yet, [`DIRECT_URL`], the default timeouts and cap.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds every certificate of a PEM document (one or more `CERTIFICATE` blocks; other
    /// blocks are skipped) to the trusted CAs; returns how many. All or nothing: on error
    /// nothing is added.
    pub fn add_ca_pem(&mut self, pem: &[u8]) -> Result<usize, TransportError> {
        let mut found = Vec::new();
        for item in CertificateDer::pem_slice_iter(pem) {
            let cert = item.map_err(|e| TransportError::BadCertificate(format!("PEM: {e}")))?;
            check_certificate(&cert)?;
            found.push(cert);
        }
        if found.is_empty() {
            return Err(TransportError::BadCertificate(
                "no CERTIFICATE block in the PEM input".into(),
            ));
        }
        let added = found.len();
        self.ca.extend(found);
        Ok(added)
    }

    /// Adds one DER-encoded certificate to the trusted CAs.
    pub fn add_ca_der(&mut self, der: &[u8]) -> Result<(), TransportError> {
        let cert = CertificateDer::from(der.to_vec());
        check_certificate(&cert)?;
        self.ca.push(cert);
        Ok(())
    }

    /// The trusted CA certificates (DER), in the order added.
    pub fn ca_certificates(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.ca.iter().map(|c| c.as_ref())
    }

    /// Sets the direct (cloud) URL, also used through a proxy: a staging or test manager. It
    /// must be `https://`; that is checked when a transport is built
    /// ([`TransportError::BadUrl`]) and by [`diagnose`](super::diagnose)'s URL step.
    pub fn with_direct_url(mut self, url: impl Into<String>) -> Self {
        self.direct_url = url.into();
        self
    }

    /// The direct URL ([`DIRECT_URL`] unless set).
    pub fn direct_url(&self) -> &str {
        &self.direct_url
    }

    /// Sets the time allowed for resolving, connecting (to the manager or the proxy, including
    /// the `CONNECT` exchange) and the TLS handshake.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The connect timeout ([`DEFAULT_CONNECT_TIMEOUT`] unless set).
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// Sets the time allowed for each of: sending the request, receiving the answer's
    /// headers, receiving the answer's body.
    pub fn with_response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// The response timeout ([`DEFAULT_RESPONSE_TIMEOUT`] unless set).
    pub fn response_timeout(&self) -> Duration {
        self.response_timeout
    }

    /// Sets the largest answer body read; a larger one is
    /// [`SendError::TooLarge`](crate::SendError::TooLarge), never parsed.
    pub fn with_max_answer_bytes(mut self, max: usize) -> Self {
        self.max_answer_bytes = max;
        self
    }

    /// The answer cap ([`DEFAULT_MAX_ANSWER_BYTES`] unless set).
    pub fn max_answer_bytes(&self) -> usize {
        self.max_answer_bytes
    }

    /// Everything but the CA list: the direct URL parses, timeouts and cap are positive.
    pub(crate) fn check_limits_and_url(&self) -> Result<Target, TransportError> {
        if self.connect_timeout.is_zero() {
            return Err(TransportError::BadLimit("the connect timeout is zero"));
        }
        if self.response_timeout.is_zero() {
            return Err(TransportError::BadLimit("the response timeout is zero"));
        }
        if self.max_answer_bytes == 0 {
            return Err(TransportError::BadLimit("the answer cap is zero"));
        }
        Target::parse(&self.direct_url)
    }

    /// The whole configuration is usable: [`Self::check_limits_and_url`] and at least one CA.
    pub(crate) fn check(&self) -> Result<Target, TransportError> {
        let direct = self.check_limits_and_url()?;
        if self.ca.is_empty() {
            return Err(TransportError::NoCaCertificate);
        }
        Ok(direct)
    }

    /// The trusted CAs as a rustls root store (every one was checked when added).
    pub(crate) fn root_store(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add_parsable_certificates(self.ca.iter().cloned());
        roots
    }

    /// Where a request goes for `settings`.
    pub(crate) fn route(&self, settings: &TransportSettings) -> Result<Route, TransportError> {
        Ok(match settings {
            TransportSettings::Direct => Route {
                target: Target::parse(&self.direct_url)?,
                proxy: None,
            },
            TransportSettings::OnPrem(gateway) => Route {
                target: Target {
                    url: gateway.url(),
                    host: gateway.host().clone(),
                    port: gateway.port(),
                },
                proxy: None,
            },
            TransportSettings::Proxy(proxy) => Route {
                target: Target::parse(&self.direct_url)?,
                proxy: Some(proxy.clone()),
            },
        })
    }
}

/// The rustls crypto provider of the crate's TLS clients ([`crate::crypto::tls_provider`]).
pub(crate) fn crypto_provider() -> Arc<CryptoProvider> {
    crate::crypto::tls_provider()
}

fn check_certificate(cert: &CertificateDer<'static>) -> Result<(), TransportError> {
    RootCertStore::empty()
        .add(cert.clone())
        .map_err(|e| TransportError::BadCertificate(e.to_string()))
}

/// A manager endpoint: its URL and where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    pub url: String,
    pub host: Host,
    pub port: u16,
}

impl Target {
    /// Parses `https://host[:port][/path]` (host: DNS name, IPv4 or `[IPv6]`).
    pub fn parse(url: &str) -> Result<Target, TransportError> {
        let bad = |why| TransportError::BadUrl {
            url: url.to_string(),
            why,
        };
        let rest = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => rest,
            Some(_) => return Err(bad("only https:// is allowed")),
            None => return Err(bad("not an absolute https:// URL")),
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..end];
        if authority.contains('@') {
            return Err(bad("user information is not allowed"));
        }
        let (host, port) = match authority.rfind(':') {
            Some(colon) if !authority[colon..].contains(']') => {
                let port = authority[colon + 1..]
                    .parse::<u16>()
                    .ok()
                    .filter(|&p| p != 0)
                    .ok_or_else(|| bad("the port must be 1-65535"))?;
                (&authority[..colon], port)
            }
            _ => (authority, 443),
        };
        let parsed = Host::parse(host).ok_or_else(|| bad("invalid host"))?;
        if matches!(parsed.ip(), Some(IpAddr::V6(_))) != host.starts_with('[') {
            return Err(bad("an IPv6 address must be in brackets"));
        }
        // The HTTP client must read the URL the same way.
        if ureq::http::Uri::try_from(url).is_err() {
            return Err(bad("not a valid URI"));
        }
        Ok(Target {
            url: url.to_string(),
            host: parsed,
            port,
        })
    }

    /// `host:port` as in a `CONNECT` request and in messages (`[v6]:port`).
    pub fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// The TLS server name for a host (an IP address or a DNS name).
pub(crate) fn server_name(host: &Host) -> Option<ServerName<'static>> {
    match host.ip() {
        Some(ip) => Some(ServerName::IpAddress(ip.into())),
        None => ServerName::try_from(host.name()?.to_string()).ok(),
    }
}

/// The host as given to a resolver (`::1`, not `[::1]`).
pub(crate) fn bare_host(host: &Host) -> String {
    match host.ip() {
        Some(ip) => ip.to_string(),
        None => host.to_string(),
    }
}

/// Where a request goes: the manager, possibly through a proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Route {
    pub target: Target,
    pub proxy: Option<ProxySettings>,
}

impl Route {
    /// The proxy's `host:port`, if any.
    pub fn proxy_authority(&self) -> Option<String> {
        self.proxy
            .as_ref()
            .map(|p| format!("{}:{}", p.host(), p.port()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca_pem(name: &str) -> String {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn pem_with_several_certificates_adds_them_all() {
        let mut config = TransportConfig::new();
        let pem = format!("{}\n{}", ca_pem("one"), ca_pem("two"));
        assert_eq!(config.add_ca_pem(pem.as_bytes()), Ok(2));
        assert_eq!(config.ca_certificates().count(), 2);
        let der = config.ca_certificates().next().unwrap().to_vec();
        config.add_ca_der(&der).unwrap();
        assert_eq!(config.ca_certificates().count(), 3);
        assert_eq!(config.root_store().len(), 3);
    }

    #[test]
    fn unusable_certificates_are_typed_errors_and_add_nothing() {
        let mut config = TransportConfig::new();
        for bad in [
            &b""[..],
            b"hello",
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        ] {
            assert!(matches!(
                config.add_ca_pem(bad),
                Err(TransportError::BadCertificate(_))
            ));
        }
        let broken = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let mixed = format!("{}{broken}", ca_pem("good"));
        assert!(matches!(
            config.add_ca_pem(mixed.as_bytes()),
            Err(TransportError::BadCertificate(_))
        ));
        assert!(matches!(
            config.add_ca_der(b"\x30\x03\x02\x01\x01"),
            Err(TransportError::BadCertificate(_))
        ));
        assert_eq!(config.ca_certificates().count(), 0);
        assert_eq!(config.check(), Err(TransportError::NoCaCertificate));
        assert_eq!(
            Error::from(TransportError::NoCaCertificate),
            Error::TransportApplyFailed
        );
    }

    #[test]
    fn direct_urls() {
        for (url, host, port) in [
            (DIRECT_URL, "tools.cisco.com", 443),
            ("https://localhost:8443/x", "localhost", 8443),
            ("HTTPS://127.0.0.1:1", "127.0.0.1", 1),
            ("https://[::1]:65535/a?b", "[::1]", 65535),
            ("https://[2001:db8::1]", "[2001:db8::1]", 443),
        ] {
            let target = Target::parse(url).unwrap();
            assert_eq!(
                (target.host.to_string().as_str(), target.port),
                (host, port)
            );
        }
        for url in [
            "http://tools.cisco.com/",
            "tools.cisco.com",
            "ftp://x/",
            "https://",
            "https:///path",
            "https://host:0/",
            "https://host:65536/",
            "https://host:/",
            "https://user:pw@host/",
            "https://::1/",
            "https://[host]/",
            "https://bad_host/",
            "https://a b/",
        ] {
            assert!(
                matches!(Target::parse(url), Err(TransportError::BadUrl { .. })),
                "{url}"
            );
        }
    }

    #[test]
    fn routes_per_mode() {
        let config = TransportConfig::new().with_direct_url("https://staging.example.com/x");
        let direct = config.route(&TransportSettings::Direct).unwrap();
        assert_eq!(direct.target.url, "https://staging.example.com/x");
        assert_eq!(direct.proxy_authority(), None);

        let on_prem = TransportSettings::on_prem("https://[::1]:8443/SmartTransport").unwrap();
        let route = config.route(&on_prem).unwrap();
        assert_eq!(route.target.url, "https://[::1]:8443/SmartTransport");
        assert_eq!(route.target.authority(), "[::1]:8443");
        assert_eq!(bare_host(&route.target.host), "::1");
        assert!(server_name(&route.target.host).is_some());

        let proxy = TransportSettings::proxy("2001:db8::5", "443", Some(("u", "p"))).unwrap();
        let route = config.route(&proxy).unwrap();
        assert_eq!(route.target.url, "https://staging.example.com/x");
        assert_eq!(
            route.proxy_authority().as_deref(),
            Some("[2001:db8::5]:443")
        );

        let bad = TransportConfig::new().with_direct_url("http://staging.example.com/x");
        assert!(bad.route(&TransportSettings::Direct).is_err());
        assert!(
            bad.route(&on_prem).is_ok(),
            "on-prem does not use the direct URL"
        );
    }

    #[test]
    fn zero_limits_are_refused() {
        let ok = TransportConfig::new();
        assert!(ok.check_limits_and_url().is_ok());
        for bad in [
            ok.clone().with_connect_timeout(Duration::ZERO),
            ok.clone().with_response_timeout(Duration::ZERO),
            ok.clone().with_max_answer_bytes(0),
        ] {
            assert!(matches!(
                bad.check_limits_and_url(),
                Err(TransportError::BadLimit(_))
            ));
        }
    }
}
