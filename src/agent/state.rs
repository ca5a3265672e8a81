//! The agent's persisted state, split as SPEC §12 requires: the **licensing part** (what the
//! licence position is) and the **communication part** (how talking to the manager goes).

use chrono::{DateTime, Utc};

use super::authorization::Authorization;
use super::evaluation::Evaluation;
use super::export::Export;
use super::failure::Failure;
use super::operation::Pending;
use super::registration::{RegisterJob, Registration};
use super::reservation::Reservation;
use crate::crypto::DeviceKey;
use crate::entitlement::Tag;
use crate::settings::{HostIdentity, TransportSettings};
use crate::udi::{Udi, Uuid};

/// Product settings the agent keeps (SPEC §8, §9).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Settings {
    pub transport: TransportSettings,
    pub privacy: bool,
    pub host: Option<HostIdentity>,
    pub subscriber: bool,
}

/// The licensing part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Licensing {
    pub udi: Udi,
    /// Declared tags in declaration order, with their counts.
    pub usage: Vec<(Tag, u32)>,
    pub evaluation: Evaluation,
    pub registration: Registration,
    /// A registration waiting to be sent or retried (with force: while still registered).
    pub job: Option<RegisterJob>,
    pub authorization: Authorization,
    pub settings: Settings,
    /// An identity no configured anchor (or not this UDI) verified at restore, with its
    /// authorization: never used or sent, brought back by a restore that verifies it, replaced
    /// by a successful new registration (SPEC §12, "restore never destroys").
    pub dormant: Option<Box<Kept>>,
    /// License Reservation (SPEC §6).
    pub reservation: Reservation,
    /// Export authorization keys held and asked for (SPEC §7).
    pub export: Export,
}

/// A verbatim signed grant and when it arrived.
pub(crate) type KeptGrant = (Vec<u8>, DateTime<Utc>);

/// A registration as stored, before its signed documents are verified against the anchors
/// configured now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Kept {
    /// The verbatim signed identity certificate.
    pub raw: Vec<u8>,
    pub key: DeviceKey,
    pub registered_at: DateTime<Utc>,
    pub renewed_at: Option<DateTime<Utc>>,
    pub authorized_since_registration: bool,
    pub grant: Option<KeptGrant>,
    pub ooc_since: Option<DateTime<Utc>>,
}

/// One kind of exchange's history: the last attempt, consecutive failures, the retry time,
/// and whether the product asked for it now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct AttemptLog {
    pub last: Option<(DateTime<Utc>, Option<Failure>)>,
    pub failures: u32,
    pub next_retry: Option<DateTime<Utc>>,
    pub requested: bool,
}

impl AttemptLog {
    pub fn succeeded(&mut self, t: DateTime<Utc>) {
        *self = AttemptLog {
            last: Some((t, None)),
            ..AttemptLog::default()
        };
    }

    pub fn failed(
        &mut self,
        t: DateTime<Utc>,
        failure: Failure,
        next_retry: Option<DateTime<Utc>>,
    ) {
        self.last = Some((t, Some(failure)));
        self.failures = self.failures.saturating_add(1);
        self.next_retry = next_retry;
        self.requested = false;
    }
}

/// The request the agent is waiting on; it survives a crash and is re-sent with a fresh nonce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Outstanding {
    /// The transmit id of its latest transmission.
    pub id: u64,
    pub pending: Pending,
    /// The nonce of its latest transmission (empty before the first).
    pub nonce: String,
}

/// A deregistration waiting to be sent: the identity is already gone locally, so it carries
/// what the request needs, and the ids of the export keys it returns (SPEC §7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Deregistration {
    pub piid: Uuid,
    pub key: DeviceKey,
    pub export_keys: Vec<String>,
}

/// Which derived notifications were already raised, so each is raised once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Notified {
    /// Bit i: the i-th evaluation warning of the policy.
    pub eval_warnings: u32,
    pub eval_expired: bool,
    /// The not-after of the identity whose lapse was reported.
    pub identity_expired: Option<DateTime<Utc>>,
    /// The deadline whose passing was reported.
    pub auth_expired: Option<DateTime<Utc>>,
    /// The highest time for which a clock-back event was raised.
    pub clock_back: Option<DateTime<Utc>>,
    /// A clock-skew episode is in progress.
    pub skew: bool,
    /// Communication is failing (a failure was reported, no success since).
    pub failing: bool,
    /// The installed reservation was reported untrusted at a restore (reported again only
    /// after it was trusted in between).
    pub reservation_untrusted: bool,
    /// Reserved TERM entitlements whose expiry was reported: (tag, end date).
    pub reserved_expired: Vec<(String, chrono::NaiveDate)>,
}

/// The communication part.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Communication {
    pub highest_seen: Option<DateTime<Utc>>,
    pub next_transmit_id: u64,
    /// The last usage report sequence number assigned.
    pub usage_sequence: u64,
    pub outstanding: Option<Outstanding>,
    /// Deregistrations waiting to be sent (one at a time, before anything else).
    pub deregistrations: Vec<Deregistration>,
    pub register: AttemptLog,
    pub renew_id: AttemptLog,
    pub authorize: AttemptLog,
    /// The export key jobs' exchanges (the first job is the one sent).
    pub export: AttemptLog,
    /// Usage changed at this time and is not yet in a report.
    pub usage_dirty_since: Option<DateTime<Utc>>,
    pub notified: Notified,
}
