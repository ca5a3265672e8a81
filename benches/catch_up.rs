//! The license harness's catch-up (issue 9 item 5), in process: the harness's own catch-up
//! code (`examples/license/catchup.rs`) driving a real Driver and agent against the in-process
//! reference manager, at the jumps the issue names.
//!
//! ```text
//! cargo bench --bench catch_up --features manager
//! ```
//!
//! - `offline/registered/7000y`: registered, the manager unreachable from the next day,
//!   `--now` 7000 years on (the identity lapses within the year; about 530 failures).
//! - `offline/pending/7000y`: a registration pending while the manager is unreachable: a
//!   retry every 15 minutes, 245 million of them, collapsed into a few steps and counts.
//! - `reachable/10y`: registered and reachable: the renewals themselves (about 13 a year,
//!   each a signed request and a signed answer).
//!
//! Each measures the catch-up alone (the setup is outside the measurement); the harness adds
//! process start-up and reading and writing the state directory (a few milliseconds).

#[path = "../examples/license/catchup.rs"]
#[allow(dead_code)]
mod catchup;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Datelike, Utc};
use criterion::Criterion;
use smart_agent::driver::{Clock, Driver, ManualClock, MemoryStore};
use smart_agent::manager::{catalogue, Manager, TokenOptions};
use smart_agent::transport::Transport;
use smart_agent::{
    Config, Environment, Event, Force, SendError, SystemRandom, Tag, TransportSettings, Udi,
};

/// The embedded manager's transport, as the harness has it.
#[derive(Clone)]
struct Loopback {
    manager: Arc<Mutex<Manager>>,
    offline: Arc<AtomicBool>,
    clock: ManualClock,
}

impl Transport for Loopback {
    fn send(&mut self, _: &TransportSettings, body: &[u8]) -> Result<Vec<u8>, SendError> {
        if self.offline.load(Ordering::SeqCst) {
            return Err(SendError::Send {
                detail: "connection refused (the embedded manager is offline)".into(),
            });
        }
        let now = self.clock.now();
        Ok(self.manager.lock().unwrap().handle(body, now))
    }
}

/// A driver as the harness sets one up, and what its catch-up needs.
struct Setup {
    driver: Driver,
    clock: ManualClock,
    sends: Arc<Mutex<Vec<Option<SendError>>>>,
    events: Arc<Mutex<Vec<Event>>>,
    config: Box<dyn Fn() -> Config>,
    offline: Arc<AtomicBool>,
}

fn t0() -> DateTime<Utc> {
    "2027-01-04T10:00:00Z".parse().unwrap()
}

fn years_on(t: DateTime<Utc>, years: i32) -> DateTime<Utc> {
    t.with_year(t.year() + years).unwrap()
}

/// Declared, in use, and registered (or pending, with `register_offline`) at t0.
fn setup(register_offline: bool) -> Setup {
    let mut manager =
        Manager::new(Environment::Development, Box::new(SystemRandom::new())).unwrap();
    let tag = Tag::parse(catalogue::UCM_ENHANCED).unwrap();
    let va = manager.default_virtual_account();
    manager.add_licenses(&va, &tag, 10, None, None).unwrap();
    let token = manager
        .create_token(&va, TokenOptions::default(), t0())
        .unwrap();
    let anchors = manager.trust_anchors();
    let udi: Udi = "PID:UCM,SN:37624,UUID:6fe83addc80240bc92dc071ac7a37624"
        .parse()
        .unwrap();
    let config = {
        let (udi, anchors) = (udi.clone(), anchors.clone());
        move || Config::new(udi.clone(), Environment::Development, anchors.clone())
    };
    let clock = ManualClock::new(t0());
    let offline = Arc::new(AtomicBool::new(register_offline));
    let loopback = Loopback {
        manager: Arc::new(Mutex::new(manager)),
        offline: offline.clone(),
        clock: clock.clone(),
    };
    let (transport, sends) = catchup::Recording::new(Box::new(loopback));
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let mut driver = Driver::open(config(), transport, clock.clone(), MemoryStore::default())
        .unwrap()
        .on_event(move |e| sink.lock().unwrap().push(e));
    driver.agent_mut().declare(tag.clone(), t0());
    driver.agent_mut().set_usage(&tag, 1, t0()).unwrap();
    driver
        .agent_mut()
        .register(token.expose(), Force::No, t0())
        .unwrap();
    driver.advance_to(t0()).unwrap();
    Setup {
        driver,
        clock,
        sends,
        events,
        config: Box::new(config),
        offline,
    }
}

/// The harness's catch-up to `until`; returns how many events it raised.
fn catch_up(s: &mut Setup, until: DateTime<Utc>) -> usize {
    let mut repeats = Vec::new();
    let mut parts = catchup::Parts {
        driver: &mut s.driver,
        clock: &s.clock,
        sends: &s.sends,
        events: &s.events,
        repeats: &mut repeats,
        config: &*s.config,
    };
    catchup::run(&mut parts, until).unwrap();
    s.events.lock().unwrap().len()
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .configure_from_args();
    let mut group = c.benchmark_group("catch_up");
    group.bench_function("offline/registered/7000y", |b| {
        b.iter_batched(
            || {
                let s = setup(false);
                s.offline.store(true, Ordering::SeqCst);
                s
            },
            |mut s| catch_up(&mut s, years_on(t0(), 7000)),
            criterion::BatchSize::LargeInput,
        )
    });
    group.bench_function("offline/pending/7000y", |b| {
        b.iter_batched(
            || setup(true),
            |mut s| catch_up(&mut s, years_on(t0(), 7000)),
            criterion::BatchSize::LargeInput,
        )
    });
    group.bench_function("reachable/10y", |b| {
        b.iter_batched(
            || setup(false),
            |mut s| catch_up(&mut s, years_on(t0(), 10)),
            criterion::BatchSize::LargeInput,
        )
    });
    group.finish();
    c.final_summary();
}
