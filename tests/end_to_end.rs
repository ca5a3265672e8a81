//! Agent + Driver + HttpsTransport against the reference manager served over real HTTPS on
//! loopback: directly, through HTTP proxies (tinyproxy when on PATH, and the in-test CONNECT
//! proxy), with an untrusted CA, many agents at once.
#![cfg(feature = "manager")]

mod common;
mod support;

use std::sync::{Arc, Mutex};

use common::{tag, ENHANCED};
use smart_agent::driver::{Driver, ManualClock, MemoryStore, SystemClock};
use smart_agent::manager::server::{Server, ServerOptions};
use smart_agent::manager::TokenOptions;
use smart_agent::status::Outcome;
use smart_agent::transport::{HttpsTransport, TransportConfig};
use smart_agent::{
    Agent, AuthorizationState, Config, DeterministicRandom, Environment, EventKind, Force,
    HostIdentity, ManagerPublicKey, RegistrationState, TransportSettings, TrustAnchor, Udi,
};
use support::proxy::{self, TestProxy};

/// A served manager with 100 Enhanced licenses.
struct Served {
    server: Server,
    _dir: tempfile::TempDir,
}

impl Served {
    fn start() -> Served {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(dir.path().join("manager"), ServerOptions::default()).unwrap();
        server
            .state_dir()
            .update(|m, _| {
                let va = m.default_virtual_account();
                m.add_licenses(&va, &tag(ENHANCED), 100, None, None)
            })
            .unwrap();
        Served { server, _dir: dir }
    }

    fn token(&self) -> String {
        self.server
            .state_dir()
            .update(|m, now| {
                let va = m.default_virtual_account();
                m.create_token(&va, TokenOptions::default(), now)
            })
            .unwrap()
            .expose()
            .to_string()
    }

    fn url(&self) -> String {
        format!(
            "https://{}/its/service/oddce/services/DDCEService",
            self.server.addr()
        )
    }

    fn transport_config(&self) -> TransportConfig {
        let mut config = TransportConfig::new().with_direct_url(self.url());
        let ca = std::fs::read(self.server.state_dir().ca_cert_path()).unwrap();
        config.add_ca_pem(&ca).unwrap();
        config
    }

    /// The agent configuration a product would write from the paths `serve` prints.
    fn agent_config(&self, udi: &str, seed: u64) -> Config {
        let pem =
            std::fs::read_to_string(self.server.state_dir().manager_public_key_path()).unwrap();
        let anchor = TrustAnchor::new(
            ManagerPublicKey::from_spki_pem(&pem).unwrap(),
            self.server.environment(),
        );
        Config::new(
            udi.parse::<Udi>().unwrap(),
            self.server.environment(),
            vec![anchor],
        )
        .with_random(Box::new(DeterministicRandom::new(seed)))
    }

    /// The product uses `count` Enhanced and registers with a fresh token; one step sends it.
    fn enrol(&self, driver: &mut Driver, count: u32) {
        driver.agent_mut().declare(tag(ENHANCED), now());
        driver
            .agent_mut()
            .set_usage(&tag(ENHANCED), count, now())
            .unwrap();
        driver
            .agent_mut()
            .register(&self.token(), Force::No, now())
            .unwrap();
        driver.step().unwrap();
    }

    fn instances(&self) -> Vec<smart_agent::manager::InstanceInfo> {
        self.server.state_dir().read(|m, _| m.instances()).unwrap()
    }

    fn driver(&self, udi: &str, seed: u64, config: TransportConfig) -> Driver {
        let transport = HttpsTransport::new(config).unwrap();
        Driver::open(
            self.agent_config(udi, seed),
            transport,
            SystemClock,
            MemoryStore::default(),
        )
        .unwrap()
    }
}

const UDI: &str = "PID:UCM,SN:1001";

fn now() -> chrono::DateTime<chrono::Utc> {
    use smart_agent::driver::Clock;
    SystemClock.now()
}

#[test]
fn agent_and_driver_register_renew_and_deregister_over_real_https() {
    let served = Served::start();
    assert_eq!(served.server.environment(), Environment::Development);
    let mut driver = served.driver(UDI, 1, served.transport_config());
    let host = HostIdentity::new("ucm-pub.example.com", "192.0.2.10".parse().unwrap()).unwrap();
    driver.agent_mut().set_host(host, now());
    served.enrol(&mut driver, 7);
    let st = driver.agent().status(now());
    assert_eq!(st.registration.state, RegistrationState::Registered);
    assert_eq!(st.authorization.state, AuthorizationState::Authorized);
    let instances = served.instances();
    assert_eq!(instances.len(), 1);
    assert_eq!(instances[0].usage.get(ENHANCED), Some(&7));
    // Privacy off: the manager received host name and address.
    assert_eq!(
        instances[0].hostname.as_deref(),
        Some("ucm-pub.example.com")
    );
    assert_eq!(instances[0].ip.as_deref(), Some("192.0.2.10"));

    driver.agent_mut().renew_auth(now()).unwrap();
    driver.agent_mut().renew_id(now()).unwrap();
    driver.step().unwrap();
    let st = driver.agent().status(now());
    assert_eq!(
        st.registration.last_renewal.unwrap().outcome,
        Outcome::Succeeded
    );
    assert_eq!(
        st.authorization.last_communication.unwrap().outcome,
        Outcome::Succeeded
    );

    driver.agent_mut().deregister(now()).unwrap();
    driver.step().unwrap();
    assert!(driver
        .take_events()
        .iter()
        .any(|e| matches!(e.kind, EventKind::Deregistered)));
    assert!(served.instances().is_empty());
}

#[test]
fn privacy_keeps_host_name_and_address_from_the_manager() {
    let served = Served::start();
    let mut driver = served.driver(UDI, 2, served.transport_config());
    let host = HostIdentity::new("ucm-pub.example.com", "192.0.2.10".parse().unwrap()).unwrap();
    driver.agent_mut().set_host(host, now());
    driver.agent_mut().set_privacy(true, now());
    driver
        .agent_mut()
        .register(&served.token(), Force::No, now())
        .unwrap();
    driver.step().unwrap();
    let instances = served.instances();
    assert_eq!(instances.len(), 1);
    assert_eq!(instances[0].hostname, None);
    assert_eq!(instances[0].ip, None);
}

#[test]
fn concurrent_agents_register_against_one_manager() {
    let served = Arc::new(Served::start());
    let threads: Vec<_> = (0..6)
        .map(|i| {
            let served = Arc::clone(&served);
            std::thread::spawn(move || {
                let udi = format!("PID:UCM,SN:20{i:02}");
                let mut driver = served.driver(&udi, 10 + i, served.transport_config());
                served.enrol(&mut driver, 2);
                driver.agent().status(now())
            })
        })
        .collect();
    for t in threads {
        let st = t.join().unwrap();
        assert_eq!(st.registration.state, RegistrationState::Registered);
        assert_eq!(st.authorization.state, AuthorizationState::Authorized);
    }
    assert_eq!(served.instances().len(), 6);
}

#[test]
fn a_manager_certificate_from_an_untrusted_ca_is_invalid_trust_chain_pool() {
    let served = Served::start();
    let other = Served::start(); // its CA is not the served manager's
    let mut config = TransportConfig::new().with_direct_url(served.url());
    config
        .add_ca_pem(&std::fs::read(other.server.state_dir().ca_cert_path()).unwrap())
        .unwrap();
    let mut driver = served.driver(UDI, 3, config);
    driver
        .agent_mut()
        .register(&served.token(), Force::No, now())
        .unwrap();
    let before = driver.agent().snapshot_parts().licensing;
    driver.step().unwrap();
    assert_eq!(driver.agent().snapshot_parts().licensing, before);
    let st = driver.agent().status(now());
    assert_eq!(
        st.registration.state,
        RegistrationState::RegistrationPending
    );
    let failure = driver
        .take_events()
        .into_iter()
        .find_map(|e| match e.kind {
            EventKind::RegistrationRetrying { failure, .. } => Some(failure),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        failure.message(),
        "The requested operation was not successful due to invalid trust chain pool"
    );
    assert_eq!(failure.detail().as_deref(), Some("Unknown CA"));
    assert!(served.instances().is_empty());
}

fn through(proxy: &TestProxy, auth: Option<(&str, &str)>) -> TransportSettings {
    TransportSettings::proxy("127.0.0.1", &proxy.port().to_string(), auth).unwrap()
}

#[test]
fn the_whole_lifecycle_through_a_real_proxy_with_and_without_basic_auth() {
    let test = "the_whole_lifecycle_through_a_real_proxy_with_and_without_basic_auth";
    let served = Served::start();
    let proxies = [None, Some(("agent", "s3cret"))]
        .into_iter()
        .flat_map(|auth| proxy::each(test, auth).into_iter().map(move |p| (auth, p)));
    for (seed, (auth, proxy)) in (40..).zip(proxies) {
        let kind = proxy.kind();
        let udi = format!("PID:UCM,SN:{seed}");
        let mut driver = served.driver(&udi, seed, served.transport_config());
        driver
            .agent_mut()
            .set_transport(through(&proxy, auth), now())
            .unwrap();
        served.enrol(&mut driver, 1);
        assert_eq!(
            driver.agent().status(now()).authorization.state,
            AuthorizationState::Authorized,
            "{kind:?}, auth {auth:?}: {}",
            proxy.log()
        );
        let piid = served.instances()[0].piid;
        let reports = served.instances()[0].usage_reports_counted;
        driver.agent_mut().renew_auth(now()).unwrap();
        driver.agent_mut().renew_id(now()).unwrap();
        driver.step().unwrap();
        assert_eq!(served.instances()[0].usage_reports_counted, reports + 1);
        driver.agent_mut().deregister(now()).unwrap();
        driver.step().unwrap();
        assert!(served.instances().iter().all(|i| i.piid != piid));
        // The traffic really went through the proxy: it logged the tunnels it opened.
        let log = proxy.log();
        let tunnel = format!("CONNECT {}", served.server.addr());
        assert!(
            log.matches(&tunnel).count() >= 4,
            "{kind:?}: expected register, authorize, renewals and deregister through {tunnel}: {log}"
        );
    }
}

#[test]
fn wrong_proxy_password_is_a_proxy_authentication_failure() {
    let served = Served::start();
    let test = "wrong_proxy_password_is_a_proxy_authentication_failure";
    for proxy in proxy::each(test, Some(("agent", "s3cret"))) {
        wrong_proxy_password(&served, &proxy);
    }
}

fn wrong_proxy_password(served: &Served, proxy: &TestProxy) {
    let mut driver = served.driver(UDI, 6, served.transport_config());
    driver
        .agent_mut()
        .set_transport(through(proxy, Some(("agent", "wrong"))), now())
        .unwrap();
    driver
        .agent_mut()
        .register(&served.token(), Force::No, now())
        .unwrap();
    driver.step().unwrap();
    let failure = driver
        .take_events()
        .into_iter()
        .find_map(|e| match e.kind {
            EventKind::RegistrationRetrying { failure, .. } => Some(failure),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        failure.message(),
        "The requested operation was not successful due to communication send error"
    );
    assert_eq!(
        failure.detail().as_deref(),
        Some("proxy authentication required")
    );
    assert!(served.instances().is_empty());
}

#[test]
fn a_stopped_proxy_leaves_registration_pending_and_it_is_retried() {
    let served = Served::start();
    let test = "a_stopped_proxy_leaves_registration_pending_and_it_is_retried";
    for mut proxy in proxy::each(test, None) {
        stopped_proxy(&served, &mut proxy);
    }
}

fn stopped_proxy(served: &Served, proxy: &mut TestProxy) {
    let clock = ManualClock::new(now());
    let transport = HttpsTransport::new(served.transport_config()).unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let mut driver = Driver::open(
        served.agent_config(UDI, 7),
        transport,
        clock.clone(),
        MemoryStore::default(),
    )
    .unwrap()
    .on_event(move |e| sink.lock().unwrap().push(e));
    let settings = through(proxy, None);
    proxy.stop();
    let t = clock_now(&clock);
    driver.agent_mut().set_transport(settings, t).unwrap();
    driver
        .agent_mut()
        .register(&served.token(), Force::No, t)
        .unwrap();
    driver.step().unwrap();
    let st = driver.agent().status(t);
    assert_eq!(
        st.registration.state,
        RegistrationState::RegistrationPending
    );
    assert_eq!(
        st.registration.initial_registration.unwrap().outcome,
        Outcome::Failed {
            reason: "The requested operation was not successful due to communication send error"
                .into()
        }
    );
    let retry = st.registration.next_registration_attempt.unwrap();
    assert_eq!(retry, t + chrono::TimeDelta::minutes(15));
    clock.set(retry);
    driver.step().unwrap();
    let retried = events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e.kind, EventKind::RegistrationRetrying { .. }))
        .count();
    assert_eq!(
        retried, 2,
        "the first attempt and the retry 15 minutes later"
    );
}

fn clock_now(clock: &ManualClock) -> chrono::DateTime<chrono::Utc> {
    use smart_agent::driver::Clock;
    clock.now()
}

#[test]
fn a_restored_agent_keeps_working_against_the_restarted_manager() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("manager");
    let server = Server::start(&path, ServerOptions::default()).unwrap();
    let served = Served {
        server,
        _dir: tempfile::tempdir().unwrap(),
    };
    served
        .server
        .state_dir()
        .update(|m, _| {
            let va = m.default_virtual_account();
            m.add_licenses(&va, &tag(ENHANCED), 10, None, None)
        })
        .unwrap();
    let store = MemoryStore::default();
    let mut driver = Driver::open(
        served.agent_config(UDI, 8),
        HttpsTransport::new(served.transport_config()).unwrap(),
        SystemClock,
        store.clone(),
    )
    .unwrap();
    served.enrol(&mut driver, 1);
    let config = served.agent_config(UDI, 9);
    served.server.shutdown();
    // Restarted on the same directory: new port, same CA and signing key.
    let server = Server::start(&path, ServerOptions::default()).unwrap();
    let served = Served { server, _dir: dir };
    let agent = Agent::restore(&store.get().unwrap(), config, now()).unwrap();
    assert_eq!(
        agent.status(now()).registration.state,
        RegistrationState::Registered
    );
    let mut driver = Driver::open(
        served.agent_config(UDI, 10),
        HttpsTransport::new(served.transport_config()).unwrap(),
        SystemClock,
        store,
    )
    .unwrap();
    driver.agent_mut().renew_auth(now()).unwrap();
    driver.step().unwrap();
    let st = driver.agent().status(now());
    assert_eq!(st.authorization.state, AuthorizationState::Authorized);
    assert_eq!(
        st.authorization.last_communication.unwrap().outcome,
        Outcome::Succeeded
    );
    assert_eq!(served.instances().len(), 1);
}
