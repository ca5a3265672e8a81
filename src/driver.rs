//! A ready blocking loop for products that do not want to write their own (DESIGN "Shape"):
//! it owns an [`Agent`], a [`Transport`], a [`Clock`] and a [`SnapshotStore`], runs due timers,
//! sends what the agent polls, feeds the answers back and persists after every step that
//! changes the snapshot (before a request goes out, so a crash re-sends it).
//!
//! Other threads talk to it through a cloneable [`DriverHandle`], which wakes the loop. A
//! product's usage recount can be plugged in with [`Driver::with_usage`]; it is called at the
//! first step and then every period (24 h by default, Unified CM's cadence, 003:219).
//!
//! Handle methods block until the loop has applied the command; do not call them from inside
//! the loop's own callbacks.

use std::collections::VecDeque;
use std::io;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::agent::{Agent, Config, ConfigError, Event, Force, RestoreError};
pub use crate::clock::{Clock, ManualClock, SystemClock};
use crate::entitlement::Tag;
use crate::error::Error;
use crate::settings::{HostIdentity, TransportSettings};
use crate::status::Status;
pub use crate::store::{MemoryStore, SnapshotStore};
use crate::transport::Transport;
use crate::wire::{SendError, SendFailure};

/// Why the Driver could not go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    /// The snapshot could not be saved or loaded. The agent's state in memory is consistent;
    /// the next step tries to save again.
    #[error("snapshot store: {0}")]
    Store(#[from] io::Error),
    /// The stored snapshot could not be restored.
    #[error(transparent)]
    Restore(#[from] RestoreError),
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Why a command sent through a [`DriverHandle`] did not take effect.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The agent refused it (the product message and REST code are in the [`Error`]).
    #[error(transparent)]
    Rejected(#[from] Error),
    /// The agent accepted it but the snapshot could not be saved: it holds in memory and is
    /// saved with the next step that can, but a crash before then would lose it.
    #[error("applied but not saved: {0}")]
    NotSaved(String),
    /// The Driver has stopped (or is not being run).
    #[error("the licensing driver has stopped")]
    Stopped,
}

/// A command to run on the loop's agent at the loop's time; it returns the acknowledgement to
/// send once the step that follows has saved (or failed to save) the snapshot.
type Job = Box<dyn FnOnce(&mut Agent, DateTime<Utc>) -> Ack + Send>;
/// Answers the caller; given why the snapshot was not saved, if it was not.
type Ack = Box<dyn FnOnce(Option<&str>) + Send>;

enum Message {
    /// Dropped unanswered when the Driver has stopped: the caller then sees `Stopped`.
    Command(Job),
    Status(Sender<Status>),
    Shutdown(Sender<()>),
}

/// A cloneable, `Send` handle to a running [`Driver`]. Its calls are served by
/// [`Driver::run`] (or by whoever calls [`Driver::step`]); each returns once the command is
/// applied and saved.
#[derive(Clone, Debug)]
pub struct DriverHandle {
    tx: Sender<Message>,
}

impl DriverHandle {
    /// Runs `command` on the loop's agent at the loop's time and returns its value once the
    /// snapshot holding its effect is saved: the one path every command takes, so a command
    /// that returns something (a reservation request code, say) needs no plumbing of its own.
    ///
    /// ```no_run
    /// # fn demo(handle: &smart_agent::driver::DriverHandle) -> Result<(), smart_agent::driver::CommandError> {
    /// let state = handle.call(|agent, now| Ok(agent.status(now).registration.state))?;
    /// # let _ = state; Ok(()) }
    /// ```
    pub fn call<T: Send + 'static>(
        &self,
        command: impl FnOnce(&mut Agent, DateTime<Utc>) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, CommandError> {
        let (reply, answer) = mpsc::channel();
        let job: Job = Box::new(move |agent, now| {
            let result = command(agent, now);
            Box::new(move |not_saved: Option<&str>| {
                let answer = match (result, not_saved) {
                    (Err(e), _) => Err(CommandError::Rejected(e)),
                    (Ok(_), Some(why)) => Err(CommandError::NotSaved(why.to_string())),
                    (Ok(value), None) => Ok(value),
                };
                let _ = reply.send(answer);
            })
        });
        self.tx
            .send(Message::Command(job))
            .map_err(|_| CommandError::Stopped)?;
        answer.recv().map_err(|_| CommandError::Stopped)?
    }

    /// [`Agent::declare`].
    pub fn declare(&self, tag: Tag) -> Result<(), CommandError> {
        self.call(move |agent, now| {
            agent.declare(tag, now);
            Ok(())
        })
    }
    /// [`Agent::set_usage`].
    pub fn set_usage(&self, tag: Tag, count: u32) -> Result<(), CommandError> {
        self.call(move |agent, now| agent.set_usage(&tag, count, now))
    }
    /// [`Agent::register`].
    pub fn register(&self, token: &str, force: Force) -> Result<(), CommandError> {
        let token = token.to_string();
        self.call(move |agent, now| agent.register(&token, force, now))
    }
    /// [`Agent::renew_id`].
    pub fn renew_id(&self) -> Result<(), CommandError> {
        self.call(|agent, now| agent.renew_id(now))
    }
    /// [`Agent::renew_auth`].
    pub fn renew_auth(&self) -> Result<(), CommandError> {
        self.call(|agent, now| agent.renew_auth(now))
    }
    /// [`Agent::deregister`].
    pub fn deregister(&self) -> Result<(), CommandError> {
        self.call(|agent, now| agent.deregister(now))
    }
    /// [`Agent::set_transport`].
    pub fn set_transport(&self, settings: TransportSettings) -> Result<(), CommandError> {
        self.call(move |agent, now| agent.set_transport(settings, now))
    }
    /// [`Agent::set_privacy`].
    pub fn set_privacy(&self, on: bool) -> Result<(), CommandError> {
        self.call(move |agent, now| {
            agent.set_privacy(on, now);
            Ok(())
        })
    }
    /// [`Agent::set_host`].
    pub fn set_host(&self, host: HostIdentity) -> Result<(), CommandError> {
        self.call(move |agent, now| {
            agent.set_host(host, now);
            Ok(())
        })
    }
    /// [`Agent::set_subscriber`].
    pub fn set_subscriber(&self, on: bool) -> Result<(), CommandError> {
        self.call(move |agent, now| {
            agent.set_subscriber(on, now);
            Ok(())
        })
    }

    /// The agent's status after the loop's next step (so it reflects the commands sent
    /// before it and the exchanges they caused).
    pub fn status(&self) -> Result<Status, CommandError> {
        let (reply, answer) = mpsc::channel();
        self.tx
            .send(Message::Status(reply))
            .map_err(|_| CommandError::Stopped)?;
        answer.recv().map_err(|_| CommandError::Stopped)
    }

    /// Stops [`Driver::run`] after it has saved the snapshot; returns when it has. Calls
    /// made after it answer [`CommandError::Stopped`].
    pub fn shutdown(&self) -> Result<(), CommandError> {
        let (reply, answer) = mpsc::channel();
        self.tx
            .send(Message::Shutdown(reply))
            .map_err(|_| CommandError::Stopped)?;
        answer.recv().map_err(|_| CommandError::Stopped)
    }
}

type UsageSource = Box<dyn FnMut() -> Vec<(Tag, u32)> + Send>;
type EventSink = Box<dyn FnMut(Event) + Send>;
type ErrorSink = Box<dyn FnMut(&DriverError) + Send>;

/// The usage recount period of [`Driver::with_usage`] (Unified CM, 003:219).
pub const DEFAULT_USAGE_PERIOD: TimeDelta = TimeDelta::hours(24);
/// How soon [`Driver::run`] tries again after the snapshot store failed.
const STORE_RETRY: Duration = Duration::from_secs(10);

/// How many events are kept for [`Driver::take_events`] when no callback is set.
const KEPT_EVENTS: usize = 1000;
/// The longest the loop sleeps without a deadline.
const MAX_WAIT: Duration = Duration::from_secs(3600);

/// The blocking run loop. See the crate docs for an example.
pub struct Driver {
    agent: Agent,
    transport: Box<dyn Transport>,
    clock: Box<dyn Clock>,
    store: Box<dyn SnapshotStore>,
    saved: Vec<u8>,
    usage: Option<UsageSource>,
    usage_period: TimeDelta,
    next_usage: Option<DateTime<Utc>>,
    on_event: Option<EventSink>,
    kept_events: VecDeque<Event>,
    inbox: Receiver<Message>,
    outbox: Sender<Message>,
    /// Commands applied but not yet answered: answered once the step has saved them.
    acks: Vec<Ack>,
    /// Status queries, answered after the step that follows them.
    queries: Vec<Sender<Status>>,
    stopping: Vec<Sender<()>>,
    stopped: bool,
    on_error: Option<ErrorSink>,
}

impl Driver {
    /// Restores the agent from `store`, or starts a new one if the store is empty.
    pub fn open(
        config: Config,
        transport: impl Transport + 'static,
        clock: impl Clock + 'static,
        mut store: impl SnapshotStore + 'static,
    ) -> Result<Driver, DriverError> {
        let now = clock.now();
        let saved = store.load()?;
        let agent = match &saved {
            Some(bytes) => Agent::restore(bytes, config, now)?,
            None => Agent::new(config, now)?,
        };
        let (outbox, inbox) = mpsc::channel();
        let mut driver = Driver {
            agent,
            transport: Box::new(transport),
            clock: Box::new(clock),
            store: Box::new(store),
            saved: saved.unwrap_or_default(),
            usage: None,
            usage_period: DEFAULT_USAGE_PERIOD,
            next_usage: None,
            on_event: None,
            kept_events: VecDeque::new(),
            inbox,
            outbox,
            acks: Vec::new(),
            queries: Vec::new(),
            stopping: Vec::new(),
            stopped: false,
            on_error: None,
        };
        driver.persist()?;
        Ok(driver)
    }

    /// Calls `source` for the product's full recount at the first step and then every
    /// [`DEFAULT_USAGE_PERIOD`] (24 h; change it with [`Driver::usage_period`]); tags it names
    /// are declared and set, declared tags it leaves out are set to 0.
    pub fn with_usage(mut self, source: impl FnMut() -> Vec<(Tag, u32)> + Send + 'static) -> Self {
        self.usage = Some(Box::new(source));
        self.next_usage = Some(self.clock.now());
        self
    }

    /// The product's recount period (Expressway: 6 h, 004:237); at least one second.
    pub fn usage_period(mut self, period: TimeDelta) -> Self {
        self.usage_period = period.max(TimeDelta::seconds(1));
        self
    }

    /// Reports errors [`Driver::run`] keeps going through (a snapshot store that fails is
    /// retried every 10 s); without it they are dropped.
    pub fn on_error(mut self, sink: impl FnMut(&DriverError) + Send + 'static) -> Self {
        self.on_error = Some(Box::new(sink));
        self
    }

    /// Delivers every event to `sink` (alarms are `event.alarm()`); without it the Driver keeps
    /// the last 1000 for [`Driver::take_events`].
    pub fn on_event(mut self, sink: impl FnMut(Event) + Send + 'static) -> Self {
        self.on_event = Some(Box::new(sink));
        self
    }

    /// A handle for other threads.
    pub fn handle(&self) -> DriverHandle {
        DriverHandle {
            tx: self.outbox.clone(),
        }
    }

    /// The agent, for reads (status, settings).
    pub fn agent(&self) -> &Agent {
        &self.agent
    }

    /// The agent, for commands from the loop's own thread; call [`Driver::step`] (or
    /// [`Driver::advance_to`]) afterwards to send what they queued and to persist.
    pub fn agent_mut(&mut self) -> &mut Agent {
        &mut self.agent
    }

    /// The events kept since the last call (only when no [`Driver::on_event`] sink is set).
    pub fn take_events(&mut self) -> Vec<Event> {
        self.kept_events.drain(..).collect()
    }

    /// One pass at the clock's time: pending commands, the usage recount if due, due timers,
    /// every due request and its answer; persists whenever the snapshot changed, then answers
    /// the commands and queries it took. Returns when the next step is due.
    pub fn step(&mut self) -> Result<Option<DateTime<Utc>>, DriverError> {
        while let Ok(message) = self.inbox.try_recv() {
            let now = self.clock.now();
            self.apply(message, now);
        }
        let now = self.clock.now();
        let ticked = self.tick(now, false);
        let saved = ticked.as_ref().err().map(|e| e.to_string());
        // Commands are answered once saved (or told they were not).
        for ack in self.acks.drain(..) {
            ack(saved.as_deref());
        }
        // Queries see everything the step did.
        for reply in self.queries.drain(..) {
            let _ = reply.send(self.agent.status(now));
        }
        if !self.stopping.is_empty() && saved.is_none() {
            self.stopped = true;
            for done in self.stopping.drain(..) {
                let _ = done.send(());
            }
        }
        ticked?;
        Ok(self.next_wake())
    }

    /// Runs until [`DriverHandle::shutdown`], sleeping until the next deadline or command.
    /// A failing snapshot store does not stop it: the error goes to [`Driver::on_error`] and
    /// the step is retried every 10 s (commands meanwhile answer [`CommandError::NotSaved`]).
    pub fn run(&mut self) -> Result<(), DriverError> {
        loop {
            let wait = match self.step() {
                Ok(next) => next
                    .map(|at| (at - self.clock.now()).to_std().unwrap_or(Duration::ZERO))
                    .unwrap_or(MAX_WAIT)
                    .min(MAX_WAIT),
                Err(e @ DriverError::Store(_)) => {
                    if let Some(sink) = self.on_error.as_mut() {
                        sink(&e);
                    }
                    STORE_RETRY
                }
                Err(e) => return Err(e),
            };
            if self.stopped {
                // Whatever arrived after the shutdown is answered, never left waiting.
                while let Ok(message) = self.inbox.try_recv() {
                    match message {
                        // Dropping the job drops its reply: the caller sees `Stopped`.
                        Message::Command(_) => {}
                        Message::Status(_) => {}
                        Message::Shutdown(done) => {
                            let _ = done.send(());
                        }
                    }
                }
                self.stopped = false;
                return Ok(());
            }
            match self.inbox.recv_timeout(wait) {
                Ok(message) => {
                    let now = self.clock.now();
                    self.apply(message, now);
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {}
            }
        }
    }

    /// Virtual-time catch-up: processes every deadline up to `until`, each at its own time
    /// (answers are fed back at that time too), then `until` itself. The clock is not read;
    /// it is told to [`Clock::follow`].
    pub fn advance_to(&mut self, until: DateTime<Utc>) -> Result<(), DriverError> {
        while let Some(at) = self.next_wake().filter(|at| *at <= until) {
            self.tick(at, true)?;
            if self.next_wake() == Some(at) {
                break; // nothing moved: the rest waits for `until`
            }
        }
        self.tick(until, true)
    }

    fn apply(&mut self, message: Message, now: DateTime<Utc>) {
        match message {
            Message::Command(job) => {
                let ack = job(&mut self.agent, now);
                self.acks.push(ack);
            }
            Message::Status(reply) => self.queries.push(reply),
            Message::Shutdown(done) => self.stopping.push(done),
        }
    }

    /// Everything due at `t`. With `virtual_time`, answers are fed back at `t`; otherwise at
    /// the clock's time after the transport returned. Each change is saved before the product
    /// hears of it, and a request is sent only once it is saved.
    fn tick(&mut self, t: DateTime<Utc>, virtual_time: bool) -> Result<(), DriverError> {
        if virtual_time {
            self.clock.follow(t);
        }
        if self.next_usage.is_none_or(|at| at <= t) {
            self.recount(t);
        }
        self.agent.handle_timeout(t);
        while let Some(tx) = self.agent.poll_transmit(t) {
            if let Err(e) = self.persist() {
                // Not on disk, so not sent: a crash now must not leave the manager with a
                // request (a device key, a usage report) that the product forgot.
                let failure = SendError::from(SendFailure::NotSaved);
                self.agent.handle_response(tx.id, Err(failure), t);
                let _ = self.persist();
                self.deliver_events();
                return Err(e);
            }
            let settings = self.agent.transport_settings().clone();
            let result = self.transport.send(&settings, &tx.body);
            let answered = if virtual_time { t } else { self.clock.now() };
            self.agent.handle_response(tx.id, result, answered);
            let saved = self.persist();
            self.deliver_events();
            saved?;
        }
        let saved = self.persist();
        self.deliver_events();
        saved
    }

    fn recount(&mut self, t: DateTime<Utc>) {
        let Some(source) = self.usage.as_mut() else {
            return;
        };
        let counts = source();
        let declared: Vec<Tag> = self
            .agent
            .status(t)
            .entitlements
            .into_iter()
            .map(|e| e.tag)
            .collect();
        for (tag, count) in &counts {
            self.agent.declare(tag.clone(), t);
            // Declared just above, so set_usage cannot refuse it.
            let _ = self.agent.set_usage(tag, *count, t);
        }
        for tag in declared
            .iter()
            .filter(|d| !counts.iter().any(|(t, _)| t == *d))
        {
            let _ = self.agent.set_usage(tag, 0, t);
        }
        self.next_usage = Some(crate::time::later(t, self.usage_period));
    }

    fn next_wake(&self) -> Option<DateTime<Utc>> {
        let timer = self.agent.poll_timeout().map(|(at, _)| at);
        let usage = self.usage.as_ref().and(self.next_usage);
        match (timer, usage) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn deliver_events(&mut self) {
        while let Some(event) = self.agent.poll_event() {
            match self.on_event.as_mut() {
                Some(sink) => sink(event),
                None => {
                    if self.kept_events.len() == KEPT_EVENTS {
                        self.kept_events.pop_front();
                    }
                    self.kept_events.push_back(event);
                }
            }
        }
    }

    fn persist(&mut self) -> Result<(), DriverError> {
        let bytes = self.agent.snapshot();
        if bytes != self.saved {
            self.store.save(&bytes)?;
            self.saved = bytes;
        }
        Ok(())
    }
}
