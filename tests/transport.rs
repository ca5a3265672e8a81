//! The HTTPS transport over real loopback sockets: round trips in every URL form, trust,
//! timeouts, limits, HTTP errors, HTTP proxies (tinyproxy when on PATH, and the in-test CONNECT
//! proxy), and `diagnose()` failing at each step.
mod support;

use std::time::{Duration, Instant};

use smart_agent::transport::{diagnose, HttpsTransport, Step, Transport, TransportConfig};
use smart_agent::{Failure, FailureKind, Operation, SendError, SendFailure, TransportSettings};
use support::https::{Reply, TestCa, TestServer};
use support::plain::PlainServer;
use support::proxy::{self, Breakage, ConnectProxy, Kind, TestProxy};

const ANSWER: &[u8] = b"<response>fixed</response>";
const REQUEST: &[u8] = b"<request>hello</request>";
const NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

fn ca() -> TestCa {
    TestCa::new("smart-agent test manager CA")
}

fn server(ca: &TestCa, reply: Reply) -> TestServer {
    TestServer::start(ca, &NAMES, "127.0.0.1:0", reply).expect("test server")
}

/// Trusts `ca` only; the direct URL points at `direct_url`.
fn config(ca: &TestCa, direct_url: &str) -> TransportConfig {
    let mut config = TransportConfig::new().with_direct_url(direct_url);
    assert_eq!(config.add_ca_pem(ca.pem().as_bytes()), Ok(1));
    config
}

fn transport(config: TransportConfig) -> HttpsTransport {
    HttpsTransport::new(config).expect("transport")
}

fn send_detail(result: Result<Vec<u8>, SendError>) -> String {
    match result {
        Err(SendError::Send { detail }) => detail,
        other => panic!("expected a send error, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Round trips

#[test]
fn direct_round_trip_posts_xml_and_returns_the_answer() {
    let ca = ca();
    let server = server(&ca, Reply::Fixed(ANSWER.to_vec()));
    let url = server.url("localhost", "/its/service/oddce/services/DDCEService");
    let mut transport = transport(config(&ca, &url));
    for _ in 0..2 {
        let answer = transport.send(&TransportSettings::Direct, REQUEST);
        assert_eq!(answer.as_deref(), Ok(ANSWER));
    }
    let received = server.received();
    assert_eq!(received.len(), 2);
    assert_eq!(
        received[0].request_line,
        "POST /its/service/oddce/services/DDCEService HTTP/1.1"
    );
    assert_eq!(received[0].header("content-type"), Some("application/xml"));
    assert_eq!(received[0].body, REQUEST);
}

#[test]
fn on_prem_round_trips_with_host_name_ipv4_port_and_both_paths() {
    let ca = ca();
    let server = server(&ca, Reply::Fixed(ANSWER.to_vec()));
    // The direct URL is unusable on purpose: on-prem must not touch it.
    let mut transport = transport(config(&ca, "https://127.0.0.1:1/unused"));
    for (host, path) in [
        ("localhost", "/SmartTransport"),
        ("127.0.0.1", "/SmartTransport"),
        (
            "localhost",
            "/Transportgateway/services/DeviceRequestHandler",
        ),
        (
            "127.0.0.1",
            "/Transportgateway/services/DeviceRequestHandler",
        ),
    ] {
        let settings = TransportSettings::on_prem(&server.url(host, path)).expect("on-prem URL");
        assert_eq!(
            transport.send(&settings, REQUEST).as_deref(),
            Ok(ANSWER),
            "{host}{path}"
        );
        let last = server.received().pop().expect("a request");
        assert_eq!(last.request_line, format!("POST {path} HTTP/1.1"));
    }
}

#[test]
fn on_prem_shorthand_host_and_port_posts_to_smart_transport() {
    let ca = ca();
    let server = server(&ca, Reply::Fixed(ANSWER.to_vec()));
    let mut transport = transport(config(&ca, "https://127.0.0.1:1/unused"));
    for host in ["localhost", "127.0.0.1"] {
        let short = format!("{host}:{}", server.port());
        let settings = TransportSettings::on_prem(&short).expect("shorthand");
        assert_eq!(
            settings,
            TransportSettings::on_prem(&server.url(host, "/SmartTransport")).unwrap()
        );
        assert_eq!(
            transport.send(&settings, REQUEST).as_deref(),
            Ok(ANSWER),
            "{short}"
        );
        let last = server.received().pop().expect("a request");
        assert_eq!(last.request_line, "POST /SmartTransport HTTP/1.1");
    }
}

#[test]
fn on_prem_round_trip_over_ipv6_loopback() {
    if !support::ipv6_loopback_or_skip("on_prem_round_trip_over_ipv6_loopback") {
        return;
    }
    let ca = ca();
    let server = TestServer::start(&ca, &NAMES, "[::1]:0", Reply::Fixed(ANSWER.to_vec()))
        .expect("IPv6 test server");
    let mut transport = transport(config(&ca, "https://127.0.0.1:1/unused"));
    let settings = TransportSettings::on_prem(&server.url("[::1]", "/SmartTransport")).unwrap();
    assert_eq!(transport.send(&settings, REQUEST).as_deref(), Ok(ANSWER));
    let short = TransportSettings::on_prem(&format!("[::1]:{}", server.port())).unwrap();
    assert_eq!(short, settings);
    assert_eq!(transport.send(&short, REQUEST).as_deref(), Ok(ANSWER));
    assert_eq!(server.received().len(), 2);
}

#[test]
fn der_ca_certificates_are_trusted_too() {
    let ca = ca();
    let server = server(&ca, Reply::Fixed(ANSWER.to_vec()));
    let mut config = TransportConfig::new().with_direct_url(server.url("127.0.0.1", "/x"));
    config.add_ca_der(&ca.der()).unwrap();
    let mut transport = transport(config);
    assert_eq!(
        transport
            .send(&TransportSettings::Direct, REQUEST)
            .as_deref(),
        Ok(ANSWER)
    );
}

// ---------------------------------------------------------------------------------------------
// Trust

/// What the agent shows for this failure: the §9 message and its detail.
fn shown(result: Result<Vec<u8>, SendError>) -> String {
    let failure = Failure {
        operation: Operation::Register,
        kind: FailureKind::Send(result.expect_err("the send must fail")),
    };
    failure.to_string()
}

const UNKNOWN_CA: &str =
    "The requested operation was not successful due to invalid trust chain pool (Unknown CA)";

fn send_error_with(failure: SendFailure) -> String {
    format!(
        "The requested operation was not successful due to communication send error ({failure})"
    )
}

/// The detail of a [`SendError::Send`], which must be a phrase of the closed list.
fn send_failure(result: Result<Vec<u8>, SendError>) -> SendFailure {
    let detail = send_detail(result);
    SendFailure::from_phrase(&detail).unwrap_or_else(|| panic!("not in the list: {detail:?}"))
}

#[test]
fn a_certificate_from_an_untrusted_ca_is_unknown_ca() {
    let trusted = ca();
    let rogue = TestCa::new("rogue intercepting proxy CA");
    let server = server(&rogue, Reply::Fixed(ANSWER.to_vec()));
    let mut transport = transport(config(&trusted, &server.url("localhost", "/x")));
    assert_eq!(
        transport.send(&TransportSettings::Direct, REQUEST),
        Err(SendError::UnknownCa)
    );
    let settings = TransportSettings::on_prem(&server.url("127.0.0.1", "/SmartTransport")).unwrap();
    assert_eq!(shown(transport.send(&settings, REQUEST)), UNKNOWN_CA);
    assert!(server.received().is_empty(), "nothing was sent");
}

#[test]
fn a_self_signed_server_certificate_is_unknown_ca() {
    // Plain self-signed, and CA:TRUE as `openssl req -x509` makes it: untrusted, and
    // configured as the trusted CA itself (a CA certificate presented as the server's).
    use support::https::{self_signed_ca_leaf, self_signed_leaf};
    let openssl_style = self_signed_ca_leaf(&NAMES);
    let openssl_style_der = openssl_style.0.to_vec();
    let cases = [
        (self_signed_leaf(&NAMES), None),
        (self_signed_ca_leaf(&NAMES), None),
        (openssl_style, Some(openssl_style_der)),
    ];
    for (presented, trusted) in cases {
        let server =
            TestServer::start_with(presented, "127.0.0.1:0", Reply::Fixed(ANSWER.to_vec()))
                .unwrap();
        let mut config = config(&ca(), &server.url("localhost", "/x"));
        if let Some(der) = &trusted {
            config.add_ca_der(der).unwrap();
        }
        let mut transport = transport(config);
        assert_eq!(
            shown(transport.send(&TransportSettings::Direct, REQUEST)),
            UNKNOWN_CA,
            "trusted itself: {}",
            trusted.is_some()
        );
        assert!(server.received().is_empty(), "nothing was sent");
    }
}

#[test]
fn a_leaf_from_an_unknown_ca_is_unknown_ca() {
    let rogue = TestCa::new("unknown issuing test CA");
    let server = server(&rogue, Reply::Fixed(ANSWER.to_vec()));
    let mut transport = transport(config(&ca(), &server.url("localhost", "/x")));
    assert_eq!(
        shown(transport.send(&TransportSettings::Direct, REQUEST)),
        UNKNOWN_CA
    );
}

#[test]
fn a_ca_certificate_presented_as_the_servers_is_unknown_ca() {
    // The trusted CA's own certificate (rustls: CaUsedAsEndEntity), and another CA's.
    let trusted = ca();
    let other = TestCa::new("a CA that is not the manager");
    for presented in [trusted.as_leaf(), other.as_leaf()] {
        let server =
            TestServer::start_with(presented, "127.0.0.1:0", Reply::Fixed(ANSWER.to_vec()))
                .unwrap();
        let mut transport = transport(config(&trusted, &server.url("127.0.0.1", "/x")));
        assert_eq!(
            shown(transport.send(&TransportSettings::Direct, REQUEST)),
            UNKNOWN_CA
        );
        assert!(server.received().is_empty(), "nothing was sent");
    }
}

#[test]
fn a_certificate_for_another_host_name_says_so_in_words() {
    let ca = ca();
    let server = TestServer::start(
        &ca,
        &["satellite.example.com"],
        "127.0.0.1:0",
        Reply::Fixed(ANSWER.to_vec()),
    )
    .unwrap();
    let mut transport = transport(config(&ca, "https://127.0.0.1:1/unused"));
    for host in ["localhost", "127.0.0.1"] {
        let settings = TransportSettings::on_prem(&server.url(host, "/SmartTransport")).unwrap();
        assert_eq!(
            shown(transport.send(&settings, REQUEST)),
            send_error_with(SendFailure::CertificateNotForHost),
            "{host}"
        );
    }
    assert!(server.received().is_empty(), "nothing was sent");
}

#[test]
fn an_expired_certificate_says_so_in_words() {
    let ca = ca();
    let server = TestServer::start_with(
        ca.expired_leaf(&NAMES),
        "127.0.0.1:0",
        Reply::Fixed(ANSWER.to_vec()),
    )
    .unwrap();
    let mut transport = transport(config(&ca, &server.url("localhost", "/x")));
    assert_eq!(
        shown(transport.send(&TransportSettings::Direct, REQUEST)),
        send_error_with(SendFailure::CertificateExpired)
    );
    assert!(server.received().is_empty(), "nothing was sent");
}

#[test]
fn a_manager_port_without_tls_says_so() {
    let plain = PlainServer::start(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    let url = format!("https://127.0.0.1:{}/x", plain.port());
    let mut transport = transport(config(&ca(), &url));
    assert_eq!(
        send_failure(transport.send(&TransportSettings::Direct, REQUEST)),
        SendFailure::NotTls
    );
}

// ---------------------------------------------------------------------------------------------
// Failures of the exchange

#[test]
fn a_server_that_never_answers_is_a_timeout() {
    let ca = ca();
    let server = server(&ca, Reply::Silent);
    let config =
        config(&ca, &server.url("127.0.0.1", "/x")).with_response_timeout(Duration::from_secs(1));
    let mut transport = transport(config);
    let started = Instant::now();
    let result = transport.send(&TransportSettings::Direct, REQUEST);
    assert_eq!(result, Err(SendError::Timeout));
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(900), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    assert_eq!(server.received().len(), 1, "the request did arrive");
    assert_eq!(
        shown(result),
        "The requested operation was not successful due to a communication timeout."
    );
}

#[test]
fn connection_refused_is_a_send_error() {
    let ca = ca();
    let port = support::dead_port();
    let mut transport = transport(config(&ca, &format!("https://127.0.0.1:{port}/x")));
    assert_eq!(
        shown(transport.send(&TransportSettings::Direct, REQUEST)),
        send_error_with(SendFailure::ManagerRefused)
    );
}

#[test]
fn a_server_that_hangs_up_without_answering_is_a_send_error() {
    let ca = ca();
    let server = server(&ca, Reply::Hangup);
    let mut transport = transport(config(&ca, &server.url("127.0.0.1", "/x")));
    assert_eq!(
        send_failure(transport.send(&TransportSettings::Direct, REQUEST)),
        SendFailure::ManagerClosed
    );
    assert_eq!(server.received().len(), 1);
}

#[test]
fn an_answer_that_is_not_http_says_so() {
    let ca = ca();
    let server = server(&ca, Reply::Raw(b"SSH-2.0-OpenSSH_9.6\r\n\r\n".to_vec()));
    let mut transport = transport(config(&ca, &server.url("127.0.0.1", "/x")));
    assert_eq!(
        send_failure(transport.send(&TransportSettings::Direct, REQUEST)),
        SendFailure::NotHttp
    );
}

#[test]
fn an_answer_over_the_cap_is_too_large_and_one_at_the_cap_is_read() {
    let ca = ca();
    let big = server(&ca, Reply::Oversized(4096));
    let exact = server(&ca, Reply::Oversized(1024));
    let mut transport =
        transport(config(&ca, "https://127.0.0.1:1/unused").with_max_answer_bytes(1024));
    let over = TransportSettings::on_prem(&big.url("127.0.0.1", "/SmartTransport")).unwrap();
    assert_eq!(transport.send(&over, REQUEST), Err(SendError::TooLarge));
    let at = TransportSettings::on_prem(&exact.url("127.0.0.1", "/SmartTransport")).unwrap();
    assert_eq!(transport.send(&at, REQUEST).map(|a| a.len()), Ok(1024));
}

#[test]
fn http_500_is_a_send_error_naming_it() {
    let ca = ca();
    let server = server(&ca, Reply::Status(500));
    let mut transport = transport(config(&ca, &server.url("127.0.0.1", "/x")));
    assert_eq!(
        shown(transport.send(&TransportSettings::Direct, REQUEST)),
        send_error_with(SendFailure::HttpServerError)
    );
}

#[test]
fn other_non_2xx_answers_are_send_errors_too() {
    let ca = ca();
    for (code, expected) in [
        (302, SendFailure::HttpRedirect),
        (401, SendFailure::HttpClientError),
        (404, SendFailure::HttpClientError),
        (407, SendFailure::HttpClientError),
        (503, SendFailure::HttpServerError),
    ] {
        let server = server(&ca, Reply::Status(code));
        let mut transport = transport(config(&ca, &server.url("127.0.0.1", "/x")));
        // A manager's own 401/407 is not the proxy asking for credentials.
        let failure = send_failure(transport.send(&TransportSettings::Direct, REQUEST));
        assert_eq!(failure, expected, "{code}");
    }
}

// ---------------------------------------------------------------------------------------------
// Through an HTTP proxy: tinyproxy when it is on PATH, and always the in-test CONNECT proxy.
// Each test runs its scenario against every proxy `proxy::each` starts.

const AUTH: Option<(&str, &str)> = Some(("agent", "s3cret"));

fn through(proxy: &TestProxy, auth: Option<(&str, &str)>) -> TransportSettings {
    TransportSettings::proxy("127.0.0.1", &proxy.port().to_string(), auth).expect("proxy settings")
}

/// The proxy logged a CONNECT to the test server: the request really went through it.
fn assert_tunnelled(proxy: &TestProxy, host: &str) {
    let log = proxy.log();
    assert!(
        log.contains(&format!("CONNECT {host}:")),
        "{:?}: no CONNECT {host} in: {log}",
        proxy.kind()
    );
}

fn round_trip_without_auth(proxy: &TestProxy) {
    let ca = ca();
    let server = server(&ca, Reply::Fixed(ANSWER.to_vec()));
    let mut transport = transport(config(&ca, &server.url("127.0.0.1", "/licservice/license")));
    let answer = transport.send(&through(proxy, None), REQUEST);
    assert_eq!(
        answer.as_deref(),
        Ok(ANSWER),
        "{:?}: {}",
        proxy.kind(),
        proxy.log()
    );
    assert_eq!(server.received()[0].body, REQUEST);
    assert_tunnelled(proxy, "127.0.0.1");
}

fn round_trip_with_the_right_password(proxy: &TestProxy) {
    let ca = ca();
    let server = server(&ca, Reply::Fixed(ANSWER.to_vec()));
    let mut transport = transport(config(&ca, &server.url("localhost", "/x")));
    let answer = transport.send(&through(proxy, AUTH), REQUEST);
    assert_eq!(
        answer.as_deref(),
        Ok(ANSWER),
        "{:?}: {}",
        proxy.kind(),
        proxy.log()
    );
    assert_tunnelled(proxy, "localhost");
}

fn wrong_password_is_proxy_authentication(proxy: &TestProxy) {
    let ca = ca();
    let server = server(&ca, Reply::Fixed(ANSWER.to_vec()));
    let mut transport = transport(config(&ca, &server.url("127.0.0.1", "/x")));
    let answer = transport.send(&through(proxy, Some(("agent", "wrong"))), REQUEST);
    assert_eq!(
        answer,
        Err(SendError::ProxyAuthentication),
        "{:?}: {}",
        proxy.kind(),
        proxy.log()
    );
    assert!(server.received().is_empty());
}

#[test]
fn proxy_without_auth_round_trip() {
    for proxy in proxy::each("proxy_without_auth_round_trip", None) {
        round_trip_without_auth(&proxy);
    }
}

#[test]
fn proxy_with_basic_auth_and_the_right_password_round_trip() {
    let test = "proxy_with_basic_auth_and_the_right_password_round_trip";
    for proxy in proxy::each(test, AUTH) {
        round_trip_with_the_right_password(&proxy);
    }
}

#[test]
fn proxy_with_a_wrong_password_is_proxy_authentication() {
    let test = "proxy_with_a_wrong_password_is_proxy_authentication";
    for proxy in proxy::each(test, AUTH) {
        wrong_password_is_proxy_authentication(&proxy);
    }
}

#[test]
fn proxy_demanding_auth_without_credentials_is_proxy_authentication() {
    let test = "proxy_demanding_auth_without_credentials_is_proxy_authentication";
    for proxy in proxy::each(test, AUTH) {
        let ca = ca();
        let server = server(&ca, Reply::Fixed(ANSWER.to_vec()));
        let mut transport = transport(config(&ca, &server.url("127.0.0.1", "/x")));
        let answer = transport.send(&through(&proxy, None), REQUEST);
        assert_eq!(
            answer,
            Err(SendError::ProxyAuthentication),
            "{:?}: {}",
            proxy.kind(),
            proxy.log()
        );
    }
}

#[test]
fn a_stopped_proxy_is_a_send_error() {
    for mut proxy in proxy::each("a_stopped_proxy_is_a_send_error", None) {
        let ca = ca();
        let server = server(&ca, Reply::Fixed(ANSWER.to_vec()));
        let mut transport = transport(config(&ca, &server.url("127.0.0.1", "/x")));
        let settings = through(&proxy, None);
        assert_eq!(transport.send(&settings, REQUEST).as_deref(), Ok(ANSWER));
        proxy.stop();
        assert_eq!(
            shown(transport.send(&settings, REQUEST)),
            send_error_with(SendFailure::ProxyRefused),
            "{:?}",
            proxy.kind()
        );
        assert_eq!(server.received().len(), 1);
    }
}

#[test]
fn the_proxy_does_not_bypass_trust() {
    for proxy in proxy::each("the_proxy_does_not_bypass_trust", None) {
        let rogue = TestCa::new("another untrusted test CA");
        let server = server(&rogue, Reply::Fixed(ANSWER.to_vec()));
        let mut transport = transport(config(&ca(), &server.url("127.0.0.1", "/x")));
        assert_eq!(
            transport.send(&through(&proxy, None), REQUEST),
            Err(SendError::UnknownCa),
            "{:?}",
            proxy.kind()
        );
    }
}

#[test]
fn without_tinyproxy_on_path_the_proxy_tests_run_against_the_in_test_proxy() {
    use std::os::unix::fs::PermissionsExt;
    let empty = tempfile::tempdir().unwrap();
    let no_tinyproxy = Some(empty.path().as_os_str());
    assert_eq!(
        proxy::kinds_for(no_tinyproxy, false),
        Ok(vec![Kind::InTest])
    );
    assert_eq!(proxy::kinds_for(None, false), Ok(vec![Kind::InTest]));
    // .ci/run sets SMART_AGENT_REQUIRE_PROXY=1: there a missing tinyproxy fails the tests.
    let required = proxy::kinds_for(no_tinyproxy, true).unwrap_err();
    assert!(
        required.contains("SMART_AGENT_REQUIRE_PROXY=1"),
        "{required}"
    );
    // An executable tinyproxy on PATH: both; a file that cannot run does not count.
    let bin = tempfile::tempdir().unwrap();
    let tinyproxy = bin.path().join("tinyproxy");
    std::fs::write(&tinyproxy, "#!/bin/sh\n").unwrap();
    let path = std::env::join_paths([empty.path(), bin.path()]).unwrap();
    assert_eq!(proxy::kinds_for(Some(&path), false), Ok(vec![Kind::InTest]));
    std::fs::set_permissions(&tinyproxy, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(
        proxy::kinds_for(Some(&path), true),
        Ok(vec![Kind::Tinyproxy, Kind::InTest])
    );

    // The in-test proxy passes the scenarios, and a broken one fails them.
    round_trip_without_auth(&TestProxy::start(Kind::InTest, "in-test", None));
    round_trip_with_the_right_password(&TestProxy::start(Kind::InTest, "in-test", AUTH));
    wrong_password_is_proxy_authentication(&TestProxy::start(Kind::InTest, "in-test", AUTH));
    let no_tunnel = TestProxy::InTest(ConnectProxy::start_broken(None, Breakage::NoTunnel));
    let any_password = TestProxy::InTest(ConnectProxy::start_broken(AUTH, Breakage::AnyPassword));
    let fails = |scenario: fn(&TestProxy), proxy: &TestProxy| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| scenario(proxy))).is_err()
    };
    assert!(
        fails(round_trip_without_auth, &no_tunnel),
        "a proxy that tunnels nothing"
    );
    assert!(
        fails(wrong_password_is_proxy_authentication, &any_password),
        "a proxy that takes any password"
    );
}

#[test]
fn a_proxy_that_answers_in_tls_is_named_so() {
    // An HTTPS port configured as the proxy: it answers the CONNECT with a TLS alert.
    let ca = ca();
    let https_port = server(&ca, Reply::Fixed(ANSWER.to_vec()));
    let manager = server(&ca, Reply::Fixed(ANSWER.to_vec()));
    let config = config(&ca, &manager.url("127.0.0.1", "/x"));
    let settings =
        TransportSettings::proxy("127.0.0.1", &https_port.port().to_string(), None).unwrap();
    let mut transport = transport(config.clone());
    assert_eq!(
        send_failure(transport.send(&settings, REQUEST)),
        SendFailure::ProxySpeaksTls
    );
    let d = diagnose(&settings, &config);
    assert_failed_at(
        &d,
        Step::ProxyConnect,
        "the proxy answered in TLS, not HTTP",
    );
    assert!(manager.received().is_empty());
}

// ---------------------------------------------------------------------------------------------
// diagnose(): one test per failing step, and a run where every step works

fn assert_failed_at(d: &smart_agent::transport::Diagnosis, step: Step, needle: &str) {
    println!("{d}\n");
    assert_eq!(d.failed_step(), Some(step), "{d}");
    let text = d.to_string();
    let last = text.lines().last().unwrap_or_default();
    assert!(last.starts_with(&format!("{step}: FAILED: ")), "{d}");
    assert!(last.contains(needle), "{d}");
    assert!(in_the_words_of_the_list(step, last), "{d}");
    assert_eq!(
        d.steps().last().map(|r| r.step),
        Some(step),
        "stops at the failure"
    );
}

/// A failed step speaks the words the agent's failure detail uses ([`SendFailure`]), but for
/// the configuration (URL), the name that does not resolve (DNS) and a manager's answer that
/// is not one (the agent's rejected-answer checks).
fn in_the_words_of_the_list(step: Step, line: &str) -> bool {
    match step {
        Step::Url => true,
        Step::Dns => line.contains(": cannot resolve ") || line.contains(": no answer for "),
        _ => {
            SendFailure::ALL.iter().any(|f| line.contains(f.phrase()))
                || line.contains(": communication timeout (")
                || line.contains(": the answer is not a manager's answer (")
        }
    }
}

#[test]
fn diagnose_fails_at_url_for_a_direct_url_that_is_not_https() {
    let ca = ca();
    let config = config(&ca, "http://127.0.0.1:8080/x");
    let d = diagnose(&TransportSettings::Direct, &config);
    assert_failed_at(&d, Step::Url, "only https://");
    assert_eq!(d.steps().len(), 1);
}

#[test]
fn diagnose_fails_at_dns_for_an_unknown_name() {
    let ca = ca();
    let config = config(&ca, "https://manager.smart-agent.invalid/x");
    let d = diagnose(&TransportSettings::Direct, &config);
    assert_failed_at(&d, Step::Dns, "manager.smart-agent.invalid");
}

#[test]
fn diagnose_fails_at_tcp_when_refused() {
    let ca = ca();
    let port = support::dead_port();
    let config = config(&ca, &format!("https://127.0.0.1:{port}/x"));
    let d = diagnose(&TransportSettings::Direct, &config);
    assert_failed_at(&d, Step::Tcp, "refused");
    assert!(d.to_string().contains("DNS: ok (127.0.0.1)"), "{d}");
}

#[test]
fn diagnose_fails_at_tcp_when_the_proxy_is_down() {
    let ca = ca();
    let config = config(&ca, "https://127.0.0.1:1/x");
    let port = support::dead_port().to_string();
    let settings = TransportSettings::proxy("127.0.0.1", &port, None).unwrap();
    let d = diagnose(&settings, &config);
    assert_failed_at(&d, Step::Tcp, "connection refused by the proxy");
}

#[test]
fn diagnose_fails_at_proxy_connect_with_a_wrong_password() {
    let test = "diagnose_fails_at_proxy_connect_with_a_wrong_password";
    for proxy in proxy::each(test, AUTH) {
        let ca = ca();
        let server = server(&ca, Reply::Fixed(ANSWER.to_vec()));
        let config = config(&ca, &server.url("127.0.0.1", "/x"));
        for auth in [Some(("agent", "wrong")), None] {
            let d = diagnose(&through(&proxy, auth), &config);
            assert_failed_at(
                &d,
                Step::ProxyConnect,
                "proxy authentication required (HTTP 4",
            );
        }
    }
}

#[test]
fn diagnose_fails_at_tls_for_an_untrusted_ca() {
    let rogue = TestCa::new("rogue diagnose CA");
    let server = server(&rogue, Reply::Fixed(ANSWER.to_vec()));
    let config = config(&ca(), &server.url("localhost", "/x"));
    let d = diagnose(&TransportSettings::Direct, &config);
    assert_failed_at(&d, Step::Tls, "invalid trust chain pool (Unknown CA)");
    assert!(server.received().is_empty());
}

#[test]
fn diagnose_fails_at_tls_with_unknown_ca_for_self_signed_and_ca_certificates() {
    let trusted = ca();
    for presented in [
        support::https::self_signed_leaf(&NAMES),
        support::https::self_signed_ca_leaf(&NAMES),
        trusted.as_leaf(),
    ] {
        let server =
            TestServer::start_with(presented, "127.0.0.1:0", Reply::Fixed(ANSWER.to_vec()))
                .unwrap();
        let config = config(&trusted, &server.url("127.0.0.1", "/x"));
        let d = diagnose(&TransportSettings::Direct, &config);
        assert_failed_at(
            &d,
            Step::Tls,
            "TLS: FAILED: invalid trust chain pool (Unknown CA)",
        );
        assert!(server.received().is_empty());
    }
}

#[test]
fn diagnose_fails_at_tls_for_an_expired_certificate() {
    let ca = ca();
    let server = TestServer::start_with(
        ca.expired_leaf(&NAMES),
        "127.0.0.1:0",
        Reply::Fixed(ANSWER.to_vec()),
    )
    .unwrap();
    let config = config(&ca, &server.url("localhost", "/x"));
    let d = diagnose(&TransportSettings::Direct, &config);
    assert_failed_at(
        &d,
        Step::Tls,
        "TLS: FAILED: communication send error: the manager's certificate has expired",
    );
}

#[test]
fn diagnose_fails_at_tls_for_a_port_without_tls() {
    let plain = PlainServer::start(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    let config = config(&ca(), &format!("https://127.0.0.1:{}/x", plain.port()));
    let d = diagnose(&TransportSettings::Direct, &config);
    assert_failed_at(
        &d,
        Step::Tls,
        "TLS: FAILED: communication send error: the manager does not speak TLS",
    );
}

#[test]
fn diagnose_fails_at_tls_for_a_certificate_of_another_host() {
    let ca = ca();
    let server = TestServer::start(
        &ca,
        &["satellite.example.com"],
        "127.0.0.1:0",
        Reply::Garbage,
    )
    .unwrap();
    let config = config(&ca, "https://127.0.0.1:1/unused");
    let settings = TransportSettings::on_prem(&server.url("localhost", "/SmartTransport")).unwrap();
    let d = diagnose(&settings, &config);
    assert_failed_at(
        &d,
        Step::Tls,
        "TLS: FAILED: communication send error: \
         the manager's certificate is not valid for its host name",
    );
}

#[test]
fn diagnose_fails_at_manager_for_http_500() {
    let ca = ca();
    let server = server(&ca, Reply::Status(500));
    let config = config(&ca, &server.url("127.0.0.1", "/x"));
    let d = diagnose(&TransportSettings::Direct, &config);
    assert_failed_at(
        &d,
        Step::Manager,
        "Manager: FAILED: communication send error: \
         the manager answered with an HTTP server error (HTTP 500)",
    );
    assert!(d.to_string().contains("TLS: ok ("), "{d}");
}

#[test]
fn diagnose_fails_at_manager_for_an_answer_that_is_not_the_protocol() {
    let ca = ca();
    let server = server(&ca, Reply::Garbage);
    let config = config(&ca, &server.url("127.0.0.1", "/x"));
    let d = diagnose(&TransportSettings::Direct, &config);
    assert_failed_at(&d, Step::Manager, "not a manager's answer");
    assert_eq!(server.received().len(), 1, "one probe");
}

#[cfg(feature = "manager")]
fn manager_reply() -> Reply {
    use smart_agent::manager::Manager;
    use smart_agent::{Environment, SystemRandom};
    use std::sync::{Arc, Mutex};
    let manager = Manager::new(Environment::Development, Box::new(SystemRandom::new())).unwrap();
    let manager = Arc::new(Mutex::new(manager));
    Reply::With(Arc::new(move |body: &[u8]| {
        let now = chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now());
        manager.lock().unwrap().handle(body, now)
    }))
}

#[cfg(feature = "manager")]
#[test]
fn diagnose_all_ok_against_the_reference_manager() {
    let ca = ca();
    let server = server(&ca, manager_reply());
    let config = config(&ca, "https://127.0.0.1:1/unused");
    let settings = TransportSettings::on_prem(&server.url("localhost", "/SmartTransport")).unwrap();
    let d = diagnose(&settings, &config);
    assert!(d.is_ok(), "{d}");
    let steps: Vec<Step> = d.steps().iter().map(|r| r.step).collect();
    assert_eq!(
        steps,
        [Step::Url, Step::Dns, Step::Tcp, Step::Tls, Step::Manager]
    );
    let text = d.to_string();
    assert!(
        text.contains(
            "Manager: ok (a manager answered (refusing the unsigned probe, as it should); \
             it signs for the development environment"
        ),
        "{text}"
    );
    assert_eq!(server.received()[0].body, smart_agent::transport::PROBE);
    println!("{d}");
}

#[cfg(feature = "manager")]
#[test]
fn diagnose_all_ok_through_an_authenticating_proxy() {
    let test = "diagnose_all_ok_through_an_authenticating_proxy";
    for proxy in proxy::each(test, AUTH) {
        let ca = ca();
        let server = server(&ca, manager_reply());
        let config = config(&ca, &server.url("127.0.0.1", "/licservice/license"));
        let d = diagnose(&through(&proxy, AUTH), &config);
        assert!(d.is_ok(), "{:?}: {d}\n{}", proxy.kind(), proxy.log());
        let steps: Vec<Step> = d.steps().iter().map(|r| r.step).collect();
        assert_eq!(
            steps,
            [
                Step::Url,
                Step::Dns,
                Step::Tcp,
                Step::ProxyConnect,
                Step::Tls,
                Step::Manager
            ]
        );
        assert_tunnelled(&proxy, "127.0.0.1");
        println!("{d}");
    }
}
