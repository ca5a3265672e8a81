//! Where wall time comes from, for the loops that drive an agent: the [`Driver`](crate::driver),
//! the CLI harness and the fleet simulation. The agent itself never
//! reads a clock; it is given `now` on every call.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};

/// Where the Driver gets the wall time.
pub trait Clock: Send {
    /// The current wall time.
    fn now(&self) -> DateTime<Utc>;

    /// Called by `Driver::advance_to` before it processes each instant in virtual time. A
    /// settable clock moves there, so that whatever shares it (an in-process manager) sees the
    /// same time; the system clock ignores it.
    fn follow(&self, _t: DateTime<Utc>) {}
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::<Utc>::from(std::time::SystemTime::now())
    }
}

/// A clock set by hand, for tests and simulations; clones share the same time.
#[derive(Clone, Debug)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    /// A clock showing `t`.
    pub fn new(t: DateTime<Utc>) -> Self {
        ManualClock(Arc::new(Mutex::new(t)))
    }

    /// Sets the time.
    pub fn set(&self, t: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = t;
    }

    /// Moves the time by `d`.
    pub fn advance(&self, d: TimeDelta) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *t = crate::time::later(*t, d);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn follow(&self, t: DateTime<Utc>) {
        self.set(t);
    }
}
