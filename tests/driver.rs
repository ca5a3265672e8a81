//! The blocking Driver: loop, handle, usage recount, persistence and store faults, with the
//! reference manager behind an in-process transport.
#![cfg(feature = "manager")]

mod common;

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use smart_agent::driver::Clock;
use smart_agent::driver::{
    Driver, DriverError, ManualClock, MemoryStore, SnapshotStore, SystemClock,
};
use smart_agent::manager::Manager;
use smart_agent::store::{AtomicFile, FileSystem, RealFs};
use smart_agent::transport::Transport;
use smart_agent::wire::RequestKind;
use smart_agent::{
    Agent, AuthorizationState, DeterministicRandom, Environment, Force, RegistrationState,
    SendError, TransportSettings,
};

/// The reference manager in-process, answering at the given clock's time.
#[derive(Clone)]
struct Loopback<C: Clock + Clone> {
    manager: Arc<Mutex<Manager>>,
    clock: C,
    down: Arc<AtomicBool>,
    sent: Arc<Mutex<Vec<RequestKind>>>,
}

impl<C: Clock + Clone> Loopback<C> {
    fn new(clock: C) -> Self {
        let mut manager = Manager::new(
            Environment::Production,
            Box::new(DeterministicRandom::new(8)),
        )
        .unwrap();
        let va = manager.default_virtual_account();
        manager
            .add_licenses(&va, &tag(ENHANCED), 10, None, None)
            .unwrap();
        Loopback {
            manager: Arc::new(Mutex::new(manager)),
            clock,
            down: Arc::new(AtomicBool::new(false)),
            sent: Arc::default(),
        }
    }

    fn token(&self) -> String {
        let mut m = self.manager.lock().unwrap();
        let va = m.default_virtual_account();
        m.create_token(&va, Default::default(), self.clock.now())
            .unwrap()
            .expose()
            .to_string()
    }

    fn anchors(&self) -> Vec<smart_agent::TrustAnchor> {
        self.manager.lock().unwrap().trust_anchors()
    }
}

impl<C: Clock + Clone> Transport for Loopback<C> {
    fn send(&mut self, _: &TransportSettings, body: &[u8]) -> Result<Vec<u8>, SendError> {
        let kind = smart_agent::wire::decode_request(body, 1 << 20)
            .map(|p| p.request.kind)
            .unwrap_or(RequestKind::Register);
        self.sent.lock().unwrap().push(kind);
        if self.down.load(Ordering::SeqCst) {
            return Err(refused());
        }
        Ok(self.manager.lock().unwrap().handle(body, self.clock.now()))
    }
}

#[test]
fn driver_registers_authorizes_renews_and_persists_in_virtual_time() {
    let clock = ManualClock::new(t0());
    let link = Loopback::new(clock.clone());
    let store = MemoryStore::default();
    let mut driver = Driver::open(
        config(UDI, link.anchors(), 1),
        link.clone(),
        clock.clone(),
        store.clone(),
    )
    .unwrap();
    let handle = driver.handle();
    // Commands from another thread are applied by the next step.
    let token = link.token();
    let commander = std::thread::spawn(move || {
        handle.declare(tag(ENHANCED)).unwrap();
        handle.set_usage(tag(ENHANCED), 3).unwrap();
        handle.register(&token, Force::No).unwrap();
    });
    while !commander.is_finished() {
        driver.step().unwrap();
    }
    commander.join().unwrap();
    driver.step().unwrap();
    let st = driver.agent().status(clock.now());
    assert_eq!(st.registration.state, RegistrationState::Registered);
    assert_eq!(st.authorization.state, AuthorizationState::Authorized);
    // Persisted: a new driver on the same store sees the same state.
    let reopened = Driver::open(
        config(UDI, link.anchors(), 2),
        link.clone(),
        clock.clone(),
        store.clone(),
    )
    .unwrap();
    assert_eq!(reopened.agent().status(clock.now()), st);

    driver.advance_to(t0() + days(200)).unwrap();
    assert_eq!(
        clock.now(),
        t0() + days(200),
        "the manual clock follows virtual time"
    );
    let kinds = link.sent.lock().unwrap().clone();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == RequestKind::Authorize)
            .count(),
        7
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == RequestKind::RenewId).count(),
        1
    );
    let st = driver.agent().status(clock.now());
    assert_eq!(st.authorization.since, Some(t0() + days(180)));
    assert_eq!(
        Agent::restore(
            &store.get().unwrap(),
            config(UDI, link.anchors(), 3),
            clock.now()
        )
        .unwrap()
        .status(clock.now()),
        st
    );
    let events = driver.take_events();
    assert!(names(&events).contains(&"IdentityRenewed".to_string()));
}

#[test]
fn the_outstanding_request_is_on_disk_before_it_is_sent() {
    struct Checking {
        store: MemoryStore,
        inner: Loopback<ManualClock>,
        anchors: Vec<smart_agent::TrustAnchor>,
        checked: Arc<Mutex<usize>>,
    }
    impl Transport for Checking {
        fn send(&mut self, s: &TransportSettings, body: &[u8]) -> Result<Vec<u8>, SendError> {
            // Restore what is on disk right now: it must re-send this same kind of request.
            let saved = self.store.get().unwrap();
            let now = self.inner.clock.now();
            let mut agent =
                Agent::restore(&saved, config(UDI, self.anchors.clone(), 9), now).unwrap();
            let again = agent
                .poll_transmit(now)
                .expect("the request is in the snapshot");
            let kind = smart_agent::wire::decode_request(body, 1 << 20)
                .unwrap()
                .request
                .kind;
            assert_eq!(again.kind, kind);
            *self.checked.lock().unwrap() += 1;
            self.inner.send(s, body)
        }
    }
    let clock = ManualClock::new(t0());
    let inner = Loopback::new(clock.clone());
    let store = MemoryStore::default();
    let checked = Arc::new(Mutex::new(0));
    let transport = Checking {
        store: store.clone(),
        anchors: inner.anchors(),
        inner: inner.clone(),
        checked: checked.clone(),
    };
    let mut driver = Driver::open(
        config(UDI, inner.anchors(), 1),
        transport,
        clock.clone(),
        store,
    )
    .unwrap();
    let token = inner.token();
    driver.agent_mut().declare(tag(ENHANCED), t0());
    driver
        .agent_mut()
        .register(&token, Force::No, t0())
        .unwrap();
    driver.step().unwrap();
    assert_eq!(
        *checked.lock().unwrap(),
        2,
        "register and the first authorize"
    );
}

#[test]
fn usage_source_is_called_at_start_and_every_period() {
    let clock = ManualClock::new(t0());
    let link = Loopback::new(clock.clone());
    let calls = Arc::new(Mutex::new(0u32));
    let counter = calls.clone();
    let mut driver = Driver::open(
        config(UDI, link.anchors(), 1),
        link.clone(),
        clock.clone(),
        MemoryStore::default(),
    )
    .unwrap()
    .with_usage(move || {
        let mut n = counter.lock().unwrap();
        *n += 1;
        vec![(tag(ENHANCED), *n)]
    })
    .usage_period(hours(6));
    driver.step().unwrap();
    assert_eq!(*calls.lock().unwrap(), 1);
    assert_eq!(driver.agent().status(t0()).entitlements[0].count, 1);
    driver.advance_to(t0() + hours(25)).unwrap();
    assert_eq!(*calls.lock().unwrap(), 5, "at 0, 6, 12, 18 and 24 h");
    assert_eq!(
        driver.agent().status(t0() + hours(25)).entitlements[0].count,
        5
    );
}

#[test]
fn handle_wakes_the_running_loop_and_shutdown_is_clean() {
    let link = Loopback::new(SystemClock);
    let store = MemoryStore::default();
    let mut driver = Driver::open(
        config(UDI, link.anchors(), 1),
        link.clone(),
        SystemClock,
        store.clone(),
    )
    .unwrap();
    let handle = driver.handle();
    let running = std::thread::spawn(move || driver.run());
    // The loop sleeps up to an hour with nothing due: only the handle's wake-up can answer
    // within the watchdog's minute.
    let (done, finished) = std::sync::mpsc::channel();
    let h = handle.clone();
    let token = link.token();
    std::thread::spawn(move || {
        h.declare(tag(ENHANCED)).unwrap();
        h.set_usage(tag(ENHANCED), 2).unwrap();
        let refused = h.register("bad token!", Force::No).unwrap_err();
        h.register(&token, Force::No).unwrap();
        done.send((refused, h.status().unwrap())).unwrap();
    });
    let (refused, st) = finished
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the handle's commands woke the loop");
    assert_eq!(refused.to_string(), smart_agent::error::TOKEN_MESSAGE);
    assert_eq!(st.registration.state, RegistrationState::Registered);
    assert_eq!(st.authorization.state, AuthorizationState::Authorized);
    let other = handle.clone();
    std::thread::spawn(move || other.renew_auth().unwrap())
        .join()
        .unwrap();
    handle.shutdown().unwrap();
    running.join().unwrap().unwrap();
    assert!(matches!(
        handle.status(),
        Err(smart_agent::driver::CommandError::Stopped)
    ));
    assert!(matches!(
        handle.declare(tag(ENHANCED)),
        Err(smart_agent::driver::CommandError::Stopped)
    ));
    let saved = Agent::restore(
        &store.get().unwrap(),
        config(UDI, link.anchors(), 2),
        SystemClock.now(),
    )
    .unwrap();
    assert_eq!(
        saved.status(SystemClock.now()).registration.state,
        RegistrationState::Registered
    );
}

/// Fails one step of the atomic store, like a crash there.
struct Faulty {
    step: &'static str,
    armed: Arc<AtomicBool>,
}

impl Faulty {
    fn fail(&self, step: &str) -> io::Result<()> {
        if self.armed.load(Ordering::SeqCst) && self.step == step {
            Err(io::Error::other(format!("injected: crash {step}")))
        } else {
            Ok(())
        }
    }
}

impl FileSystem for Faulty {
    fn write_synced(&mut self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        RealFs::default().write_synced(path, bytes)?;
        self.fail("after the temp write and fsync, before the rename")
    }
    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        RealFs::default().rename(from, to)
    }
    fn sync_dir(&mut self, dir: &Path) -> io::Result<()> {
        self.fail("after the rename, before the directory fsync")?;
        RealFs::default().sync_dir(dir)
    }
    fn read(&mut self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        RealFs::default().read(path)
    }
}

#[test]
fn a_store_failure_mid_write_reopens_to_exactly_the_old_or_the_new_snapshot() {
    for step in [
        "after the temp write and fsync, before the rename",
        "after the rename, before the directory fsync",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snapshot");
        let clock = ManualClock::new(t0());
        let link = Loopback::new(clock.clone());
        let armed = Arc::new(AtomicBool::new(false));
        let store = AtomicFile::with_fs(
            &path,
            Faulty {
                step,
                armed: armed.clone(),
            },
        );
        let mut driver = Driver::open(
            config(UDI, link.anchors(), 1),
            link.clone(),
            clock.clone(),
            store,
        )
        .unwrap();
        driver.agent_mut().declare(tag(ENHANCED), t0());
        driver.step().unwrap();
        let old = std::fs::read(&path).unwrap();
        armed.store(true, Ordering::SeqCst);
        driver
            .agent_mut()
            .set_usage(&tag(ENHANCED), 4, t0())
            .unwrap();
        let new = driver.agent().snapshot();
        assert!(
            matches!(driver.step(), Err(DriverError::Store(_))),
            "{step}"
        );
        // Reopen as after a crash.
        let on_disk = AtomicFile::new(&path).load().unwrap().unwrap();
        assert!(
            on_disk == old || on_disk == new,
            "{step}: neither old nor new"
        );
        let reopened = Driver::open(
            config(UDI, link.anchors(), 2),
            link.clone(),
            clock.clone(),
            AtomicFile::new(&path),
        )
        .unwrap();
        let count = reopened.agent().status(t0()).entitlements[0].count;
        assert!(count == 0 || count == 4, "{step}");
        // The next step of the original driver saves again once the disk works.
        armed.store(false, Ordering::SeqCst);
        driver.step().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), driver.agent().snapshot());
    }
}

#[test]
fn a_corrupt_store_is_a_typed_error_not_a_fresh_agent() {
    let clock = ManualClock::new(t0());
    let link = Loopback::new(clock.clone());
    let mut store = MemoryStore::default();
    store.save(b"SMAGSNAP\x00\x01\x00garbage").unwrap();
    let opened = Driver::open(config(UDI, link.anchors(), 1), link, clock, store.clone());
    assert!(matches!(opened, Err(DriverError::Restore(_))));
    assert_eq!(store.get().unwrap(), b"SMAGSNAP\x00\x01\x00garbage");
}

#[test]
fn transport_failures_are_retried_by_the_agent_policy() {
    let clock = ManualClock::new(t0());
    let link = Loopback::new(clock.clone());
    let mut driver = Driver::open(
        config(UDI, link.anchors(), 1),
        link.clone(),
        clock.clone(),
        MemoryStore::default(),
    )
    .unwrap();
    link.down.store(true, Ordering::SeqCst);
    let token = link.token();
    driver
        .agent_mut()
        .register(&token, Force::No, t0())
        .unwrap();
    driver.step().unwrap();
    assert_eq!(
        driver.agent().status(t0()).registration.state,
        RegistrationState::RegistrationPending
    );
    link.down.store(false, Ordering::SeqCst);
    driver.advance_to(t0() + minutes(15)).unwrap();
    assert_eq!(
        driver.agent().status(t0() + minutes(15)).registration.state,
        RegistrationState::Registered
    );
}

/// A store that fails while told to.
#[derive(Clone, Default)]
struct FlakyStore {
    inner: MemoryStore,
    failing: Arc<AtomicBool>,
}

impl SnapshotStore for FlakyStore {
    fn load(&mut self) -> io::Result<Option<Vec<u8>>> {
        self.inner.load()
    }
    fn save(&mut self, snapshot: &[u8]) -> io::Result<()> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(io::Error::other("disk full"));
        }
        self.inner.save(snapshot)
    }
}

#[test]
fn nothing_is_sent_while_the_snapshot_cannot_be_saved() {
    let clock = ManualClock::new(t0());
    let link = Loopback::new(clock.clone());
    let store = FlakyStore::default();
    let mut driver = Driver::open(
        config(UDI, link.anchors(), 1),
        link.clone(),
        clock.clone(),
        store.clone(),
    )
    .unwrap();
    let token = link.token();
    store.failing.store(true, Ordering::SeqCst);
    driver
        .agent_mut()
        .register(&token, Force::No, t0())
        .unwrap();
    assert!(matches!(driver.step(), Err(DriverError::Store(_))));
    assert!(
        link.sent.lock().unwrap().is_empty(),
        "a request left without being saved"
    );
    let st = driver.agent().status(t0());
    assert_eq!(
        st.registration.state,
        RegistrationState::RegistrationPending
    );
    // The disk recovers: the registration goes out at its retry, saved first.
    store.failing.store(false, Ordering::SeqCst);
    driver.advance_to(t0() + minutes(15)).unwrap();
    assert_eq!(
        driver.agent().status(t0() + minutes(15)).registration.state,
        RegistrationState::Registered
    );
    assert_eq!(store.inner.get().unwrap(), driver.agent().snapshot());
}

#[test]
fn commands_are_answered_only_once_saved() {
    let clock = ManualClock::new(t0());
    let link = Loopback::new(clock.clone());
    let store = FlakyStore::default();
    let mut driver = Driver::open(
        config(UDI, link.anchors(), 1),
        link.clone(),
        clock,
        store.clone(),
    )
    .unwrap();
    let handle = driver.handle();
    store.failing.store(true, Ordering::SeqCst);
    let waiting = std::thread::spawn(move || handle.declare(tag(ENHANCED)));
    while !waiting.is_finished() {
        let _ = driver.step();
    }
    assert!(matches!(
        waiting.join().unwrap(),
        Err(smart_agent::driver::CommandError::NotSaved(_))
    ));
}

#[test]
fn the_default_usage_period_is_24_hours() {
    let clock = ManualClock::new(t0());
    let link = Loopback::new(clock.clone());
    let calls = Arc::new(Mutex::new(0u32));
    let counter = calls.clone();
    let mut driver = Driver::open(
        config(UDI, link.anchors(), 1),
        link,
        clock,
        MemoryStore::default(),
    )
    .unwrap()
    .with_usage(move || {
        *counter.lock().unwrap() += 1;
        vec![]
    });
    driver.advance_to(t0() + hours(49)).unwrap();
    assert_eq!(*calls.lock().unwrap(), 3, "at 0, 24 and 48 h");
}

#[test]
fn a_command_through_call_returns_its_value_once_saved_or_its_refusal() {
    let clock = ManualClock::new(t0());
    let link = Loopback::new(clock.clone());
    let store = MemoryStore::default();
    let mut driver = Driver::open(
        config(UDI, link.anchors(), 1),
        link.clone(),
        clock,
        store.clone(),
    )
    .unwrap();
    let handle = driver.handle();
    let saved = store.clone();
    let asked = std::thread::spawn(move || {
        let declared = handle.call(|agent, now| {
            agent.declare(tag(ENHANCED), now);
            Ok(agent.status(now).entitlements.len())
        });
        // Answered only after the step saved the declaration.
        let snapshot = saved.get().unwrap();
        let refused = handle.call(|agent, now| agent.renew_auth(now));
        (declared, snapshot, refused)
    });
    while !asked.is_finished() {
        let _ = driver.step();
    }
    let (declared, snapshot, refused) = asked.join().unwrap();
    assert_eq!(declared, Ok(1));
    assert_eq!(snapshot, driver.agent().snapshot());
    assert!(matches!(
        refused,
        Err(smart_agent::driver::CommandError::Rejected(
            smart_agent::Error::RenewAuthNotAllowed
        ))
    ));
}
