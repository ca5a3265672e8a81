//! The sans-IO licensing state machine.
//!
//! # Call-order contract
//! - Every call that takes `now` is given the product's wall time. The agent keeps the highest
//!   time it has seen and uses `effective = max(now, highest)` (SPEC §11).
//! - Commands (`declare`, `set_usage`, `register`, …) either return `Err` — rejected locally,
//!   nothing changed, `now` not even recorded — or `Ok`, after which requests and events may
//!   be waiting.
//! - After any command, `handle_response` or `handle_timeout`, drain [`Agent::poll_transmit`]
//!   and [`Agent::poll_event`] until `None`. Every [`Transmit`] must be answered with
//!   [`Agent::handle_response`], with the bytes or the transport's [`SendError`](crate::SendError).
//! - Call [`Agent::handle_timeout`] when [`Agent::poll_timeout`] is due.
//! - Persist [`Agent::snapshot`] after every `handle_*`, command and `poll_transmit`.

mod authorization;
mod deregistration;
mod evaluation;
mod events;
mod exchange;
mod export;
mod failure;
mod operation;
mod persist;
mod registration;
mod reservation;
mod state;
mod timers;
mod view;
mod write;

pub use crate::codes::ReservationKind;
pub use events::{Alarm, Event, EventKind};
pub use exchange::{Transmit, TransmitId};
pub use export::{ExportJobKind, ExportKeyState, ExportKeyStatus};
pub use failure::{Failure, FailureKind};
pub use operation::Operation;
pub use persist::{PartError, RestoreError};
pub use reservation::{Installed, KEPT_KEYS};
pub use timers::TimerReason;

use std::collections::VecDeque;
use std::fmt;

use chrono::{DateTime, Utc};

use crate::crypto::{DeviceKey, Environment, Random, SystemRandom, TrustAnchor};
use crate::entitlement::Tag;
use crate::error::Error;
use crate::policy::Policy;
use crate::settings::{HostIdentity, TransportSettings};
use crate::snapshot::{Protection, SnapshotParts};
use crate::time::storable;
use crate::token::Token;
use crate::udi::{Udi, Uuid};

use evaluation::Evaluation;
use registration::{RegisterJob, Registration};
use state::{Communication, Licensing};

/// What an agent is built with; not persisted (the product supplies it at every start).
pub struct Config {
    /// This instance's UDI.
    pub udi: Udi,
    /// The environment the agent accepts signatures for.
    pub environment: Environment,
    /// The manager keys the product trusts (a list, so keys can rotate).
    pub trust_anchors: Vec<TrustAnchor>,
    /// Durations and limits.
    pub policy: Policy,
    /// How snapshots are protected.
    pub protection: Protection,
    /// Where nonces and key seeds come from.
    pub random: Box<dyn Random>,
}

impl Config {
    /// A configuration with the default policy, integrity-checked snapshots and the system
    /// random source.
    pub fn new(udi: Udi, environment: Environment, trust_anchors: Vec<TrustAnchor>) -> Self {
        Config {
            udi,
            environment,
            trust_anchors,
            policy: Policy::default(),
            protection: Protection::Integrity,
            random: Box::new(SystemRandom::new()),
        }
    }

    /// Replaces the policy.
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Replaces the random source (tests and simulations use [`crate::DeterministicRandom`]).
    pub fn with_random(mut self, random: Box<dyn Random>) -> Self {
        self.random = random;
        self
    }

    /// Replaces the snapshot protection.
    pub fn with_protection(mut self, protection: Protection) -> Self {
        self.protection = protection;
        self
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("udi", &self.udi)
            .field("environment", &self.environment)
            .field("trust_anchors", &self.trust_anchors)
            .field("policy", &self.policy)
            .field("protection", &self.protection)
            .finish_non_exhaustive()
    }
}

/// Why a [`Config`] cannot drive an agent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No manager key is trusted, so no answer could ever be accepted.
    #[error("no trust anchor is configured")]
    NoTrustAnchors,
    /// The policy is unusable; the text says which value.
    #[error("invalid policy: {0}")]
    Policy(&'static str),
}

impl Config {
    /// Checks the configuration ([`Agent::new`] and [`Agent::restore`] do).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.trust_anchors.is_empty() {
            return Err(ConfigError::NoTrustAnchors);
        }
        self.policy.validate().map_err(ConfigError::Policy)
    }
}

/// Whether `register` may replace an existing registration (002:46 `[force]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Force {
    /// Refuse while registered.
    #[default]
    No,
    /// Reregister, possibly into another virtual account.
    Yes,
}

/// A transmission handed out and not yet answered (in memory only: after a restore the
/// outstanding request is re-sent).
#[derive(Clone, Copy, Debug)]
struct InFlight {
    id: u64,
    /// The piid the request named; the answer must echo it.
    piid: Option<Uuid>,
}

/// The licensing agent of one product instance. See the [module docs](self) for the
/// call-order contract and the crate docs for a complete run loop.
pub struct Agent {
    config: Config,
    lic: write::Guarded,
    comm: Communication,
    events: VecDeque<Event>,
    /// The transmission handed out by `poll_transmit` and not yet answered.
    in_flight: Option<InFlight>,
    /// When this agent was restored (in memory only): reserved TERM licenses past their end
    /// date stop counting at the first restore after it (SPEC §6).
    restored_at: Option<DateTime<Utc>>,
}

impl fmt::Debug for Agent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.comm.highest_seen.unwrap_or(DateTime::<Utc>::MIN_UTC);
        f.debug_struct("Agent")
            .field("udi", &self.lic.udi)
            .field("registration", &self.registration_state(at))
            .field("declared", &self.lic.usage.len())
            .field("highest_seen", &self.comm.highest_seen)
            .field("outstanding", &self.comm.outstanding.as_ref().map(|o| o.id))
            .finish_non_exhaustive()
    }
}

impl Agent {
    /// A new, unregistered agent with a full evaluation period.
    pub fn new(config: Config, now: DateTime<Utc>) -> Result<Agent, ConfigError> {
        config.validate()?;
        let lic = Licensing {
            udi: config.udi.clone(),
            usage: Vec::new(),
            evaluation: Evaluation::new(config.policy.evaluation_period),
            registration: Registration::Unregistered,
            job: None,
            authorization: Default::default(),
            settings: Default::default(),
            dormant: None,
            reservation: Default::default(),
            export: Default::default(),
        };
        let comm = Communication {
            highest_seen: Some(storable(now)),
            ..Default::default()
        };
        Ok(Agent {
            config,
            lic: write::Guarded::new(lic),
            comm,
            events: VecDeque::new(),
            in_flight: None,
            restored_at: None,
        })
    }

    /// Restores an agent from [`Agent::snapshot`] bytes (SPEC §12): wrong magic, corruption or
    /// a newer version is a typed error; another UDI restores as unregistered with the
    /// evaluation kept; an identity or grant no longer trusted is dropped with an event.
    ///
    /// Restoring does not record `now` (it is only the time of the events it raises, and no
    /// earlier than the highest time the snapshot saw): deadlines that fell due while the
    /// product was down can then be processed each at its own time with `handle_timeout`.
    pub fn restore(
        snapshot: &[u8],
        config: Config,
        now: DateTime<Utc>,
    ) -> Result<Agent, RestoreError> {
        let parts = crate::snapshot::open(snapshot, &config.protection)?;
        Agent::from_parts(&parts, config, now)
    }

    /// Restores from already opened parts (for products that keep the parts in their own
    /// protected store); same rules as [`Agent::restore`].
    pub fn from_parts(
        parts: &SnapshotParts,
        config: Config,
        now: DateTime<Utc>,
    ) -> Result<Agent, RestoreError> {
        config.validate()?;
        persist::restore(parts, config, now)
    }

    /// The snapshot to persist: both parts in a container protected as configured.
    pub fn snapshot(&self) -> Vec<u8> {
        crate::snapshot::seal(&self.snapshot_parts(), &self.config.protection)
    }

    /// The two parts of the snapshot, unprotected, for comparison and custom storage.
    pub fn snapshot_parts(&self) -> SnapshotParts {
        SnapshotParts {
            version: crate::snapshot::VERSION,
            licensing: persist::encode_licensing(&self.lic),
            communication: persist::encode_communication(&self.comm),
        }
    }

    /// This instance's UDI.
    pub fn udi(&self) -> &Udi {
        &self.config.udi
    }

    /// The product-instance id of the stored identity certificate, `None` while none is
    /// stored (unregistered, failed, lapsed and cleared). Lets an administrator or a
    /// simulation match this agent to the manager's record of it.
    pub fn product_instance_id(&self) -> Option<Uuid> {
        match &self.lic.registration {
            Registration::Registered(id) => Some(id.cert.piid),
            _ => None,
        }
    }

    /// The configured transport settings.
    pub fn transport_settings(&self) -> &TransportSettings {
        &self.lic.settings.transport
    }

    /// Whether host name and IP are withheld from the manager.
    pub fn privacy(&self) -> bool {
        self.lic.settings.privacy
    }

    /// The host identity sent to the manager unless privacy is on.
    pub fn host(&self) -> Option<&HostIdentity> {
        self.lic.settings.host.as_ref()
    }

    /// Whether this is a subscriber node.
    pub fn is_subscriber(&self) -> bool {
        self.lic.settings.subscriber
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.config.policy
    }

    /// The highest wall time this agent has seen (SPEC §11): deadlines and evaluation use the
    /// later of it and `now`, so a product can warn when its clock is behind.
    pub fn highest_seen(&self) -> Option<DateTime<Utc>> {
        self.comm.highest_seen
    }

    /// Declares a tag the product may consume; it shows `Init` until a count is set.
    /// Declaring a tag twice changes nothing.
    pub fn declare(&mut self, tag: Tag, now: DateTime<Utc>) {
        let t = self.observe(now);
        if !self.lic.usage.iter().any(|(d, _)| *d == tag) {
            self.write_licensing(t, |lic| {
                lic.usage.push((tag, 0));
                lic.usage.shrink_to_fit(); // kept for the agent's life
            });
        }
        self.check_thresholds(t);
    }

    /// Sets the count in use for a declared tag (0 releases it but keeps it declared).
    pub fn set_usage(&mut self, tag: &Tag, count: u32, now: DateTime<Utc>) -> Result<(), Error> {
        let Some(index) = self.lic.usage.iter().position(|(d, _)| d == tag) else {
            return Err(Error::UndeclaredTag);
        };
        let t = self.observe(now);
        if self.lic.usage[index].1 != count {
            self.write_licensing(t, |lic| lic.usage[index].1 = count);
            self.comm.usage_dirty_since.get_or_insert(t);
        }
        self.check_thresholds(t);
        Ok(())
    }

    /// Registers with a token; `Force::Yes` reregisters while registered (SPEC §3).
    pub fn register(&mut self, token: &str, force: Force, now: DateTime<Utc>) -> Result<(), Error> {
        if self.lic.settings.subscriber {
            return Err(Error::SubscriberNode);
        }
        self.not_in_reservation_mode()?;
        let token = Token::parse(token)?;
        if self.lic.job.is_some() {
            return Err(Error::RegistrationInProgress);
        }
        let registered = self.valid_identity(self.effective(now)).is_some();
        if registered && force == Force::No {
            return Err(Error::AlreadyRegistered);
        }
        let key =
            DeviceKey::generate(self.config.random.as_mut()).map_err(|_| Error::RandomFailed)?;
        let t = self.observe(now);
        self.write_licensing(t, |lic| {
            if !registered {
                lic.registration = Registration::Unregistered;
            }
            lic.job = Some(RegisterJob {
                token,
                force: force == Force::Yes,
                key,
            });
        });
        self.comm.register = Default::default();
        self.check_thresholds(t);
        Ok(())
    }

    /// Asks for an identity renewal now (405 while unregistered or on a subscriber node).
    pub fn renew_id(&mut self, now: DateTime<Utc>) -> Result<(), Error> {
        if !self.lic.settings.subscriber {
            self.not_in_reservation_mode()?;
        }
        if self.lic.settings.subscriber || self.valid_identity(self.effective(now)).is_none() {
            return Err(Error::RenewIdNotAllowed);
        }
        let t = self.observe(now);
        self.comm.renew_id.requested = true;
        self.check_thresholds(t);
        Ok(())
    }

    /// Asks for an authorization now (405 while unregistered or on a subscriber node).
    pub fn renew_auth(&mut self, now: DateTime<Utc>) -> Result<(), Error> {
        if !self.lic.settings.subscriber {
            self.not_in_reservation_mode()?;
        }
        if self.lic.settings.subscriber || self.valid_identity(self.effective(now)).is_none() {
            return Err(Error::RenewAuthNotAllowed);
        }
        let t = self.observe(now);
        self.comm.authorize.requested = true;
        self.check_thresholds(t);
        Ok(())
    }

    /// Changes the transport settings (405 while registered or on a subscriber node).
    pub fn set_transport(
        &mut self,
        settings: TransportSettings,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        if self.lic.settings.subscriber || self.valid_identity(self.effective(now)).is_some() {
            return Err(Error::TransportSettingsLocked);
        }
        self.update_settings(now, |s| s.transport = settings);
        Ok(())
    }

    /// "Do not share my hostname or IP address with Cisco" (003:199).
    pub fn set_privacy(&mut self, on: bool, now: DateTime<Utc>) {
        self.update_settings(now, |s| s.privacy = on);
    }

    /// Sets the host name and IP sent to the manager; a change while registered schedules an
    /// immediate identity renewal (004:417-419).
    pub fn set_host(&mut self, host: HostIdentity, now: DateTime<Utc>) {
        let (t, changed) = self.update_settings(now, |s| s.host = Some(host));
        if changed && self.valid_identity(t).is_some() {
            self.comm.renew_id.requested = true;
        }
    }

    /// Marks this node a subscriber: licensing operations answer their subscriber 405.
    pub fn set_subscriber(&mut self, subscriber: bool, now: DateTime<Utc>) {
        self.update_settings(now, |s| s.subscriber = subscriber);
    }

    /// Applies `edit` to the settings at `now`; the licensing part is written only if they
    /// changed. Returns the effective time and whether they changed.
    fn update_settings(
        &mut self,
        now: DateTime<Utc>,
        edit: impl FnOnce(&mut state::Settings),
    ) -> (DateTime<Utc>, bool) {
        let t = self.observe(now);
        let mut settings = self.lic.settings.clone();
        edit(&mut settings);
        let changed = settings != self.lic.settings;
        if changed {
            self.write_licensing(t, |lic| lic.settings = settings);
        }
        self.check_thresholds(t);
        (t, changed)
    }

    /// Processes deadlines due by `now`: raises threshold events; due requests become
    /// available from [`Agent::poll_transmit`].
    pub fn handle_timeout(&mut self, now: DateTime<Utc>) {
        let t = self.observe(now);
        self.check_thresholds(t);
    }

    /// The next event, oldest first.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        let event = self.events.pop_front();
        if self.events.is_empty() && self.events.capacity() > 0 {
            // Drained: the queue's memory goes back (an agent spends nearly all its life with
            // no event waiting).
            self.events = VecDeque::new();
        }
        event
    }

    /// The earliest deadline and its reason; call [`Agent::handle_timeout`] (then
    /// `poll_transmit`) when it is due. A time at or before the last `now` means "at once".
    #[must_use]
    pub fn poll_timeout(&self) -> Option<(DateTime<Utc>, TimerReason)> {
        let t = self.comm.highest_seen?;
        self.timers(t).earliest()
    }

    // ---- internals shared by the sub-machines ----

    /// The effective time for `now`, without recording anything.
    fn effective(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let now = storable(now);
        self.comm.highest_seen.map_or(now, |h| h.max(now))
    }

    /// Records `now` (highest time seen, clock-back detection) and returns the effective time.
    fn observe(&mut self, now: DateTime<Utc>) -> DateTime<Utc> {
        let now = storable(now);
        match self.comm.highest_seen {
            Some(highest) if now >= highest => {
                self.comm.highest_seen = Some(now);
                now
            }
            Some(highest) => {
                let back = highest - now > self.config.policy.clock_tolerance;
                if back && self.comm.notified.clock_back != Some(highest) {
                    self.comm.notified.clock_back = Some(highest);
                    self.push(
                        highest,
                        EventKind::ClockChanged {
                            from: highest,
                            to: now,
                        },
                    );
                }
                highest
            }
            None => {
                self.comm.highest_seen = Some(now);
                now
            }
        }
    }

    fn push(&mut self, at: DateTime<Utc>, kind: EventKind) {
        self.events.push_back(Event { at, kind });
    }

    fn next_id(&mut self) -> u64 {
        self.comm.next_transmit_id = self.comm.next_transmit_id.wrapping_add(1);
        self.comm.next_transmit_id
    }

    fn any_usage(&self) -> bool {
        self.lic.usage.iter().any(|(_, n)| *n > 0)
    }

    /// Evaluation counts while a tag is in use and the agent is not registered and holds no
    /// installed reservation, or is registered without a successful authorization since that
    /// registration (SPEC §5).
    fn eval_should_count(&self, t: DateTime<Utc>) -> bool {
        self.any_usage()
            && self.reservation_in_force().is_none()
            && (self.valid_identity(t).is_none()
                || !self.lic.authorization.authorized_since_registration)
    }

    /// When evaluation started counting: the stored start, or the not-after of a lapsed
    /// identity the licensing part has not recorded yet (SPEC §12).
    fn eval_start(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if let Some(s) = self.lic.evaluation.counting_since {
            return Some(s);
        }
        match &self.lic.registration {
            Registration::Registered(id) if id.cert.not_after <= t && self.any_usage() => {
                Some(id.cert.not_after)
            }
            _ => None,
        }
    }
}
