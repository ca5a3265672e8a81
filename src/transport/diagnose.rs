//! [`diagnose`]: the path to the manager, one step at a time, for `license smart … diagnose`.
//!
//! ureq reports one error for the whole exchange; here each step is done by hand (resolve with
//! the system resolver, `TcpStream::connect_timeout`, a hand-written `CONNECT`, a rustls
//! handshake with the configured CAs) so the output says which step failed. The last step is
//! one real POST through [`HttpsTransport`].

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use base64::Engine as _;

use super::config::{bare_host, crypto_provider, server_name, Route, Target, TransportConfig};
use super::errors::{describe, is_proxy_auth_status, looks_like_tls, map_io, tls_failure, Via};
use super::https::{via, HttpsTransport, Refused};
use crate::crypto::B64;
use crate::settings::{Host, ProxySettings, TransportSettings};
use crate::wire::{decode_response, ResponseStatus, SendError, SendFailure};

/// What the manager step POSTs: an unsigned request without a body. A manager answers it with
/// a signed `FAILED` (`MALFORMED`) and changes nothing; that the answer parses as a manager's
/// answer shows a manager is there.
pub const PROBE: &[u8] =
    b"<request><type>register</type><version>1</version><nonce>smart-agent-diagnose</nonce></request>";

/// The largest `CONNECT` answer head read from a proxy.
const MAX_PROXY_HEAD: usize = 16 * 1024;

/// One step on the way to the manager, in the order [`diagnose`] takes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Step {
    /// The settings and configuration name a usable `https://` URL (and proxy).
    Url,
    /// The manager's host name (the proxy's, through a proxy) resolves.
    Dns,
    /// A TCP connection to the manager (the proxy, through a proxy) opens.
    Tcp,
    /// The proxy opens a tunnel to the manager (`CONNECT`, with credentials if configured).
    ProxyConnect,
    /// The TLS handshake succeeds and the manager's certificate chains to a configured CA
    /// and is valid for its host name.
    Tls,
    /// A POST of [`PROBE`] brings back something that parses as a manager's answer.
    Manager,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Url => "URL",
            Step::Dns => "DNS",
            Step::Tcp => "TCP",
            Step::ProxyConnect => "Proxy CONNECT",
            Step::Tls => "TLS",
            Step::Manager => "Manager",
        })
    }
}

/// How a step went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepOutcome {
    /// It worked; what was found (addresses, TLS version, the manager's status).
    Ok(String),
    /// It failed; why.
    Failed(String),
}

/// A step and how it went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepReport {
    /// The step.
    pub step: Step,
    /// How it went.
    pub outcome: StepOutcome,
}

impl fmt::Display for StepReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.outcome {
            StepOutcome::Ok(detail) if detail.is_empty() => write!(f, "{}: ok", self.step),
            StepOutcome::Ok(detail) => write!(f, "{}: ok ({detail})", self.step),
            StepOutcome::Failed(why) => write!(f, "{}: FAILED: {why}", self.step),
        }
    }
}

/// The steps [`diagnose`] took, up to and including the first that failed. `Display` prints
/// one line per step, e.g. `DNS: ok (127.0.0.1)` or
/// `TLS: FAILED: invalid trust chain pool (Unknown CA)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagnosis {
    steps: Vec<StepReport>,
}

impl Diagnosis {
    /// Every step taken, in order.
    pub fn steps(&self) -> &[StepReport] {
        &self.steps
    }

    /// The step that failed, if one did (always the last one taken).
    pub fn failed_step(&self) -> Option<Step> {
        self.failure().map(|(step, _)| step)
    }

    /// The step that failed and why.
    pub fn failure(&self) -> Option<(Step, &str)> {
        self.steps.iter().find_map(|r| match &r.outcome {
            StepOutcome::Failed(why) => Some((r.step, why.as_str())),
            StepOutcome::Ok(_) => None,
        })
    }

    /// Every step up to the manager's answer worked.
    pub fn is_ok(&self) -> bool {
        self.failure().is_none() && self.steps.last().map(|r| r.step) == Some(Step::Manager)
    }

    fn record<T>(&mut self, step: Step, result: Result<(T, String), String>) -> Option<T> {
        match result {
            Ok((value, detail)) => {
                self.steps.push(StepReport {
                    step,
                    outcome: StepOutcome::Ok(detail),
                });
                Some(value)
            }
            Err(why) => {
                self.steps.push(StepReport {
                    step,
                    outcome: StepOutcome::Failed(why),
                });
                None
            }
        }
    }
}

impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, report) in self.steps.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{report}")?;
        }
        Ok(())
    }
}

/// Walks URL → DNS → TCP (→ proxy `CONNECT`) → TLS → manager answer for `settings`, stopping
/// at the first step that fails. Blocking; each network step is bounded by the configured
/// timeouts. A failure is said in the words of [`SendFailure`] (the same the agent's failure
/// detail uses), with what this step knows besides: the host name, the address, the HTTP
/// status.
pub fn diagnose(settings: &TransportSettings, config: &TransportConfig) -> Diagnosis {
    let mut diagnosis = Diagnosis::default();
    let _ = walk(settings, config, &mut diagnosis);
    diagnosis
}

type StepResult<T> = Result<(T, String), String>;

fn walk(settings: &TransportSettings, config: &TransportConfig, d: &mut Diagnosis) -> Option<()> {
    let route = d.record(Step::Url, url_step(settings, config))?;
    let via = via(&route);
    let timeout = config.connect_timeout();
    let (host, port) = match &route.proxy {
        Some(proxy) => (proxy.host(), proxy.port()),
        None => (&route.target.host, route.target.port),
    };
    let addrs = d.record(Step::Dns, resolve(host, port, timeout))?;
    let mut stream = d.record(Step::Tcp, connect(&addrs, timeout, via))?;
    if let Some(proxy) = &route.proxy {
        d.record(
            Step::ProxyConnect,
            tunnel(&mut stream, proxy, &route.target, timeout),
        )?;
    }
    d.record(Step::Tls, handshake(stream, &route.target, config))?;
    d.record(Step::Manager, ask_manager(settings, config))
}

fn url_step(settings: &TransportSettings, config: &TransportConfig) -> StepResult<Route> {
    config.check_limits_and_url().map_err(|e| e.to_string())?;
    let route = config.route(settings).map_err(|e| e.to_string())?;
    let mut detail = route.target.url.clone();
    if let (Some(proxy), Some(authority)) = (&route.proxy, route.proxy_authority()) {
        detail.push_str(&format!(" through the proxy {authority}"));
        if let Some(credentials) = proxy.credentials() {
            detail.push_str(&format!(" as {}", credentials.username));
        }
    }
    Ok((route, detail))
}

fn resolve(host: &Host, port: u16, timeout: Duration) -> StepResult<Vec<SocketAddr>> {
    let name = bare_host(host);
    let addrs = match host.ip() {
        Some(ip) => vec![SocketAddr::new(ip, port)],
        None => {
            // std's resolver has no timeout: ask on a thread and stop waiting at the timeout.
            let (tx, rx) = mpsc::channel();
            let query = (name.clone(), port);
            thread::spawn(move || {
                let _ = tx.send(query.to_socket_addrs().map(Iterator::collect::<Vec<_>>));
            });
            match rx.recv_timeout(timeout) {
                Ok(Ok(addrs)) => addrs,
                // The resolver's own words vary by platform; the name is what matters.
                Ok(Err(_)) => return Err(format!("cannot resolve {name}")),
                Err(_) => {
                    return Err(format!(
                        "no answer for {name} within {} s",
                        timeout.as_secs_f64()
                    ))
                }
            }
        }
    };
    if addrs.is_empty() {
        return Err(format!("cannot resolve {name}"));
    }
    let mut ips: Vec<String> = Vec::new();
    for addr in &addrs {
        let ip = addr.ip().to_string();
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    Ok((addrs, ips.join(", ")))
}

fn connect(addrs: &[SocketAddr], timeout: Duration, via: Via) -> StepResult<TcpStream> {
    let who = match via {
        Via::Direct => "the manager",
        Via::Proxy => "the proxy",
    };
    let mut failures = Vec::new();
    for addr in addrs {
        let opened = TcpStream::connect_timeout(addr, timeout).and_then(|stream| {
            // The CONNECT exchange and the TLS handshake share the connect timeout.
            stream.set_read_timeout(Some(timeout))?;
            stream.set_write_timeout(Some(timeout))?;
            Ok(stream)
        });
        match opened {
            Ok(stream) => return Ok((stream, format!("connected to {who} at {addr}"))),
            // "connection refused by the manager at 127.0.0.1:8443", …
            Err(e) => failures.push(match map_io(&e, via) {
                SendError::Timeout => format!(
                    "no connection to {who} at {addr} within {} s",
                    timeout.as_secs_f64()
                ),
                failed => format!("{} at {addr}", failed.detail().unwrap_or_default()),
            }),
        }
    }
    Err(failures.join("; "))
}

/// A `CONNECT` request for a tunnel to `target`, with basic auth if `proxy` has credentials.
fn connect_request(proxy: Option<&ProxySettings>, target: &Target) -> String {
    let authority = target.authority();
    let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some(c) = proxy.and_then(ProxySettings::credentials) {
        let token = B64.encode(format!("{}:{}", c.username, c.password));
        request.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
    }
    request.push_str("\r\n");
    request
}

/// Asks the proxy for a tunnel once more, by hand and without credentials, to see whether
/// what answers is TLS (an HTTPS port configured as the proxy): ureq reports a TLS answer to
/// its `CONNECT` only as a reset or an answer that is not HTTP. False if it cannot tell.
pub(crate) fn proxy_answers_in_tls(
    proxy: &ProxySettings,
    target: &Target,
    timeout: Duration,
) -> bool {
    let Ok((addrs, _)) = resolve(proxy.host(), proxy.port(), timeout) else {
        return false;
    };
    let Ok((mut stream, _)) = connect(&addrs, timeout, Via::Proxy) else {
        return false;
    };
    let request = connect_request(None, target);
    stream.write_all(request.as_bytes()).is_ok()
        && read_head(&mut stream).is_ok_and(|head| looks_like_tls(&head))
}

fn tunnel(
    stream: &mut TcpStream,
    proxy: &ProxySettings,
    target: &Target,
    timeout: Duration,
) -> StepResult<()> {
    let authority = target.authority();
    let request = connect_request(Some(proxy), target);
    let io_failure = |e: io::Error| match map_io(&e, Via::Proxy) {
        SendError::Timeout => format!(
            "{} within {} s",
            SendFailure::ProxySilent,
            timeout.as_secs_f64()
        ),
        failed => failed.detail().unwrap_or_default().to_string(),
    };
    stream.write_all(request.as_bytes()).map_err(io_failure)?;
    let head = read_head(stream).map_err(io_failure)?;
    match proxy_status(&head) {
        Ok(200..=299) => Ok(((), format!("tunnel to {authority} open"))),
        Ok(code) if is_proxy_auth_status(code) => Err(format!(
            "{} (HTTP {code})",
            SendFailure::ProxyAuthentication
        )),
        Ok(code) => Err(format!("{} (HTTP {code})", SendFailure::ProxyRefusedTunnel)),
        Err(failure) => Err(failure.to_string()),
    }
}

/// The status code of a proxy's answer head, or why there is none.
fn proxy_status(head: &[u8]) -> Result<u16, SendFailure> {
    if head.is_empty() {
        return Err(SendFailure::ProxySilent);
    }
    if looks_like_tls(head) {
        return Err(SendFailure::ProxySpeaksTls);
    }
    // "HTTP/1.1 407 Proxy Authentication Required"
    let mut words = head
        .split(|b| b.is_ascii_whitespace())
        .filter(|word| !word.is_empty());
    let version = words.next().unwrap_or_default();
    let code = words.next().unwrap_or_default();
    if !version.starts_with(b"HTTP/") || code.len() != 3 {
        return Err(SendFailure::ProxyNotHttp);
    }
    std::str::from_utf8(code)
        .ok()
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or(SendFailure::ProxyNotHttp)
}

/// Reads an HTTP answer head up to the blank line, one byte at a time so that nothing after
/// it (the tunnelled TLS) is consumed; at most [`MAX_PROXY_HEAD`] bytes.
fn read_head(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < MAX_PROXY_HEAD {
        match stream.read(&mut byte) {
            Ok(0) => break,
            Ok(_) => head.push(byte[0]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        // A TLS record has no blank line to wait for.
        if head.len() == 3 && looks_like_tls(&head) {
            break;
        }
    }
    Ok(head)
}

fn handshake(mut stream: TcpStream, target: &Target, config: &TransportConfig) -> StepResult<()> {
    if config.ca_certificates().next().is_none() {
        return Err("no CA certificate configured, so no manager can be trusted".into());
    }
    let name =
        server_name(&target.host).ok_or_else(|| format!("{} is not a TLS name", target.host))?;
    let in_words =
        |e: SendError| describe(&e, config.response_timeout(), config.max_answer_bytes());
    let tls = rustls::ClientConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| in_words(tls_failure(&e).into()))?
        .with_root_certificates(config.root_store())
        .with_no_client_auth();
    let mut conn = rustls::ClientConnection::new(Arc::new(tls), name)
        .map_err(|e| in_words(tls_failure(&e).into()))?;
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut stream) {
            return Err(match e.kind() {
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => format!(
                    "{}: no answer within {} s",
                    SendFailure::TlsFailed,
                    config.connect_timeout().as_secs_f64()
                ),
                io::ErrorKind::UnexpectedEof => {
                    format!("{}: the connection was closed", SendFailure::TlsFailed)
                }
                // The tunnel is the manager's connection: a TLS failure is the manager's.
                _ => in_words(map_io(&e, Via::Direct)),
            });
        }
    }
    let mut detail = format!("certificate of {} trusted", target.host);
    if let (Some(version), Some(suite)) = (conn.protocol_version(), conn.negotiated_cipher_suite())
    {
        detail = format!(
            "{}, {}, {detail}",
            tls_version_name(version),
            cipher_suite_name(suite.suite())
        );
    }
    conn.send_close_notify();
    let _ = conn.complete_io(&mut stream);
    Ok(((), detail))
}

/// "TLS 1.3", as people write it.
fn tls_version_name(version: rustls::ProtocolVersion) -> &'static str {
    match version {
        rustls::ProtocolVersion::TLSv1_3 => "TLS 1.3",
        rustls::ProtocolVersion::TLSv1_2 => "TLS 1.2",
        _ => "TLS",
    }
}

/// The IANA name of a cipher suite (`TLS_AES_256_GCM_SHA384`).
fn cipher_suite_name(suite: rustls::CipherSuite) -> String {
    match suite.as_str() {
        // rustls names the TLS 1.3 suites TLS13_…; IANA's names are TLS_….
        Some(name) => name.replacen("TLS13_", "TLS_", 1),
        None => "an unnamed cipher suite".to_string(),
    }
}

fn ask_manager(settings: &TransportSettings, config: &TransportConfig) -> StepResult<()> {
    let mut transport = HttpsTransport::new(config.clone()).map_err(|e| e.to_string())?;
    let answer = transport
        .post(settings, PROBE)
        .map_err(|refused| match refused {
            Refused::Status(code) => format!(
                "communication send error: {} (HTTP {code})",
                SendFailure::of_http_status(code)
            ),
            Refused::Failed(e) => {
                describe(&e, config.response_timeout(), config.max_answer_bytes())
            }
        })?;
    let parsed = decode_response(&answer, config.max_answer_bytes())
        .map_err(|e| format!("the answer is not a manager's answer ({e})"))?;
    let response = &parsed.response;
    // The probe is unsigned on purpose: a manager refuses it with a signed FAILED MALFORMED,
    // which proves it speaks the protocol without changing anything on it.
    let answered = match &response.status {
        ResponseStatus::Failed { code, .. } if code == crate::wire::codes::MALFORMED => {
            "a manager answered (refusing the unsigned probe, as it should)".to_string()
        }
        ResponseStatus::Ok => "a manager answered OK".to_string(),
        ResponseStatus::Failed { code, .. } => format!("a manager answered FAILED {code}"),
        ResponseStatus::VersionTooHigh => "a manager answered VERSION_TOO_HIGH".to_string(),
    };
    Ok((
        (),
        format!(
            "{answered}; it signs for the {} environment, protocol version {}",
            response.environment, response.version
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_line_per_step() {
        let mut d = Diagnosis::default();
        assert_eq!(d.record(Step::Url, Ok(((), "https://x/".into()))), Some(()));
        assert_eq!(d.record(Step::Dns, Ok(((), "127.0.0.1".into()))), Some(()));
        assert_eq!(
            d.record::<()>(
                Step::Tls,
                Err("invalid trust chain pool (Unknown CA)".into())
            ),
            None
        );
        assert_eq!(
            d.to_string(),
            "URL: ok (https://x/)\nDNS: ok (127.0.0.1)\nTLS: FAILED: invalid trust chain pool (Unknown CA)"
        );
        assert_eq!(d.failed_step(), Some(Step::Tls));
        assert!(!d.is_ok());
        assert_eq!(Step::ProxyConnect.to_string(), "Proxy CONNECT");
    }

    #[test]
    fn probe_speaks_the_current_protocol_version() {
        let version = format!("<version>{}</version>", crate::wire::PROTOCOL_VERSION);
        assert!(String::from_utf8_lossy(PROBE).contains(&version));
    }

    #[cfg(feature = "manager")]
    #[test]
    fn the_reference_manager_answers_the_probe_with_a_parseable_failed() {
        use crate::manager::Manager;
        use crate::{Environment, SystemRandom};
        let mut manager =
            Manager::new(Environment::Development, Box::new(SystemRandom::new())).unwrap();
        let answer = manager.handle(PROBE, "2027-03-01T09:00:00Z".parse().unwrap());
        let parsed = decode_response(&answer, 1 << 20).unwrap();
        assert!(matches!(
            parsed.response.status,
            ResponseStatus::Failed { ref code, .. } if code == crate::wire::codes::MALFORMED
        ));
        assert_eq!(manager.instances().len(), 0);
    }

    #[test]
    fn a_bad_direct_url_fails_the_first_step() {
        let config = TransportConfig::new().with_direct_url("http://manager.example/");
        let d = diagnose(&TransportSettings::Direct, &config);
        assert_eq!(d.failed_step(), Some(Step::Url));
        assert_eq!(d.steps().len(), 1);
        assert!(
            d.to_string()
                .starts_with("URL: FAILED: invalid manager URL"),
            "{d}"
        );
    }
}
