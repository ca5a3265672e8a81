//! Proxy environment variables are ignored (SPEC §8): only the configured proxy is used.
//!
//! The environment is process-global, so this test has a binary of its own: setting
//! `HTTPS_PROXY` here cannot disturb tests running in parallel in other binaries.
mod support;

use smart_agent::transport::{HttpsTransport, Transport, TransportConfig};
use smart_agent::TransportSettings;
use support::https::{Reply, TestCa, TestServer};

const DEAD_PROXY: &str = "http://127.0.0.1:9";

#[test]
fn proxy_environment_variables_do_not_affect_a_direct_transport() {
    for name in [
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
        "HTTP_PROXY",
        "http_proxy",
    ] {
        std::env::set_var(name, DEAD_PROXY);
    }
    std::env::remove_var("NO_PROXY");
    std::env::remove_var("no_proxy");
    // The premise: left to itself, ureq would take this proxy from the environment.
    let from_env = ureq::Proxy::try_from_env().expect("ureq reads the proxy environment");
    assert_eq!(from_env.port(), 9);

    let ca = TestCa::new("smart-agent env test CA");
    let server = TestServer::start(
        &ca,
        &["localhost", "127.0.0.1"],
        "127.0.0.1:0",
        Reply::Fixed(b"<response/>".to_vec()),
    )
    .expect("test server");
    let mut config = TransportConfig::new().with_direct_url(server.url("127.0.0.1", "/x"));
    config.add_ca_pem(ca.pem().as_bytes()).unwrap();
    let mut transport = HttpsTransport::new(config).unwrap();

    assert_eq!(
        transport
            .send(&TransportSettings::Direct, b"<request/>")
            .as_deref(),
        Ok(&b"<response/>"[..])
    );
    let on_prem = TransportSettings::on_prem(&server.url("localhost", "/SmartTransport")).unwrap();
    assert_eq!(
        transport.send(&on_prem, b"<request/>").as_deref(),
        Ok(&b"<response/>"[..])
    );
    assert_eq!(server.received().len(), 2);

    // diagnose() connects by hand, then POSTs through the transport: also unaffected (the
    // server's fixed answer is not a manager's, so only the last step fails).
    let mut config = TransportConfig::new().with_direct_url(server.url("127.0.0.1", "/x"));
    config.add_ca_der(&ca.der()).unwrap();
    let d = smart_agent::transport::diagnose(&TransportSettings::Direct, &config);
    assert_ne!(
        d.failed_step(),
        Some(smart_agent::transport::Step::Tcp),
        "{d}"
    );
    assert_eq!(
        d.failed_step(),
        Some(smart_agent::transport::Step::Manager),
        "{d}"
    );
}
