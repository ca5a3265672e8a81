//! [`HttpsTransport`]: ureq 3 over rustls (ring), with explicit trust and no environment proxy.

use std::fmt;
use std::time::Duration;

use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};

use super::config::{crypto_provider, Route, TransportConfig, TransportError};
use super::diagnose::proxy_answers_in_tls;
use super::errors::{map_error, Via};
use super::Transport;
use crate::settings::{ProxySettings, TransportSettings};
use crate::wire::{SendError, SendFailure};

/// The HTTPS [`Transport`]: POSTs each request document (`Content-Type: application/xml`) to
/// the manager the settings name and reads at most
/// [`TransportConfig::max_answer_bytes`] of the answer. It keeps one HTTP agent (and its
/// connection pool) for the last settings it was given and builds a new one when they change.
pub struct HttpsTransport {
    config: TransportConfig,
    tls: TlsConfig,
    cached: Option<Cached>,
    agents_built: u64,
}

struct Cached {
    settings: TransportSettings,
    agent: ureq::Agent,
    route: Route,
}

/// Why [`HttpsTransport::post`] brought back no answer body.
pub(crate) enum Refused {
    /// The manager answered with this non-2xx HTTP status.
    Status(u16),
    /// Anything else.
    Failed(SendError),
}

impl From<Refused> for SendError {
    fn from(refused: Refused) -> SendError {
        match refused {
            Refused::Status(code) => SendFailure::of_http_status(code).into(),
            Refused::Failed(e) => e,
        }
    }
}

impl fmt::Debug for HttpsTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpsTransport")
            .field("config", &self.config)
            .field("settings", &self.cached.as_ref().map(|c| &c.settings))
            .field("agents_built", &self.agents_built)
            .finish()
    }
}

impl HttpsTransport {
    /// Checks the configuration: at least one CA, an `https://` direct URL, positive
    /// timeouts and cap. Callers applying transport settings report a failure as
    /// [`Error::TransportApplyFailed`](crate::Error::TransportApplyFailed).
    pub fn new(config: TransportConfig) -> Result<HttpsTransport, TransportError> {
        config.check()?;
        let roots: Vec<Certificate<'static>> = config
            .ca_certificates()
            .map(|der| Certificate::from_der(der).to_owned())
            .collect();
        let tls = TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .unversioned_rustls_crypto_provider(crypto_provider())
            .root_certs(RootCerts::new_with_certs(&roots))
            .build();
        Ok(HttpsTransport {
            config,
            tls,
            cached: None,
            agents_built: 0,
        })
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &TransportConfig {
        &self.config
    }

    fn cached_for(&mut self, settings: &TransportSettings) -> Result<&Cached, SendError> {
        match self.cached.take() {
            Some(cached) if cached.settings == *settings => Ok(self.cached.insert(cached)),
            _ => {
                // The configuration was checked in `new`, so this does not fail in practice.
                let route = self
                    .config
                    .route(settings)
                    .map_err(|_| SendError::from(SendFailure::BadUrl))?;
                let agent = build_agent(&self.config, &self.tls, route.proxy.as_ref())?;
                self.agents_built = self.agents_built.saturating_add(1);
                Ok(self.cached.insert(Cached {
                    settings: settings.clone(),
                    agent,
                    route,
                }))
            }
        }
    }
}

impl HttpsTransport {
    /// [`Transport::send`], keeping a non-2xx status apart for [`diagnose`](super::diagnose).
    pub(crate) fn post(
        &mut self,
        settings: &TransportSettings,
        body: &[u8],
    ) -> Result<Vec<u8>, Refused> {
        let max = u64::try_from(self.config.max_answer_bytes()).unwrap_or(u64::MAX);
        let timeout = self.config.connect_timeout();
        let cached = self.cached_for(settings).map_err(Refused::Failed)?;
        let failed = |e| Refused::Failed(map_error_through(e, &cached.route, timeout));
        let mut response = cached
            .agent
            .post(cached.route.target.url.as_str())
            .header("Content-Type", "application/xml")
            .send(body)
            .map_err(failed)?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(Refused::Status(status));
        }
        response
            .body_mut()
            .with_config()
            .limit(max)
            .read_to_vec()
            .map_err(failed)
    }
}

impl Transport for HttpsTransport {
    fn send(&mut self, settings: &TransportSettings, body: &[u8]) -> Result<Vec<u8>, SendError> {
        self.post(settings, body).map_err(SendError::from)
    }
}

/// [`map_error`], and through a proxy, a failure that may be a TLS answer to the `CONNECT`
/// checked by asking the proxy once more ([`proxy_answers_in_tls`]).
fn map_error_through(e: ureq::Error, route: &Route, timeout: Duration) -> SendError {
    let mapped = map_error(e, via(route));
    let Some(proxy) = &route.proxy else {
        return mapped;
    };
    let perhaps_tls = mapped
        .detail()
        .and_then(SendFailure::from_phrase)
        .is_some_and(|f| {
            matches!(
                f,
                SendFailure::ProxyReset
                    | SendFailure::ProxyClosed
                    | SendFailure::ProxySilent
                    | SendFailure::ProxyNotHttp
                    | SendFailure::NotHttp
            )
        });
    if perhaps_tls && proxy_answers_in_tls(proxy, &route.target, timeout) {
        return SendFailure::ProxySpeaksTls.into();
    }
    mapped
}

/// Whom the TCP connection of `route` goes to.
pub(crate) fn via(route: &Route) -> Via {
    match route.proxy {
        Some(_) => Via::Proxy,
        None => Via::Direct,
    }
}

/// The one place a ureq agent is configured. ureq panics at first use without a crypto
/// provider or with its (left out) bundled roots, so both come from `tls`, built in
/// [`HttpsTransport::new`]; `.proxy(None)` keeps ureq from taking `HTTPS_PROXY` / `ALL_PROXY`
/// from the environment.
fn build_agent(
    config: &TransportConfig,
    tls: &TlsConfig,
    proxy: Option<&ProxySettings>,
) -> Result<ureq::Agent, SendError> {
    let proxy = proxy.map(ureq_proxy).transpose()?;
    let connect = Some(config.connect_timeout());
    let response = Some(config.response_timeout());
    Ok(ureq::Agent::config_builder()
        .tls_config(tls.clone())
        .proxy(proxy)
        .https_only(true)
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(concat!("smart-agent/", env!("CARGO_PKG_VERSION")))
        .accept("application/xml")
        // Each phase has its own budget; the global one caps the whole exchange so that a
        // slow server cannot hold a request (and a Driver handle waiting on it) for the sum.
        .timeout_global(Some(config.connect_timeout() + config.response_timeout()))
        .timeout_resolve(connect)
        .timeout_connect(connect)
        .timeout_send_request(response)
        .timeout_send_body(response)
        .timeout_recv_response(response)
        .timeout_recv_body(response)
        .build()
        .new_agent())
}

/// An HTTP CONNECT proxy; the target host name is resolved by the proxy.
fn ureq_proxy(settings: &ProxySettings) -> Result<ureq::Proxy, SendError> {
    let mut builder = ureq::Proxy::builder(ureq::ProxyProtocol::Http)
        .host(&settings.host().to_string())
        .port(settings.port())
        .resolve_target(false);
    if let Some(credentials) = settings.credentials() {
        builder = builder
            .username(&credentials.username)
            .password(&credentials.password);
    }
    builder
        .build()
        .map_err(|_| SendError::from(SendFailure::BadProxy))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> TransportConfig {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        let mut config = TransportConfig::new();
        config
            .add_ca_der(params.self_signed(&key).unwrap().der())
            .unwrap();
        config
    }

    #[test]
    fn a_boxed_transport_is_a_send_transport() {
        let mut boxed: Box<dyn Transport> = Box::new(HttpsTransport::new(config()).unwrap());
        fn assert_send<T: Send>(_: &T) {}
        assert_send(&boxed);
        let settings = TransportSettings::on_prem("https://127.0.0.1:1/SmartTransport").unwrap();
        assert!(matches!(
            boxed.send(&settings, b""),
            Err(SendError::Send { .. })
        ));
    }

    #[test]
    fn unusable_configurations_are_typed_errors() {
        assert_eq!(
            HttpsTransport::new(TransportConfig::new()).err(),
            Some(TransportError::NoCaCertificate)
        );
        assert!(matches!(
            HttpsTransport::new(config().with_direct_url("http://example.com/")),
            Err(TransportError::BadUrl { .. })
        ));
    }

    #[test]
    fn agents_for_every_mode_build_and_fail_without_panicking() {
        // Port 1 on loopback: nothing listens, so each mode reaches ureq's connect path (TLS
        // config, proxy) and comes back as a send error.
        let mut transport =
            HttpsTransport::new(config().with_direct_url("https://127.0.0.1:1/x")).unwrap();
        let settings = [
            TransportSettings::Direct,
            TransportSettings::on_prem("https://127.0.0.1:1/SmartTransport").unwrap(),
            TransportSettings::proxy("127.0.0.1", "1", None).unwrap(),
            TransportSettings::proxy("::1", "1", Some(("user", "p@ss:word"))).unwrap(),
        ];
        for s in &settings {
            let err = transport.send(s, b"<request/>").unwrap_err();
            assert!(matches!(err, SendError::Send { .. }), "{s:?}: {err:?}");
        }
    }

    #[test]
    fn the_agent_is_kept_while_the_settings_stay_the_same() {
        let mut transport =
            HttpsTransport::new(config().with_direct_url("https://127.0.0.1:1/x")).unwrap();
        let _ = transport.send(&TransportSettings::Direct, b"");
        let _ = transport.send(&TransportSettings::Direct, b"");
        assert_eq!(transport.agents_built, 1);
        let proxy = TransportSettings::proxy("127.0.0.1", "1", None).unwrap();
        let _ = transport.send(&proxy, b"");
        assert_eq!(transport.agents_built, 2);
        assert_eq!(transport.cached.as_ref().map(|c| &c.settings), Some(&proxy));
    }
}
