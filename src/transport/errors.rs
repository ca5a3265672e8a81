//! The one mapping from what the HTTP and TLS libraries report to [`SendError`] (SPEC §9).

use std::io;
use std::time::Duration;

use rustls::CertificateError;

use crate::wire::SendError;

/// Who was being talked to, for the detail of a [`SendError::Send`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Peer {
    /// The manager's `host:port`.
    pub manager: String,
    /// The proxy's `host:port`, when going through one.
    pub proxy: Option<String>,
}

impl Peer {
    /// Whom a connection is made to: the proxy if there is one, else the manager.
    fn connected_to(&self) -> String {
        match &self.proxy {
            Some(proxy) => format!("the proxy {proxy}"),
            None => format!("the manager {}", self.manager),
        }
    }
}

fn send(detail: String) -> SendError {
    SendError::Send { detail }
}

/// Maps a ureq error (from the request or from reading the answer) onto the SPEC §9 table.
/// A non-2xx answer comes here as [`ureq::Error::StatusCode`].
pub(crate) fn map_error(err: ureq::Error, peer: &Peer) -> SendError {
    use ureq::Error as E;
    match err {
        E::Timeout(_) => SendError::Timeout,
        E::Io(e) => map_io(&e, peer),
        E::Rustls(e) => map_tls(&e, peer),
        E::HostNotFound => send(format!("DNS: no address found for {}", peer.connected_to())),
        E::StatusCode(code) => send(format!("the manager {} answered HTTP {code}", peer.manager)),
        E::ConnectProxyFailed(reason) => map_proxy_refusal(&reason, peer),
        E::BodyExceedsLimit(_) | E::LargeResponseHeader(..) => SendError::TooLarge,
        E::Protocol(e) => send(format!(
            "the manager {} did not answer in HTTP/1.1: {e}",
            peer.manager
        )),
        other => send(format!("{}: {other}", peer.connected_to())),
    }
}

/// An I/O error: a wrapped TLS error, a timeout, or a socket failure.
pub(crate) fn map_io(e: &io::Error, peer: &Peer) -> SendError {
    if let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return map_tls(tls, peer);
    }
    let to = peer.connected_to();
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => SendError::Timeout,
        io::ErrorKind::ConnectionRefused => send(format!("connection refused by {to}")),
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => send(format!("connection reset by {to}")),
        io::ErrorKind::UnexpectedEof => send(format!(
            "connection closed by {to} before the answer was complete"
        )),
        io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
            send(format!("no route to {to}"))
        }
        _ if e.to_string().contains("lookup address") => {
            send(format!("DNS: cannot resolve {to}: {e}"))
        }
        _ => send(format!("{to}: {e}")),
    }
}

/// A TLS failure: a certificate that does not chain to a configured CA is `UnknownCa`
/// ("invalid trust chain pool"); any other refusal (wrong name, expired, …) is a send error
/// that says what was wrong.
pub(crate) fn map_tls(e: &rustls::Error, peer: &Peer) -> SendError {
    match e {
        rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature,
        ) => SendError::UnknownCa,
        rustls::Error::InvalidCertificate(cert) => send(format!(
            "TLS: the certificate of the manager {} is not acceptable: {cert}",
            peer.manager
        )),
        other => send(format!(
            "TLS with the manager {} failed: {other}",
            peer.manager
        )),
    }
}

/// ureq reports a non-200 answer to `CONNECT` as "proxy server responded 407/407".
fn map_proxy_refusal(reason: &str, peer: &Peer) -> SendError {
    let proxy = peer.proxy.as_deref().unwrap_or("?");
    let code = reason
        .strip_prefix("proxy server responded ")
        .and_then(|rest| rest.get(..3))
        .and_then(|digits| digits.parse::<u16>().ok());
    match code {
        Some(code) if is_proxy_auth_status(code) => SendError::ProxyAuthentication,
        Some(code) => send(format!(
            "the proxy {proxy} refused the tunnel to {} with HTTP {code}",
            peer.manager
        )),
        None => send(format!("the proxy {proxy}: {reason}")),
    }
}

/// 407, and the 401 some proxies (tinyproxy 1.11) send for a wrong password.
pub(crate) fn is_proxy_auth_status(code: u16) -> bool {
    code == 407 || code == 401
}

/// A [`SendError`] in the words of the SPEC §9 table, for [`diagnose`](super::diagnose).
pub(crate) fn describe(e: &SendError, response_timeout: Duration, max: usize) -> String {
    match e {
        SendError::Timeout => format!(
            "communication timeout (no answer within {} s)",
            response_timeout.as_secs_f64()
        ),
        SendError::Send { detail } => format!("communication send error: {detail}"),
        SendError::UnknownCa => "invalid trust chain pool (Unknown CA)".to_string(),
        SendError::ProxyAuthentication => {
            "communication send error: proxy authentication required".to_string()
        }
        SendError::TooLarge => format!("the answer is larger than {max} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn direct() -> Peer {
        Peer {
            manager: "manager.example:443".into(),
            proxy: None,
        }
    }

    fn proxied() -> Peer {
        Peer {
            manager: "manager.example:443".into(),
            proxy: Some("127.0.0.1:3128".into()),
        }
    }

    fn detail(e: SendError) -> String {
        match e {
            SendError::Send { detail } => detail,
            other => panic!("expected a send error, got {other:?}"),
        }
    }

    fn tls_io(e: rustls::Error) -> ureq::Error {
        ureq::Error::Io(io::Error::new(io::ErrorKind::InvalidData, e))
    }

    #[test]
    fn timeouts() {
        assert_eq!(
            map_error(ureq::Error::Timeout(ureq::Timeout::Global), &direct()),
            SendError::Timeout
        );
        assert_eq!(
            map_error(ureq::Error::Timeout(ureq::Timeout::RecvResponse), &direct()),
            SendError::Timeout
        );
        assert_eq!(
            map_error(io::Error::from(io::ErrorKind::TimedOut).into(), &direct()),
            SendError::Timeout
        );
    }

    #[test]
    fn untrusted_issuer_is_unknown_ca_however_wrapped() {
        let unknown = || rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        assert_eq!(
            map_error(tls_io(unknown()), &direct()),
            SendError::UnknownCa
        );
        assert_eq!(
            map_error(ureq::Error::Rustls(unknown()), &proxied()),
            SendError::UnknownCa
        );
        // A CA with the name of the trusted one but another key.
        let forged = rustls::Error::InvalidCertificate(CertificateError::BadSignature);
        assert_eq!(map_error(tls_io(forged), &direct()), SendError::UnknownCa);
    }

    #[test]
    fn other_certificate_refusals_are_send_errors_naming_the_check() {
        let name = rustls::Error::InvalidCertificate(CertificateError::NotValidForName);
        let d = detail(map_error(tls_io(name), &direct()));
        assert!(
            d.contains("manager.example:443") && d.contains("TLS"),
            "{d}"
        );
        let expired = rustls::Error::InvalidCertificate(CertificateError::Expired);
        assert!(detail(map_error(tls_io(expired), &direct()))
            .to_lowercase()
            .contains("expired"));
        let alert = rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure);
        assert!(detail(map_error(tls_io(alert), &direct())).contains("TLS"));
    }

    #[test]
    fn proxy_authentication_407_and_401() {
        for reason in [
            "proxy server responded 407/407",
            "proxy server responded 401/401",
        ] {
            assert_eq!(
                map_error(ureq::Error::ConnectProxyFailed(reason.into()), &proxied()),
                SendError::ProxyAuthentication
            );
        }
        let d = detail(map_error(
            ureq::Error::ConnectProxyFailed("proxy server responded 403/403".into()),
            &proxied(),
        ));
        assert!(d.contains("403") && d.contains("127.0.0.1:3128"), "{d}");
        let d = detail(map_error(
            ureq::Error::ConnectProxyFailed("proxy server did not respond".into()),
            &proxied(),
        ));
        assert!(d.contains("did not respond"), "{d}");
    }

    #[test]
    fn socket_failures_name_who_failed() {
        let refused = || io::Error::from(io::ErrorKind::ConnectionRefused).into();
        assert_eq!(
            detail(map_error(refused(), &direct())),
            "connection refused by the manager manager.example:443"
        );
        assert_eq!(
            detail(map_error(refused(), &proxied())),
            "connection refused by the proxy 127.0.0.1:3128"
        );
        let reset = io::Error::from(io::ErrorKind::ConnectionReset).into();
        assert!(detail(map_error(reset, &direct())).contains("reset"));
        let eof = io::Error::from(io::ErrorKind::UnexpectedEof).into();
        assert!(detail(map_error(eof, &direct())).contains("closed"));
        let dns =
            io::Error::other("failed to lookup address information: Name or service not known");
        assert!(detail(map_error(dns.into(), &direct())).starts_with("DNS: "));
        assert!(detail(map_error(ureq::Error::HostNotFound, &direct())).starts_with("DNS: "));
    }

    #[test]
    fn http_errors_and_sizes() {
        let d = detail(map_error(ureq::Error::StatusCode(500), &direct()));
        assert!(d.contains("HTTP 500"), "{d}");
        assert_eq!(
            map_error(ureq::Error::BodyExceedsLimit(10), &direct()),
            SendError::TooLarge
        );
        assert_eq!(
            map_error(ureq::Error::LargeResponseHeader(70_000, 64_000), &direct()),
            SendError::TooLarge
        );
        assert!(detail(map_error(ureq::Error::ConnectionFailed, &direct())).contains("manager"));
    }

    #[test]
    fn descriptions_use_the_table_words() {
        let t = Duration::from_secs(60);
        assert_eq!(
            describe(&SendError::UnknownCa, t, 1),
            "invalid trust chain pool (Unknown CA)"
        );
        assert!(describe(&SendError::Timeout, t, 1).contains("timeout"));
        assert!(describe(&SendError::ProxyAuthentication, t, 1).contains("proxy authentication"));
        assert!(describe(&SendError::TooLarge, t, 7).contains("7 bytes"));
    }
}
