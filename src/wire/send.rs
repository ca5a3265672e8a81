//! [`SendFailure`]: the one closed list of words a user sees for a transport failure.

use std::fmt;

/// Why a request did not reach the manager or its answer did not come back, in the words a
/// user sees: the detail of a [`Failure`](crate::Failure) whose kind is
/// [`FailureKind::Send`](crate::FailureKind::Send), and the words of the failing step of
/// `transport::diagnose`. This is the whole list: the crate's transports report nothing
/// else, so no library's error text (let alone its `Debug` form) reaches a user. A product
/// with its own `Transport` should report through it too
/// (`SendError::from(SendFailure::ManagerRefused)`).
///
/// "The manager" is the endpoint the settings name (the cloud, an on-prem manager or a
/// transport gateway); "the proxy" is the configured HTTP proxy. Where a failure could come
/// from either, it names the one the agent's connection goes to.
///
/// | phrase | |
/// |---|---|
/// | `Unknown CA` | [`UnknownCa`](Self::UnknownCa) |
/// | `the manager's certificate is not valid for its host name` | [`CertificateNotForHost`](Self::CertificateNotForHost) |
/// | `the manager's certificate has expired` | [`CertificateExpired`](Self::CertificateExpired) |
/// | `the manager's certificate is not valid yet` | [`CertificateNotYetValid`](Self::CertificateNotYetValid) |
/// | `the manager's certificate is not for a TLS server` | [`CertificateNotForServer`](Self::CertificateNotForServer) |
/// | `the manager's certificate is not acceptable` | [`CertificateUnacceptable`](Self::CertificateUnacceptable) |
/// | `the manager does not speak TLS` | [`NotTls`](Self::NotTls) |
/// | `the manager and the agent have no TLS version or cipher suite in common` | [`TlsIncompatible`](Self::TlsIncompatible) |
/// | `the TLS handshake with the manager failed` | [`TlsFailed`](Self::TlsFailed) |
/// | `proxy authentication required` | [`ProxyAuthentication`](Self::ProxyAuthentication) |
/// | `the proxy refused the tunnel to the manager` | [`ProxyRefusedTunnel`](Self::ProxyRefusedTunnel) |
/// | `the proxy did not answer the tunnel request` | [`ProxySilent`](Self::ProxySilent) |
/// | `the proxy answered in TLS, not HTTP` | [`ProxySpeaksTls`](Self::ProxySpeaksTls) |
/// | `the proxy's answer is not HTTP` | [`ProxyNotHttp`](Self::ProxyNotHttp) |
/// | `cannot resolve the manager's host name` | [`ManagerNotFound`](Self::ManagerNotFound) |
/// | `cannot resolve the proxy's host name` | [`ProxyNotFound`](Self::ProxyNotFound) |
/// | `connection refused by the manager` | [`ManagerRefused`](Self::ManagerRefused) |
/// | `connection refused by the proxy` | [`ProxyRefused`](Self::ProxyRefused) |
/// | `connection reset by the manager` | [`ManagerReset`](Self::ManagerReset) |
/// | `connection reset by the proxy` | [`ProxyReset`](Self::ProxyReset) |
/// | `connection closed by the manager before the answer was complete` | [`ManagerClosed`](Self::ManagerClosed) |
/// | `connection closed by the proxy before the answer was complete` | [`ProxyClosed`](Self::ProxyClosed) |
/// | `no route to the manager` | [`ManagerUnreachable`](Self::ManagerUnreachable) |
/// | `no route to the proxy` | [`ProxyUnreachable`](Self::ProxyUnreachable) |
/// | `the connection to the manager failed` | [`ManagerConnectionFailed`](Self::ManagerConnectionFailed) |
/// | `the connection to the proxy failed` | [`ProxyConnectionFailed`](Self::ProxyConnectionFailed) |
/// | `the manager answered with an HTTP redirect, which is not followed` | [`HttpRedirect`](Self::HttpRedirect) |
/// | `the manager answered with an HTTP client error` | [`HttpClientError`](Self::HttpClientError) |
/// | `the manager answered with an HTTP server error` | [`HttpServerError`](Self::HttpServerError) |
/// | `the manager answered with an unexpected HTTP status` | [`HttpUnexpectedStatus`](Self::HttpUnexpectedStatus) |
/// | `the manager's answer is not HTTP/1.1` | [`NotHttp`](Self::NotHttp) |
/// | `answer too large` | [`TooLarge`](Self::TooLarge) |
/// | `the configured manager URL cannot be used` | [`BadUrl`](Self::BadUrl) |
/// | `the configured proxy cannot be used` | [`BadProxy`](Self::BadProxy) |
/// | `the HTTPS request could not be made` | [`RequestFailed`](Self::RequestFailed) |
/// | `not sent: the agent's state could not be saved` | [`NotSaved`](Self::NotSaved) |
///
/// A timeout has no detail: its message says it all
/// ([`SendError::Timeout`](crate::SendError::Timeout)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SendFailure {
    /// The manager's certificate does not chain to a configured CA: issued by another CA,
    /// self-signed, or a CA certificate presented as the server's (SPEC §9, "invalid trust
    /// chain pool"). [`SendError::UnknownCa`](crate::SendError::UnknownCa).
    UnknownCa,
    /// The manager's certificate chains to a configured CA but names other hosts.
    CertificateNotForHost,
    /// The manager's certificate (or one of its chain) has expired.
    CertificateExpired,
    /// The manager's certificate (or one of its chain) is not valid yet: check the clock.
    CertificateNotYetValid,
    /// The manager's certificate is not meant for a TLS server (extended key usage).
    CertificateNotForServer,
    /// The manager's certificate is refused for another reason (encoding, algorithm, …).
    CertificateUnacceptable,
    /// What came back to the TLS greeting is not TLS (an `http://` port?).
    NotTls,
    /// No TLS version or cipher suite both sides accept.
    TlsIncompatible,
    /// The TLS handshake failed otherwise (the manager sent an alert, broke the protocol, …).
    TlsFailed,
    /// The proxy asked for (other) credentials: HTTP 407, or the 401 some proxies send.
    /// [`SendError::ProxyAuthentication`](crate::SendError::ProxyAuthentication).
    ProxyAuthentication,
    /// The proxy answered the `CONNECT` with a status other than 2xx, 401 and 407.
    ProxyRefusedTunnel,
    /// The proxy said nothing to the `CONNECT` request.
    ProxySilent,
    /// The proxy answered the `CONNECT` request in TLS: an HTTPS port, not an HTTP proxy.
    ProxySpeaksTls,
    /// The proxy answered the `CONNECT` request with something that is not HTTP.
    ProxyNotHttp,
    /// DNS has no address for the manager.
    ManagerNotFound,
    /// DNS has no address for the proxy.
    ProxyNotFound,
    /// Nothing listens at the manager's address and port.
    ManagerRefused,
    /// Nothing listens at the proxy's address and port: the proxy is down.
    ProxyRefused,
    /// The manager reset the connection.
    ManagerReset,
    /// The proxy reset the connection.
    ProxyReset,
    /// The manager closed the connection before the whole answer had arrived.
    ManagerClosed,
    /// The proxy closed the connection before the whole answer had arrived.
    ProxyClosed,
    /// The network has no route to the manager.
    ManagerUnreachable,
    /// The network has no route to the proxy.
    ProxyUnreachable,
    /// The connection to the manager failed otherwise.
    ManagerConnectionFailed,
    /// The connection to the proxy failed otherwise.
    ProxyConnectionFailed,
    /// HTTP 3xx: redirects are not followed (the settings name the manager).
    HttpRedirect,
    /// HTTP 4xx from the manager (a wrong path, say).
    HttpClientError,
    /// HTTP 5xx from the manager.
    HttpServerError,
    /// Another non-2xx HTTP status from the manager.
    HttpUnexpectedStatus,
    /// The manager's answer is not an HTTP/1.1 answer.
    NotHttp,
    /// The answer is larger than the transport's limit.
    /// [`SendError::TooLarge`](crate::SendError::TooLarge).
    TooLarge,
    /// The direct URL of the transport's configuration is not usable.
    BadUrl,
    /// The proxy of the settings cannot be given to the HTTP client.
    BadProxy,
    /// The HTTP client refused to make the request for another reason.
    RequestFailed,
    /// The request was not sent because the state that names it could not be saved first
    /// (the `Driver` saves before it sends).
    NotSaved,
}

impl SendFailure {
    /// Every failure, in the order of the table above.
    pub const ALL: &'static [SendFailure] = &[
        SendFailure::UnknownCa,
        SendFailure::CertificateNotForHost,
        SendFailure::CertificateExpired,
        SendFailure::CertificateNotYetValid,
        SendFailure::CertificateNotForServer,
        SendFailure::CertificateUnacceptable,
        SendFailure::NotTls,
        SendFailure::TlsIncompatible,
        SendFailure::TlsFailed,
        SendFailure::ProxyAuthentication,
        SendFailure::ProxyRefusedTunnel,
        SendFailure::ProxySilent,
        SendFailure::ProxySpeaksTls,
        SendFailure::ProxyNotHttp,
        SendFailure::ManagerNotFound,
        SendFailure::ProxyNotFound,
        SendFailure::ManagerRefused,
        SendFailure::ProxyRefused,
        SendFailure::ManagerReset,
        SendFailure::ProxyReset,
        SendFailure::ManagerClosed,
        SendFailure::ProxyClosed,
        SendFailure::ManagerUnreachable,
        SendFailure::ProxyUnreachable,
        SendFailure::ManagerConnectionFailed,
        SendFailure::ProxyConnectionFailed,
        SendFailure::HttpRedirect,
        SendFailure::HttpClientError,
        SendFailure::HttpServerError,
        SendFailure::HttpUnexpectedStatus,
        SendFailure::NotHttp,
        SendFailure::TooLarge,
        SendFailure::BadUrl,
        SendFailure::BadProxy,
        SendFailure::RequestFailed,
        SendFailure::NotSaved,
    ];

    /// The words a user sees.
    pub fn phrase(self) -> &'static str {
        use SendFailure as F;
        match self {
            F::UnknownCa => "Unknown CA",
            F::CertificateNotForHost => "the manager's certificate is not valid for its host name",
            F::CertificateExpired => "the manager's certificate has expired",
            F::CertificateNotYetValid => "the manager's certificate is not valid yet",
            F::CertificateNotForServer => "the manager's certificate is not for a TLS server",
            F::CertificateUnacceptable => "the manager's certificate is not acceptable",
            F::NotTls => "the manager does not speak TLS",
            F::TlsIncompatible => {
                "the manager and the agent have no TLS version or cipher suite in common"
            }
            F::TlsFailed => "the TLS handshake with the manager failed",
            F::ProxyAuthentication => "proxy authentication required",
            F::ProxyRefusedTunnel => "the proxy refused the tunnel to the manager",
            F::ProxySilent => "the proxy did not answer the tunnel request",
            F::ProxySpeaksTls => "the proxy answered in TLS, not HTTP",
            F::ProxyNotHttp => "the proxy's answer is not HTTP",
            F::ManagerNotFound => "cannot resolve the manager's host name",
            F::ProxyNotFound => "cannot resolve the proxy's host name",
            F::ManagerRefused => "connection refused by the manager",
            F::ProxyRefused => "connection refused by the proxy",
            F::ManagerReset => "connection reset by the manager",
            F::ProxyReset => "connection reset by the proxy",
            F::ManagerClosed => "connection closed by the manager before the answer was complete",
            F::ProxyClosed => "connection closed by the proxy before the answer was complete",
            F::ManagerUnreachable => "no route to the manager",
            F::ProxyUnreachable => "no route to the proxy",
            F::ManagerConnectionFailed => "the connection to the manager failed",
            F::ProxyConnectionFailed => "the connection to the proxy failed",
            F::HttpRedirect => "the manager answered with an HTTP redirect, which is not followed",
            F::HttpClientError => "the manager answered with an HTTP client error",
            F::HttpServerError => "the manager answered with an HTTP server error",
            F::HttpUnexpectedStatus => "the manager answered with an unexpected HTTP status",
            F::NotHttp => "the manager's answer is not HTTP/1.1",
            F::TooLarge => "answer too large",
            F::BadUrl => "the configured manager URL cannot be used",
            F::BadProxy => "the configured proxy cannot be used",
            F::RequestFailed => "the HTTPS request could not be made",
            F::NotSaved => "not sent: the agent's state could not be saved",
        }
    }

    /// The failure whose [`phrase`](Self::phrase) this is, if any: whether a detail comes from
    /// the list.
    pub fn from_phrase(phrase: &str) -> Option<SendFailure> {
        SendFailure::ALL
            .iter()
            .copied()
            .find(|f| f.phrase() == phrase)
    }

    /// The failure an HTTP status other than 2xx from the manager is.
    pub fn of_http_status(code: u16) -> SendFailure {
        match code {
            300..=399 => SendFailure::HttpRedirect,
            400..=499 => SendFailure::HttpClientError,
            500..=599 => SendFailure::HttpServerError,
            _ => SendFailure::HttpUnexpectedStatus,
        }
    }
}

impl fmt::Display for SendFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.phrase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exhaustive on purpose: a new variant does not compile until it has a place in `ALL`.
    fn position(f: SendFailure) -> usize {
        use SendFailure as F;
        match f {
            F::UnknownCa => 0,
            F::CertificateNotForHost => 1,
            F::CertificateExpired => 2,
            F::CertificateNotYetValid => 3,
            F::CertificateNotForServer => 4,
            F::CertificateUnacceptable => 5,
            F::NotTls => 6,
            F::TlsIncompatible => 7,
            F::TlsFailed => 8,
            F::ProxyAuthentication => 9,
            F::ProxyRefusedTunnel => 10,
            F::ProxySilent => 11,
            F::ProxySpeaksTls => 12,
            F::ProxyNotHttp => 13,
            F::ManagerNotFound => 14,
            F::ProxyNotFound => 15,
            F::ManagerRefused => 16,
            F::ProxyRefused => 17,
            F::ManagerReset => 18,
            F::ProxyReset => 19,
            F::ManagerClosed => 20,
            F::ProxyClosed => 21,
            F::ManagerUnreachable => 22,
            F::ProxyUnreachable => 23,
            F::ManagerConnectionFailed => 24,
            F::ProxyConnectionFailed => 25,
            F::HttpRedirect => 26,
            F::HttpClientError => 27,
            F::HttpServerError => 28,
            F::HttpUnexpectedStatus => 29,
            F::NotHttp => 30,
            F::TooLarge => 31,
            F::BadUrl => 32,
            F::BadProxy => 33,
            F::RequestFailed => 34,
            F::NotSaved => 35,
        }
    }

    #[test]
    fn the_list_holds_every_failure_once_with_its_own_phrase() {
        for (i, &f) in SendFailure::ALL.iter().enumerate() {
            assert_eq!(position(f), i, "{f:?} out of place in ALL");
            assert_eq!(SendFailure::from_phrase(f.phrase()), Some(f));
            assert_eq!(f.to_string(), f.phrase());
        }
        assert_eq!(SendFailure::ALL.len(), position(SendFailure::NotSaved) + 1);
    }

    #[test]
    fn phrases_are_words_not_debug_output() {
        for f in SendFailure::ALL {
            let p = f.phrase();
            assert!(p.contains(' '), "{p}");
            assert!(
                !p.contains(['{', '}', '"', '_', ':']) || p.starts_with("not sent: "),
                "{p}"
            );
            assert!(!p.ends_with('.'), "{p}");
        }
    }

    #[test]
    fn http_statuses_fall_in_their_classes() {
        assert_eq!(SendFailure::of_http_status(302), SendFailure::HttpRedirect);
        assert_eq!(
            SendFailure::of_http_status(404),
            SendFailure::HttpClientError
        );
        assert_eq!(
            SendFailure::of_http_status(503),
            SendFailure::HttpServerError
        );
        assert_eq!(
            SendFailure::of_http_status(101),
            SendFailure::HttpUnexpectedStatus
        );
    }
}
