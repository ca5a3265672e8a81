//! The catch-up: every deadline that fell due since the last invocation, each at its own time —
//! in bounded time however far `--now` jumps.
//!
//! While the manager is unreachable, nothing changes between two identical failures: the same
//! request fails the same way at the same interval (the backoff is saturated, or the retry
//! period fixed), and only a threshold of another kind (an evaluation warning, a lapse, a
//! deadline) or another request ends the run. So once two steps in a row are the same
//! failures at the same interval `d`, the catch-up jumps: it finds the furthest grid point
//! `t + k·d` (not past `--now`) at which one step does exactly the same again and nothing
//! else — trying it on a copy of the agent restored from its snapshot, with the same failure
//! replayed, in a binary search — and takes that one step for real. The skipped occurrences
//! are counted on the event, not replayed: the log shows one line with the count. The result
//! is what stepping would reach (same status, same deadlines); only the snapshot's count of
//! consecutive failures, which drives a backoff already at its cap, counts the run as one.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};
use smart_agent::driver::{Driver, DriverError, ManualClock, MemoryStore};
use smart_agent::transport::Transport;
use smart_agent::{Config, Event, SendError, TimerReason, TransportSettings};

/// A transport that remembers how each send ended, so that the catch-up knows when steps
/// failed identically and with what.
pub struct Recording {
    inner: Box<dyn Transport>,
    sends: Arc<Mutex<Vec<Option<SendError>>>>,
}

impl Recording {
    pub fn new(inner: Box<dyn Transport>) -> (Recording, Arc<Mutex<Vec<Option<SendError>>>>) {
        let sends = Arc::new(Mutex::new(Vec::new()));
        (
            Recording {
                inner,
                sends: sends.clone(),
            },
            sends,
        )
    }
}

impl Transport for Recording {
    fn send(&mut self, settings: &TransportSettings, body: &[u8]) -> Result<Vec<u8>, SendError> {
        let result = self.inner.send(settings, body);
        self.sends
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(result.as_ref().err().cloned());
        result
    }
}

/// The same failure, every time: what a copy of the agent is tried against.
struct Replay(SendError);

impl Transport for Replay {
    fn send(&mut self, _: &TransportSettings, _: &[u8]) -> Result<Vec<u8>, SendError> {
        Err(self.0.clone())
    }
}

/// What one step did, time aside.
#[derive(Clone, PartialEq, Eq)]
struct Step {
    at: DateTime<Utc>,
    reason: TimerReason,
    /// Each event's text and alarm.
    events: Vec<(String, Option<&'static str>)>,
    /// Every send failed, with these failures (empty: nothing was sent).
    failures: Vec<SendError>,
}

impl Step {
    fn same_as(&self, other: &Step) -> bool {
        self.reason == other.reason
            && self.events == other.events
            && self.failures == other.failures
    }
}

fn signature(events: &[Event]) -> Vec<(String, Option<&'static str>)> {
    events
        .iter()
        .map(|e| (e.kind.to_string(), e.alarm().map(|a| a.name())))
        .collect()
}

/// What the catch-up works on: the session's driver, clock, transport record and event sink,
/// and a way to build the agent's configuration again for a copy.
pub struct Parts<'a> {
    pub driver: &'a mut Driver,
    pub clock: &'a ManualClock,
    pub sends: &'a Arc<Mutex<Vec<Option<SendError>>>>,
    pub events: &'a Arc<Mutex<Vec<Event>>>,
    /// How many occurrences each event stands for (index into `events`), when more than one.
    pub repeats: &'a mut Vec<(usize, u64)>,
    pub config: &'a dyn Fn() -> Config,
}

impl Parts<'_> {
    fn event_count(&self) -> usize {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn events_since(&self, start: usize) -> Vec<Event> {
        self.events.lock().unwrap_or_else(|p| p.into_inner())[start..].to_vec()
    }

    fn take_sends(&self) -> Vec<Option<SendError>> {
        std::mem::take(&mut *self.sends.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// One pass of the driver at `t` (a single tick, whatever fell due before).
    fn step_at(&mut self, t: DateTime<Utc>) -> Result<(), DriverError> {
        self.clock.set(t);
        self.driver.step().map(|_| ())
    }

    /// Whether one step at `t` on a copy of the agent, with `failure` replayed, does exactly
    /// what `step` did (the same events, at `t`) and nothing else.
    fn probe(&self, t: DateTime<Utc>, step: &Step, failure: &SendError) -> bool {
        let mut store = MemoryStore::default();
        if smart_agent::driver::SnapshotStore::save(&mut store, &self.driver.agent().snapshot())
            .is_err()
        {
            return false;
        }
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let clock = ManualClock::new(t);
        let Ok(copy) = Driver::open(
            (self.config)(),
            Replay(failure.clone()),
            clock.clone(),
            store,
        ) else {
            return false;
        };
        let mut copy =
            copy.on_event(move |e| sink.lock().unwrap_or_else(|p| p.into_inner()).push(e));
        if copy.step().is_err() {
            return false;
        }
        let seen = seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.iter().all(|e| e.at == t) && signature(&seen) == step.events
    }
}

/// Processes every deadline up to `until`, collapsing runs of identical failures.
pub fn run(p: &mut Parts<'_>, until: DateTime<Utc>) -> Result<(), DriverError> {
    let mut previous: Option<Step> = None;
    while let Some((at, reason)) = p
        .driver
        .agent()
        .poll_timeout()
        .filter(|(at, _)| *at <= until)
    {
        let start = p.event_count();
        p.take_sends();
        p.driver.advance_to(at)?;
        let sends = p.take_sends();
        let events = p.events_since(start);
        if p.driver.agent().poll_timeout() == Some((at, reason)) {
            // Nothing moved (a retry saturated at the last storable second): the rest waits.
            break;
        }
        let step = Step {
            at,
            reason,
            events: signature(&events),
            failures: sends.iter().flatten().cloned().collect(),
        };
        let all_failed = !sends.is_empty() && sends.iter().all(Option::is_some);
        let periodic = match &previous {
            Some(prev) if all_failed && !step.events.is_empty() && prev.same_as(&step) => {
                let d = at - prev.at;
                let next = p.driver.agent().poll_timeout();
                (d > TimeDelta::zero() && next == Some((at + d, reason))).then_some(d)
            }
            _ => None,
        };
        if let Some(d) = periodic {
            if let Some(k) = longest_jump(p, &step, d, until) {
                let target = grid(at, d, k, until);
                let start = p.event_count();
                p.step_at(target)?;
                let count = p.event_count();
                // The step at `target` stands for itself and the k - 1 it skipped.
                p.repeats.extend((start..count).map(|i| (i, k)));
                previous = Some(Step { at: target, ..step });
                continue;
            }
        }
        previous = Some(step);
    }
    p.driver.advance_to(until)
}

/// The largest `k` (at least 2) such that one step at `step.at + k·d` (not past `until`) does
/// exactly what `step` did; `None` if there is none.
fn longest_jump(p: &Parts<'_>, step: &Step, d: TimeDelta, until: DateTime<Utc>) -> Option<u64> {
    let failure = step.failures.first()?;
    let span = (until - step.at).num_seconds();
    let period = d.num_seconds();
    if period <= 0 {
        return None;
    }
    // At most i32::MAX periods per jump (TimeDelta * i32); a longer run jumps again.
    let k_max = u64::try_from(span / period).ok()?.min(i32::MAX as u64);
    if k_max < 2 {
        return None;
    }
    let at = |k: u64| grid(step.at, d, k, until);
    if p.probe(at(k_max), step, failure) {
        return Some(k_max);
    }
    // probe(lo) holds (lo = 0: nothing to do), probe(hi) does not.
    let (mut lo, mut hi) = (0u64, k_max);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if p.probe(at(mid), step, failure) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (lo >= 2).then_some(lo)
}

/// `from + k·d`, never past `until` (k is chosen so that it is not).
fn grid(from: DateTime<Utc>, d: TimeDelta, k: u64, until: DateTime<Utc>) -> DateTime<Utc> {
    i32::try_from(k)
        .ok()
        .and_then(|k| d.checked_mul(k))
        .and_then(|span| from.checked_add_signed(span))
        .map_or(until, |t| t.min(until))
}
