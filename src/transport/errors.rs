//! The one mapping from what the HTTP and TLS libraries report to [`SendError`] (SPEC §9),
//! in the words of [`SendFailure`]: nothing of a library's own error text reaches a user.

use std::io;
use std::time::Duration;

use rustls::{AlertDescription, CertificateError};

use crate::wire::{SendError, SendFailure};

/// Whom the agent's TCP connection goes to: the manager itself, or the proxy in front of it.
/// A socket failure names that one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Via {
    /// Straight to the manager.
    Direct,
    /// Through the configured HTTP proxy.
    Proxy,
}

impl Via {
    fn pick(self, manager: SendFailure, proxy: SendFailure) -> SendFailure {
        match self {
            Via::Direct => manager,
            Via::Proxy => proxy,
        }
    }
}

/// Maps a ureq error (from the request or from reading the answer) onto the SPEC §9 table.
/// A non-2xx answer comes here as [`ureq::Error::StatusCode`].
pub(crate) fn map_error(err: ureq::Error, via: Via) -> SendError {
    use ureq::Error as E;
    use SendFailure as F;
    let failure = match err {
        E::Timeout(_) => return SendError::Timeout,
        E::Io(e) => return map_io(&e, via),
        E::Rustls(e) => tls_failure(&e),
        E::HostNotFound => via.pick(F::ManagerNotFound, F::ProxyNotFound),
        E::StatusCode(code) => SendFailure::of_http_status(code),
        E::ConnectProxyFailed(reason) => proxy_refusal(&reason),
        E::BodyExceedsLimit(_) | E::LargeResponseHeader(..) => F::TooLarge,
        E::Protocol(_) => F::NotHttp,
        E::ConnectionFailed => via.pick(F::ManagerConnectionFailed, F::ProxyConnectionFailed),
        E::InvalidProxyUrl => F::BadProxy,
        E::BadUri(_) | E::RequireHttpsOnly(_) => F::BadUrl,
        _ => F::RequestFailed,
    };
    failure.into()
}

/// An I/O error: a wrapped TLS error, a timeout, or a socket failure.
pub(crate) fn map_io(e: &io::Error, via: Via) -> SendError {
    use SendFailure as F;
    if let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return tls_failure(tls).into();
    }
    let failure = match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => return SendError::Timeout,
        io::ErrorKind::ConnectionRefused => via.pick(F::ManagerRefused, F::ProxyRefused),
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => via.pick(F::ManagerReset, F::ProxyReset),
        io::ErrorKind::UnexpectedEof => via.pick(F::ManagerClosed, F::ProxyClosed),
        io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
            via.pick(F::ManagerUnreachable, F::ProxyUnreachable)
        }
        // std's resolver reports "failed to lookup address information: …" as `Other`.
        _ if e.to_string().contains("lookup address") => {
            via.pick(F::ManagerNotFound, F::ProxyNotFound)
        }
        _ => via.pick(F::ManagerConnectionFailed, F::ProxyConnectionFailed),
    };
    failure.into()
}

/// Path-building failures that rustls passes on from webpki as `CertificateError::Other`,
/// by name (webpki's `Display` is the variant's name). Each means the presented chain does not
/// lead to a configured CA; `CaUsedAsEndEntity` is a CA certificate presented as the server's
/// (as `openssl req -x509` makes a self-signed one).
const NO_CHAIN_TO_A_CONFIGURED_CA: [&str; 9] = [
    "CaUsedAsEndEntity",
    "EndEntityUsedAsCa",
    "CertDistrusted",
    "PathLenConstraintViolated",
    "NameConstraintViolation",
    "MaximumPathDepthExceeded",
    "MaximumPathBuildCallsExceeded",
    "MaximumSignatureChecksExceeded",
    "MaximumNameConstraintComparisonsExceeded",
];

/// A TLS failure. A certificate that does not chain to a configured CA is `UnknownCa`
/// ("invalid trust chain pool"); every other refusal says in words what was wrong.
pub(crate) fn tls_failure(e: &rustls::Error) -> SendFailure {
    use SendFailure as F;
    match e {
        rustls::Error::InvalidCertificate(cert) => certificate_failure(cert),
        rustls::Error::NoCertificatesPresented => F::CertificateUnacceptable,
        rustls::Error::InvalidMessage(_) => F::NotTls,
        rustls::Error::PeerIncompatible(_)
        | rustls::Error::AlertReceived(
            AlertDescription::ProtocolVersion | AlertDescription::InsufficientSecurity,
        ) => F::TlsIncompatible,
        _ => F::TlsFailed,
    }
}

fn certificate_failure(e: &CertificateError) -> SendFailure {
    use CertificateError as C;
    use SendFailure as F;
    match e {
        // BadSignature: a CA with the name of a trusted one but another key.
        C::UnknownIssuer | C::BadSignature => F::UnknownCa,
        C::Other(other) if NO_CHAIN_TO_A_CONFIGURED_CA.contains(&other.0.to_string().as_str()) => {
            F::UnknownCa
        }
        C::NotValidForName | C::NotValidForNameContext { .. } => F::CertificateNotForHost,
        C::Expired | C::ExpiredContext { .. } => F::CertificateExpired,
        C::NotValidYet | C::NotValidYetContext { .. } => F::CertificateNotYetValid,
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => F::CertificateNotForServer,
        _ => F::CertificateUnacceptable,
    }
}

/// ureq reports a non-200 answer to `CONNECT` as "proxy server responded 407/407", silence
/// as "proxy server did not respond".
fn proxy_refusal(reason: &str) -> SendFailure {
    let code = reason
        .strip_prefix("proxy server responded ")
        .and_then(|rest| rest.get(..3))
        .and_then(|digits| digits.parse::<u16>().ok());
    match code {
        Some(code) if is_proxy_auth_status(code) => SendFailure::ProxyAuthentication,
        Some(_) => SendFailure::ProxyRefusedTunnel,
        None if reason.contains("did not respond") => SendFailure::ProxySilent,
        None => SendFailure::ProxyNotHttp,
    }
}

/// 407, and the 401 some proxies (tinyproxy 1.11) send for a wrong password.
pub(crate) fn is_proxy_auth_status(code: u16) -> bool {
    code == 407 || code == 401
}

/// Whether the first bytes of an answer are a TLS record (handshake or alert, TLS 1.x): a
/// TLS server where an HTTP proxy was expected.
pub(crate) fn looks_like_tls(head: &[u8]) -> bool {
    matches!(head, [0x14..=0x17, 0x03, 0x00..=0x04, ..])
}

/// A [`SendError`] in the words of the SPEC §9 table, for [`diagnose`](super::diagnose): the
/// row's words, then the [`SendFailure`] phrase.
pub(crate) fn describe(e: &SendError, response_timeout: Duration, max: usize) -> String {
    match e {
        SendError::Timeout => format!(
            "communication timeout (no answer within {} s)",
            response_timeout.as_secs_f64()
        ),
        SendError::UnknownCa => format!("invalid trust chain pool ({})", SendFailure::UnknownCa),
        SendError::TooLarge => format!("{} (over {max} bytes)", SendFailure::TooLarge),
        SendError::Send { .. } | SendError::ProxyAuthentication => {
            let detail = e.detail().unwrap_or_default();
            format!("communication send error: {detail}")
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fmt;
    use std::sync::Arc;

    use rustls::pki_types::{ServerName, UnixTime};
    use rustls::{OtherError, PeerIncompatible, PeerMisbehaved};

    use super::*;
    use crate::{Failure, FailureKind, Operation};

    /// What a user sees of a transport failure: the detail of its [`Failure`].
    fn shown(e: &SendError) -> Option<String> {
        Failure {
            operation: Operation::RenewAuth,
            kind: FailureKind::Send(e.clone()),
        }
        .detail()
    }

    fn failure(e: SendError) -> SendFailure {
        let detail = shown(&e).unwrap_or_else(|| panic!("{e:?} has no detail"));
        SendFailure::from_phrase(&detail)
            .unwrap_or_else(|| panic!("{detail:?} is not in SendFailure's list"))
    }

    fn tls_io(e: rustls::Error) -> ureq::Error {
        ureq::Error::Io(io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// An error as webpki's, whose `Display` is its variant's name.
    #[derive(Debug)]
    struct Webpki(&'static str);
    impl fmt::Display for Webpki {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for Webpki {}

    fn webpki(name: &'static str) -> CertificateError {
        CertificateError::Other(OtherError(Arc::new(Webpki(name))))
    }

    fn certificate_errors() -> Vec<CertificateError> {
        use CertificateError as C;
        let t = UnixTime::since_unix_epoch(Duration::from_secs(1_800_000_000));
        let mut all = vec![
            C::BadEncoding,
            C::Expired,
            C::ExpiredContext {
                time: t,
                not_after: t,
            },
            C::NotValidYet,
            C::NotValidYetContext {
                time: t,
                not_before: t,
            },
            C::Revoked,
            C::UnhandledCriticalExtension,
            C::UnknownIssuer,
            C::UnknownRevocationStatus,
            C::ExpiredRevocationList,
            C::ExpiredRevocationListContext {
                time: t,
                next_update: t,
            },
            C::BadSignature,
            C::UnsupportedSignatureAlgorithmContext {
                signature_algorithm_id: vec![1, 2, 3],
                supported_algorithms: vec![],
            },
            C::NotValidForName,
            C::NotValidForNameContext {
                expected: ServerName::try_from("manager.example").unwrap(),
                presented: vec!["DnsName(\"other.example\")".into()],
            },
            C::InvalidPurpose,
            C::InvalidOcspResponse,
            C::ApplicationVerificationFailure,
            webpki("SomethingWebpkiMayAddLater"),
        ];
        all.extend(NO_CHAIN_TO_A_CONFIGURED_CA.iter().map(|name| webpki(name)));
        all
    }

    fn tls_errors() -> Vec<rustls::Error> {
        use rustls::Error as R;
        let mut all: Vec<R> = certificate_errors()
            .into_iter()
            .map(R::InvalidCertificate)
            .collect();
        all.extend([
            R::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
            R::InvalidMessage(rustls::InvalidMessage::MessageTooShort),
            R::NoCertificatesPresented,
            R::UnsupportedNameType,
            R::DecryptError,
            R::EncryptError,
            R::PeerIncompatible(PeerIncompatible::NoCipherSuitesInCommon),
            R::PeerMisbehaved(PeerMisbehaved::BadCertChainExtensions),
            R::AlertReceived(AlertDescription::HandshakeFailure),
            R::AlertReceived(AlertDescription::ProtocolVersion),
            R::AlertReceived(AlertDescription::BadCertificate),
            R::General("some library text".into()),
            R::FailedToGetCurrentTime,
            R::FailedToGetRandomBytes,
            R::HandshakeNotComplete,
            R::PeerSentOversizedRecord,
            R::NoApplicationProtocol,
            R::Other(OtherError(Arc::new(Webpki("Anything")))),
        ]);
        all
    }

    fn io_errors() -> Vec<io::Error> {
        use io::ErrorKind as K;
        let mut all: Vec<io::Error> = [
            K::NotFound,
            K::PermissionDenied,
            K::ConnectionRefused,
            K::ConnectionReset,
            K::HostUnreachable,
            K::NetworkUnreachable,
            K::ConnectionAborted,
            K::NotConnected,
            K::AddrInUse,
            K::AddrNotAvailable,
            K::NetworkDown,
            K::BrokenPipe,
            K::WouldBlock,
            K::InvalidInput,
            K::InvalidData,
            K::TimedOut,
            K::Interrupted,
            K::Unsupported,
            K::UnexpectedEof,
            K::OutOfMemory,
            K::Other,
        ]
        .into_iter()
        .map(io::Error::from)
        .collect();
        all.push(io::Error::other(
            "failed to lookup address information: Name or service not known",
        ));
        all.push(io::Error::other("anything at all {:?}"));
        all.extend(
            tls_errors()
                .into_iter()
                .map(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
        );
        all
    }

    /// Every shape of error ureq 3 can report that can be made outside it (`Protocol` holds a
    /// type of a crate this one does not name; tests/transport.rs meets it for real).
    fn ureq_errors() -> Vec<ureq::Error> {
        use ureq::Error as E;
        let mut all: Vec<E> = [
            ureq::Timeout::Global,
            ureq::Timeout::PerCall,
            ureq::Timeout::Resolve,
            ureq::Timeout::Connect,
            ureq::Timeout::SendRequest,
            ureq::Timeout::SendBody,
            ureq::Timeout::Await100,
            ureq::Timeout::RecvResponse,
            ureq::Timeout::RecvBody,
        ]
        .into_iter()
        .map(E::Timeout)
        .collect();
        all.extend((100..=599).map(E::StatusCode));
        all.extend(io_errors().into_iter().map(E::Io));
        all.extend(tls_errors().into_iter().map(E::Rustls));
        all.extend(
            [
                "proxy server responded 407/407",
                "proxy server responded 401/401",
                "proxy server responded 403/403",
                "proxy server responded 502/502",
                "proxy server did not respond",
                "something new",
            ]
            .map(|r| E::ConnectProxyFailed(r.into())),
        );
        let http = ureq::http::Request::builder()
            .method("bad method")
            .body(())
            .unwrap_err();
        all.extend([
            E::Http(http),
            E::BadUri("https://?".into()),
            E::HostNotFound,
            E::RedirectFailed,
            E::InvalidProxyUrl,
            E::ConnectionFailed,
            E::BodyExceedsLimit(10),
            E::TooManyRedirects,
            E::Tls("no provider"),
            E::Pem(rustls::pki_types::pem::Error::NoItemsFound),
            E::RequireHttpsOnly("http://x".into()),
            E::LargeResponseHeader(70_000, 64_000),
        ]);
        all
    }

    #[test]
    fn every_failure_a_user_can_see_is_a_phrase_of_the_closed_list() {
        let errors = ureq_errors();
        assert!(errors.len() > 600, "{}", errors.len());
        for via in [Via::Direct, Via::Proxy] {
            for err in ureq_errors() {
                let what = format!("{err:?} via {via:?}");
                let mapped = map_error(err, via);
                match shown(&mapped) {
                    None => assert_eq!(mapped, SendError::Timeout, "{what}"),
                    Some(detail) => assert!(
                        SendFailure::from_phrase(&detail).is_some(),
                        "{what}: {detail:?} is not in SendFailure's list"
                    ),
                }
            }
        }
        // What the Driver and the transport build themselves.
        for f in SendFailure::ALL {
            assert_eq!(failure(SendError::from(*f)), *f);
        }
        assert_eq!(shown(&SendError::Timeout), None);
    }

    #[test]
    fn timeouts() {
        for t in [ureq::Timeout::Global, ureq::Timeout::RecvResponse] {
            assert_eq!(
                map_error(ureq::Error::Timeout(t), Via::Direct),
                SendError::Timeout
            );
        }
        assert_eq!(
            map_error(io::Error::from(io::ErrorKind::TimedOut).into(), Via::Proxy),
            SendError::Timeout
        );
    }

    #[test]
    fn no_chain_to_a_configured_ca_is_unknown_ca_however_wrapped() {
        for e in [
            CertificateError::UnknownIssuer,
            // A CA with the name of the trusted one but another key.
            CertificateError::BadSignature,
            // A CA certificate presented as the server's, trusted or not.
            webpki("CaUsedAsEndEntity"),
            webpki("PathLenConstraintViolated"),
        ] {
            let tls = || rustls::Error::InvalidCertificate(e.clone());
            assert_eq!(map_error(tls_io(tls()), Via::Direct), SendError::UnknownCa);
            assert_eq!(
                map_error(ureq::Error::Rustls(tls()), Via::Proxy),
                SendError::UnknownCa
            );
            assert_eq!(shown(&SendError::UnknownCa).as_deref(), Some("Unknown CA"));
        }
    }

    #[test]
    fn other_certificate_refusals_name_the_check() {
        use CertificateError as C;
        use SendFailure as F;
        let t = UnixTime::since_unix_epoch(Duration::from_secs(1_800_000_000));
        for (e, expected) in [
            (C::NotValidForName, F::CertificateNotForHost),
            (
                C::NotValidForNameContext {
                    expected: ServerName::try_from("localhost").unwrap(),
                    presented: vec!["DnsName(\"satellite.example.com\")".into()],
                },
                F::CertificateNotForHost,
            ),
            (C::Expired, F::CertificateExpired),
            (
                C::ExpiredContext {
                    time: t,
                    not_after: t,
                },
                F::CertificateExpired,
            ),
            (
                C::NotValidYetContext {
                    time: t,
                    not_before: t,
                },
                F::CertificateNotYetValid,
            ),
            (C::InvalidPurpose, F::CertificateNotForServer),
            (C::BadEncoding, F::CertificateUnacceptable),
            (webpki("UnsupportedCertVersion"), F::CertificateUnacceptable),
        ] {
            let what = format!("{e:?}");
            let mapped = map_error(tls_io(rustls::Error::InvalidCertificate(e)), Via::Direct);
            assert_eq!(failure(mapped), expected, "{what}");
        }
        let alert = rustls::Error::AlertReceived(AlertDescription::HandshakeFailure);
        assert_eq!(failure(map_error(tls_io(alert), Via::Direct)), F::TlsFailed);
        let plain = rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType);
        assert_eq!(failure(map_error(tls_io(plain), Via::Direct)), F::NotTls);
    }

    #[test]
    fn proxy_answers_to_connect() {
        use SendFailure as F;
        for (reason, expected) in [
            ("proxy server responded 407/407", F::ProxyAuthentication),
            ("proxy server responded 401/401", F::ProxyAuthentication),
            ("proxy server responded 403/403", F::ProxyRefusedTunnel),
            ("proxy server did not respond", F::ProxySilent),
            ("proxy server responded garbage", F::ProxyNotHttp),
        ] {
            let e = map_error(ureq::Error::ConnectProxyFailed(reason.into()), Via::Proxy);
            assert_eq!(failure(e), expected, "{reason}");
        }
        assert_eq!(
            map_error(
                ureq::Error::ConnectProxyFailed("proxy server responded 407/407".into()),
                Via::Proxy
            ),
            SendError::ProxyAuthentication
        );
    }

    #[test]
    fn socket_failures_name_whom_the_connection_goes_to() {
        use SendFailure as F;
        let io = |k: io::ErrorKind| ureq::Error::Io(io::Error::from(k));
        for (kind, direct, proxied) in [
            (
                io::ErrorKind::ConnectionRefused,
                F::ManagerRefused,
                F::ProxyRefused,
            ),
            (
                io::ErrorKind::ConnectionReset,
                F::ManagerReset,
                F::ProxyReset,
            ),
            (
                io::ErrorKind::UnexpectedEof,
                F::ManagerClosed,
                F::ProxyClosed,
            ),
            (
                io::ErrorKind::HostUnreachable,
                F::ManagerUnreachable,
                F::ProxyUnreachable,
            ),
            (
                io::ErrorKind::AddrNotAvailable,
                F::ManagerConnectionFailed,
                F::ProxyConnectionFailed,
            ),
        ] {
            assert_eq!(
                failure(map_error(io(kind), Via::Direct)),
                direct,
                "{kind:?}"
            );
            assert_eq!(
                failure(map_error(io(kind), Via::Proxy)),
                proxied,
                "{kind:?}"
            );
        }
        let dns =
            || io::Error::other("failed to lookup address information: Name or service not known");
        assert_eq!(
            failure(map_error(dns().into(), Via::Direct)),
            F::ManagerNotFound
        );
        assert_eq!(
            failure(map_error(dns().into(), Via::Proxy)),
            F::ProxyNotFound
        );
        assert_eq!(
            failure(map_error(ureq::Error::HostNotFound, Via::Direct)),
            F::ManagerNotFound
        );
    }

    #[test]
    fn http_statuses_and_sizes() {
        use SendFailure as F;
        for (code, expected) in [
            (500, F::HttpServerError),
            (503, F::HttpServerError),
            (404, F::HttpClientError),
            (407, F::HttpClientError),
            (302, F::HttpRedirect),
        ] {
            let e = map_error(ureq::Error::StatusCode(code), Via::Proxy);
            assert_eq!(failure(e), expected, "{code}");
        }
        assert_eq!(
            map_error(ureq::Error::BodyExceedsLimit(10), Via::Direct),
            SendError::TooLarge
        );
        assert_eq!(
            map_error(
                ureq::Error::LargeResponseHeader(70_000, 64_000),
                Via::Direct
            ),
            SendError::TooLarge
        );
    }

    #[test]
    fn tls_records_are_recognised() {
        // A fatal decode_error alert, as a TLS server answers "CONNECT …".
        assert!(looks_like_tls(b"\x15\x03\x03\x00\x02\x02\x32"));
        assert!(looks_like_tls(b"\x16\x03\x01\x02\x00"));
        assert!(!looks_like_tls(b"HTTP/1.1 200 OK\r\n"));
        assert!(!looks_like_tls(b"\x15\x03"));
    }

    #[test]
    fn descriptions_use_the_table_words_and_the_phrases() {
        let t = Duration::from_secs(60);
        assert_eq!(
            describe(&SendError::UnknownCa, t, 1),
            "invalid trust chain pool (Unknown CA)"
        );
        assert_eq!(
            describe(&SendError::Timeout, t, 1),
            "communication timeout (no answer within 60 s)"
        );
        assert_eq!(
            describe(&SendError::ProxyAuthentication, t, 1),
            "communication send error: proxy authentication required"
        );
        assert_eq!(
            describe(&SendFailure::ManagerRefused.into(), t, 1),
            "communication send error: connection refused by the manager"
        );
        assert_eq!(
            describe(&SendError::TooLarge, t, 7),
            "answer too large (over 7 bytes)"
        );
    }
}
