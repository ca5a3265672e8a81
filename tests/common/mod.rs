//! Virtual-time harness: one agent, one in-process reference manager, a link that can fail,
//! and a clock that jumps from deadline to deadline.
#![allow(dead_code)]

mod scenario;
pub use scenario::Scenario;

use chrono::{DateTime, TimeDelta, Utc};
use smart_agent::manager::{Manager, TokenOptions, VirtualAccountId};
use smart_agent::wire::RequestKind;
use smart_agent::{
    Agent, Config, DeterministicRandom, Environment, Event, EventKind, Force, SendError, Status,
    Tag, Udi,
};

// The Unified CM tags of seed 002 (lines 62-67), as the reference manager's catalogue names them.
#[allow(unused_imports)] // each test binary uses some of them
pub use smart_agent::manager::catalogue::{
    UCM_BASIC as BASIC, UCM_CUWL as CUWL, UCM_ENHANCED as ENHANCED,
    UCM_ENHANCED_PLUS as ENHANCED_PLUS, UCM_ESSENTIAL as ESSENTIAL,
    UCM_TELEPRESENCE_ROOM as TP_ROOM,
};
pub const UDI: &str = "PID:UCM,SN:37624,UUID:6fe83addc80240bc92dc071ac7a37624";

/// 2027-01-04 10:00:00 UTC, the start of every scenario.
pub fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_799_056_800, 0).unwrap()
}

pub fn days(n: i64) -> TimeDelta {
    TimeDelta::days(n)
}

pub fn hours(n: i64) -> TimeDelta {
    TimeDelta::hours(n)
}

pub fn minutes(n: i64) -> TimeDelta {
    TimeDelta::minutes(n)
}

pub fn tag(s: &str) -> Tag {
    Tag::parse(s).unwrap()
}

/// What happens to a request on its way.
#[derive(Clone, Debug)]
pub enum Link {
    /// Delivered; the manager answers.
    Up,
    /// Not delivered; the transport reports this error.
    Down(SendError),
    /// Delivered and processed, but the answer is lost (reported as a timeout).
    LoseAnswer,
}

pub fn refused() -> SendError {
    SendError::Send {
        detail: "connection refused".into(),
    }
}

pub fn config(udi: &str, anchors: Vec<smart_agent::TrustAnchor>, seed: u64) -> Config {
    Config::new(
        udi.parse::<Udi>().unwrap(),
        Environment::Production,
        anchors,
    )
    .with_random(Box::new(DeterministicRandom::new(seed)))
}

pub struct Sim {
    pub now: DateTime<Utc>,
    pub agent: Agent,
    pub manager: Manager,
    pub link: Link,
    /// Added to `now` for the manager's clock.
    pub manager_offset: TimeDelta,
    /// Every event the agent raised, in order.
    pub transcript: Vec<Event>,
    /// Every request body the manager received.
    pub received: Vec<Vec<u8>>,
    /// Every transmission attempt: when and what.
    pub attempts: Vec<(DateTime<Utc>, RequestKind)>,
}

impl Sim {
    pub fn new() -> Sim {
        let manager = Manager::new(
            Environment::Production,
            Box::new(DeterministicRandom::new(1)),
        )
        .unwrap();
        let agent = Agent::new(config(UDI, manager.trust_anchors(), 2), t0()).unwrap();
        Sim::with(agent, manager)
    }

    /// A sim whose agent also trusts `extra` anchors.
    pub fn with_extra_anchors(extra: Vec<smart_agent::TrustAnchor>) -> Sim {
        let manager = Manager::new(
            Environment::Production,
            Box::new(DeterministicRandom::new(1)),
        )
        .unwrap();
        let mut anchors = manager.trust_anchors();
        anchors.extend(extra);
        let agent = Agent::new(config(UDI, anchors, 2), t0()).unwrap();
        Sim::with(agent, manager)
    }

    pub fn with(agent: Agent, manager: Manager) -> Sim {
        Sim {
            now: t0(),
            agent,
            manager,
            link: Link::Up,
            manager_offset: TimeDelta::zero(),
            transcript: Vec::new(),
            received: Vec::new(),
            attempts: Vec::new(),
        }
    }

    pub fn va(&self) -> VirtualAccountId {
        self.manager.default_virtual_account()
    }

    pub fn pool(&mut self, tag_text: &str, count: u32) {
        let va = self.va();
        self.manager
            .add_licenses(&va, &tag(tag_text), count, None, None)
            .unwrap();
    }

    pub fn token(&mut self) -> String {
        self.token_with(TokenOptions::default())
    }

    pub fn token_with(&mut self, options: TokenOptions) -> String {
        let va = self.va();
        self.manager
            .create_token(&va, options, self.now)
            .unwrap()
            .expose()
            .to_string()
    }

    pub fn declare_use(&mut self, tag_text: &str, count: u32) {
        self.agent.declare(tag(tag_text), self.now);
        self.agent
            .set_usage(&tag(tag_text), count, self.now)
            .unwrap();
        self.pump();
    }

    pub fn register(&mut self, token: &str) {
        self.agent.register(token, Force::No, self.now).unwrap();
        self.pump();
    }

    /// Sends everything due now and feeds the answers back; collects events.
    pub fn pump(&mut self) {
        for _ in 0..100 {
            let Some(tx) = self.agent.poll_transmit(self.now) else {
                self.drain();
                return;
            };
            self.attempts.push((self.now, tx.kind));
            let result = match &self.link {
                Link::Up => {
                    self.received.push(tx.body.clone());
                    Ok(self
                        .manager
                        .handle(&tx.body, self.now + self.manager_offset))
                }
                Link::LoseAnswer => {
                    self.received.push(tx.body.clone());
                    let _lost = self
                        .manager
                        .handle(&tx.body, self.now + self.manager_offset);
                    Err(SendError::Timeout)
                }
                Link::Down(e) => Err(e.clone()),
            };
            self.agent.handle_response(tx.id, result, self.now);
            self.drain();
        }
        panic!("the agent kept transmitting at {}", self.now);
    }

    fn drain(&mut self) {
        while let Some(e) = self.agent.poll_event() {
            self.transcript.push(e);
        }
    }

    /// Processes every deadline up to `until`, each at its own time, then moves to `until`.
    pub fn run_until(&mut self, until: DateTime<Utc>) {
        self.pump();
        for _ in 0..100_000 {
            match self.agent.poll_timeout() {
                Some((at, _)) if at <= until => {
                    self.now = self.now.max(at);
                    self.agent.handle_timeout(self.now);
                    self.pump();
                }
                _ => {
                    self.now = self.now.max(until);
                    self.agent.handle_timeout(self.now);
                    self.pump();
                    return;
                }
            }
        }
        panic!("deadlines never stopped before {until}");
    }

    pub fn advance(&mut self, by: TimeDelta) {
        let until = self.now + by;
        self.run_until(until);
    }

    pub fn status(&self) -> Status {
        self.agent.status(self.now)
    }

    /// Takes the transcript gathered so far.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.transcript)
    }

    /// Attempts of one kind at or after `from`, as offsets from `from`.
    pub fn attempts_of(&self, kind: RequestKind, from: DateTime<Utc>) -> Vec<TimeDelta> {
        self.attempts
            .iter()
            .filter(|(at, k)| *k == kind && *at >= from)
            .map(|(at, _)| *at - from)
            .collect()
    }
}

/// A sim registered and authorized for 5 Enhanced out of a pool of 10, events taken.
pub fn registered() -> Sim {
    let sim = Scenario::new()
        .pool(ENHANCED, 10)
        .usage(ENHANCED, 5)
        .registered();
    assert_eq!(
        sim.status().authorization.state,
        smart_agent::AuthorizationState::Authorized
    );
    sim
}

/// The variant name of an event kind, e.g. `Registered`.
pub fn name(kind: &EventKind) -> String {
    let debug = format!("{kind:?}");
    debug
        .split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or_default()
        .to_string()
}

/// `(offset from origin, variant name)` for each event.
pub fn transcript(events: &[Event], origin: DateTime<Utc>) -> Vec<(TimeDelta, String)> {
    events
        .iter()
        .map(|e| (e.at - origin, name(&e.kind)))
        .collect()
}

/// Just the variant names.
pub fn names(events: &[Event]) -> Vec<String> {
    events.iter().map(|e| name(&e.kind)).collect()
}
