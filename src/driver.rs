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
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::agent::{Agent, Config, ConfigError, Event, Force, RestoreError};
use crate::entitlement::Tag;
use crate::error::Error;
use crate::settings::{HostIdentity, TransportSettings};
use crate::status::Status;
use crate::store::{AtomicFile, FileSystem};
use crate::transport::Transport;
use crate::wire::SendError;

/// Where the Driver gets the wall time.
pub trait Clock: Send {
    /// The current wall time.
    fn now(&self) -> DateTime<Utc>;

    /// Called by [`Driver::advance_to`] before it processes each instant in virtual time. A
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

/// Where the Driver keeps the agent's snapshot.
pub trait SnapshotStore: Send {
    /// The stored snapshot, `None` before the first save.
    fn load(&mut self) -> io::Result<Option<Vec<u8>>>;
    /// Replaces the stored snapshot durably.
    fn save(&mut self, snapshot: &[u8]) -> io::Result<()>;
}

impl<F: FileSystem> SnapshotStore for AtomicFile<F> {
    fn load(&mut self) -> io::Result<Option<Vec<u8>>> {
        AtomicFile::load(self)
    }
    fn save(&mut self, snapshot: &[u8]) -> io::Result<()> {
        self.store(snapshot)
    }
}

/// A snapshot kept in memory (clones share it): for tests, and for callers that persist the
/// bytes themselves.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore(Arc<Mutex<Option<Vec<u8>>>>);

impl MemoryStore {
    /// The stored bytes.
    pub fn get(&self) -> Option<Vec<u8>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl SnapshotStore for MemoryStore {
    fn load(&mut self) -> io::Result<Option<Vec<u8>>> {
        Ok(self.get())
    }
    fn save(&mut self, snapshot: &[u8]) -> io::Result<()> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(snapshot.to_vec());
        Ok(())
    }
}

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

enum Command {
    Declare(Tag),
    SetUsage(Tag, u32),
    Register(String, Force),
    RenewId,
    RenewAuth,
    Deregister,
    SetTransport(TransportSettings),
    SetPrivacy(bool),
    SetHost(HostIdentity),
    SetSubscriber(bool),
}

type Reply = Sender<Result<(), CommandError>>;

enum Message {
    Command(Command, Reply),
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
    fn command(&self, command: Command) -> Result<(), CommandError> {
        let (reply, answer) = mpsc::channel();
        self.tx
            .send(Message::Command(command, reply))
            .map_err(|_| CommandError::Stopped)?;
        answer.recv().map_err(|_| CommandError::Stopped)?
    }

    /// [`Agent::declare`].
    pub fn declare(&self, tag: Tag) -> Result<(), CommandError> {
        self.command(Command::Declare(tag))
    }
    /// [`Agent::set_usage`].
    pub fn set_usage(&self, tag: Tag, count: u32) -> Result<(), CommandError> {
        self.command(Command::SetUsage(tag, count))
    }
    /// [`Agent::register`].
    pub fn register(&self, token: &str, force: Force) -> Result<(), CommandError> {
        self.command(Command::Register(token.to_string(), force))
    }
    /// [`Agent::renew_id`].
    pub fn renew_id(&self) -> Result<(), CommandError> {
        self.command(Command::RenewId)
    }
    /// [`Agent::renew_auth`].
    pub fn renew_auth(&self) -> Result<(), CommandError> {
        self.command(Command::RenewAuth)
    }
    /// [`Agent::deregister`].
    pub fn deregister(&self) -> Result<(), CommandError> {
        self.command(Command::Deregister)
    }
    /// [`Agent::set_transport`].
    pub fn set_transport(&self, settings: TransportSettings) -> Result<(), CommandError> {
        self.command(Command::SetTransport(settings))
    }
    /// [`Agent::set_privacy`].
    pub fn set_privacy(&self, on: bool) -> Result<(), CommandError> {
        self.command(Command::SetPrivacy(on))
    }
    /// [`Agent::set_host`].
    pub fn set_host(&self, host: HostIdentity) -> Result<(), CommandError> {
        self.command(Command::SetHost(host))
    }
    /// [`Agent::set_subscriber`].
    pub fn set_subscriber(&self, on: bool) -> Result<(), CommandError> {
        self.command(Command::SetSubscriber(on))
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
    acks: Vec<(Reply, Result<(), Error>)>,
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
        for (reply, result) in self.acks.drain(..) {
            let answer = match (result, &saved) {
                (Err(e), _) => Err(CommandError::Rejected(e)),
                (Ok(()), Some(why)) => Err(CommandError::NotSaved(why.clone())),
                (Ok(()), None) => Ok(()),
            };
            let _ = reply.send(answer);
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
                        Message::Command(_, reply) => {
                            let _ = reply.send(Err(CommandError::Stopped));
                        }
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
        let agent = &mut self.agent;
        match message {
            Message::Command(command, reply) => {
                let result = match command {
                    Command::Declare(tag) => {
                        agent.declare(tag, now);
                        Ok(())
                    }
                    Command::SetUsage(tag, n) => agent.set_usage(&tag, n, now),
                    Command::Register(token, force) => agent.register(&token, force, now),
                    Command::RenewId => agent.renew_id(now),
                    Command::RenewAuth => agent.renew_auth(now),
                    Command::Deregister => agent.deregister(now),
                    Command::SetTransport(s) => agent.set_transport(s, now),
                    Command::SetPrivacy(on) => {
                        agent.set_privacy(on, now);
                        Ok(())
                    }
                    Command::SetHost(h) => {
                        agent.set_host(h, now);
                        Ok(())
                    }
                    Command::SetSubscriber(on) => {
                        agent.set_subscriber(on, now);
                        Ok(())
                    }
                };
                self.acks.push((reply, result));
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
                let failure = SendError::Send {
                    detail: format!("not sent, the snapshot could not be saved: {e}"),
                };
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
