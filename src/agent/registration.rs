//! Registration and identity renewal (SPEC §3).
//!
//! ```text
//!              register(token)                    identity answer
//! UNREGISTERED ───────────────▶ PENDING ─────────────────────────▶ REGISTERED ──┐ renewId every
//!   ▲   ▲  ▲                     │  ▲ transient failure: retry 15 min   │  ▲     │ 180 d (backoff
//!   │   │  │      token refused  │  └───────────────────────────────────┘  └─────┘ on failure)
//!   │   │  └──────── FAILED ◀────┘                                     │
//!   │   │ deregister (local at once, best-effort request)              │ not-after passes
//!   │   └──────────────────────────────────────────────────────────────┤
//!   └─────────────────────── register ◀─── REGISTRATION EXPIRED ◀──────┘
//! ```
//! `register(force)` while registered keeps the old identity until the new one arrives.

use chrono::{DateTime, TimeDelta, Utc};

use base64::Engine as _;

use super::exchange::unexpected_body;
use super::failure::{Failure, FailureKind};
use super::operation::{Operation, OperationSpec, Pending, RequestParts};
use super::state::{AttemptLog, Deregistration};
use super::timers::TimerReason;
use super::{Agent, EventKind};
use crate::crypto::{DeviceKey, B64};
use crate::time::later;
use crate::token::Token;
use crate::wire::{
    self, Answer, AnswerError, IdentityCertificate, IdentityError, RegisterBody, RequestBody,
};

/// Registration: sent while a job is pending, retried every 15 minutes.
pub(crate) const REGISTER: OperationSpec = OperationSpec {
    kind: wire::RequestKind::Register,
    timeout_full_stop: true,
    due: |agent, t| {
        let job = agent.lic.job.as_ref()?;
        agent
            .comm
            .register
            .next_retry
            .is_none_or(|r| r <= t)
            .then(|| Pending {
                key: Some(job.key.clone()),
                ..Pending::new(Operation::Register)
            })
    },
    schedule: |agent, t, table| {
        if agent.lic.job.is_some() {
            let at = agent.comm.register.next_retry.unwrap_or(t);
            table.set(TimerReason::RegistrationRetry, at);
        }
    },
    build: |agent, pending, _| {
        let job = agent
            .lic
            .job
            .as_ref()
            .filter(|job| Some(&job.key) == pending.key.as_ref())?;
        Some(RequestParts {
            key: job.key.clone(),
            piid: None,
            body: RequestBody::register(RegisterBody {
                token: job.token.expose().to_string(),
                public_key: B64.encode(job.key.public_key()),
                force: job.force,
            }),
        })
    },
    sent: |_, _| {},
    answered: |agent, t, pending, answer| match &pending.key {
        Some(key) => agent.on_register_answer(t, key, answer),
        None => Err(unexpected_body(Operation::Register)),
    },
    refused: |agent, t, pending, code, _| match &pending.key {
        Some(key) if code == wire::codes::TOKEN_INVALID => {
            agent.on_token_refused(t, key);
            true
        }
        _ => false,
    },
    failed: |agent, t, _, failure| agent.on_register_failure(t, failure),
};

/// Identity renewal: every 180 days, at once on a host change or `renew_id`, the §4 backoff.
pub(crate) const RENEW_ID: OperationSpec = OperationSpec {
    kind: wire::RequestKind::RenewId,
    timeout_full_stop: false,
    due: |agent, t| {
        agent
            .identity_renewal_due(t)
            .is_some_and(|due| due <= t)
            .then(|| Pending::new(Operation::RenewId))
    },
    schedule: |agent, t, table| {
        if let Some(at) = agent.identity_renewal_due(t) {
            table.set(TimerReason::IdentityRenewal, at);
        }
    },
    build: |agent, _, t| {
        let id = agent.valid_identity(t)?;
        Some(RequestParts {
            key: id.key.clone(),
            piid: Some(id.cert.piid),
            body: RequestBody::renew_id(),
        })
    },
    sent: |agent, _| agent.comm.renew_id.requested = false,
    answered: |agent, t, _, answer| agent.on_renew_id_answer(t, answer),
    refused: super::operation::never_refused,
    failed: |agent, t, _, failure| agent.on_renew_id_failure(t, failure),
};

/// A verified identity and the device key it certifies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Identity {
    /// The verbatim signed certificate, re-verified on restore.
    pub raw: Vec<u8>,
    pub cert: IdentityCertificate,
    pub key: DeviceKey,
    pub registered_at: DateTime<Utc>,
    pub renewed_at: Option<DateTime<Utc>>,
}

impl Identity {
    /// When the next automatic renewal is due, before failures.
    pub fn renewal_base(&self, every: TimeDelta) -> DateTime<Utc> {
        later(self.renewed_at.unwrap_or(self.registered_at), every)
    }
}

/// The registration state as stored; an identity lapse is derived at read time until
/// something writes the licensing part anyway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Registration {
    Unregistered,
    /// The manager refused the token at `at`.
    Failed {
        at: DateTime<Utc>,
    },
    Registered(Box<Identity>),
    /// The identity lapsed at `at` (its not-after).
    Expired {
        at: DateTime<Utc>,
    },
}

/// A registration waiting to be sent or retried. The device key is made when the product calls
/// `register`, so a resent request carries the same key (SPEC §12 idempotency).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RegisterJob {
    pub token: Token,
    pub force: bool,
    pub key: DeviceKey,
}

impl Agent {
    /// The identity, if registered and not lapsed at `t`.
    pub(crate) fn valid_identity(&self, t: DateTime<Utc>) -> Option<&Identity> {
        match &self.lic.registration {
            Registration::Registered(id) if t < id.cert.not_after => Some(id),
            _ => None,
        }
    }

    /// When the identity renewal is due, if registered at `t` and before the identity lapses.
    /// Retries are never scheduled past not-after.
    pub(crate) fn identity_renewal_due(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let id = self.valid_identity(t)?;
        let log = &self.comm.renew_id;
        let due = if log.requested {
            t
        } else if log.failures > 0 {
            log.next_retry?
        } else {
            id.renewal_base(self.config.policy.identity_renewal)
        };
        (due < id.cert.not_after).then_some(due)
    }

    /// Applies the identity answering a register request signed with `key`.
    pub(crate) fn on_register_answer(
        &mut self,
        t: DateTime<Utc>,
        key: &DeviceKey,
        answer: Answer,
    ) -> Result<(), Failure> {
        let Answer::Identity { raw, certificate } = answer else {
            return Err(unexpected_body(Operation::Register));
        };
        if let Err(why) = self.check_identity(&certificate, key, t) {
            return Err(Failure {
                operation: Operation::Register,
                kind: FailureKind::Rejected(AnswerError::Identity(why)),
            });
        }
        let Some(job) = self.lic.job.clone().filter(|job| job.key == *key) else {
            // Superseded by a deregistration while in flight: the manager now has an instance
            // nobody uses, so deregister it too.
            self.comm.deregistrations.push(Deregistration {
                piid: certificate.piid,
                key: key.clone(),
                export_keys: Vec::new(),
            });
            return Ok(());
        };
        let identity = Identity {
            raw,
            cert: certificate.clone(),
            key: job.key,
            registered_at: t,
            renewed_at: None,
        };
        self.write_licensing(t, |lic| {
            lic.registration = Registration::Registered(Box::new(identity));
            lic.job = None;
            lic.authorization = Default::default();
            lic.dormant = None;
            // Export keys are bound to the previous piid; the manager frees them with the
            // instance a (force) reregistration replaces.
            lic.export = Default::default();
        });
        self.comm.export = Default::default();
        self.comm.register.succeeded(t);
        self.comm.renew_id = AttemptLog::default();
        self.comm.authorize = AttemptLog::default();
        self.push(
            t,
            EventKind::Registered {
                smart_account: certificate.smart_account,
                virtual_account: certificate.virtual_account,
            },
        );
        Ok(())
    }

    /// The manager refused the token of the registration signed with `key`: failed for good.
    pub(crate) fn on_token_refused(&mut self, t: DateTime<Utc>, key: &DeviceKey) {
        if self.lic.job.as_ref().is_none_or(|job| job.key != *key) {
            return; // superseded meanwhile
        }
        // A failed force reregistration keeps the old identity (SPEC §3).
        let keeps_identity = self.valid_identity(t).is_some();
        self.write_licensing(t, |lic| {
            lic.job = None;
            if !keeps_identity {
                lic.registration = Registration::Failed { at: t };
            }
        });
        let failure = Failure {
            operation: Operation::Register,
            kind: FailureKind::TokenRefused,
        };
        self.comm.register.failed(t, failure.clone(), None);
        self.push(t, EventKind::RegistrationFailed { failure });
    }

    /// A transient registration failure: retried every 15 minutes (004:255).
    pub(crate) fn on_register_failure(&mut self, t: DateTime<Utc>, failure: Failure) {
        let next = later(t, self.config.policy.registration_retry);
        self.comm.register.failed(t, failure.clone(), Some(next));
        self.push(
            t,
            EventKind::RegistrationRetrying {
                failure,
                next_attempt: next,
            },
        );
    }

    /// Applies the identity answering a renewId request.
    pub(crate) fn on_renew_id_answer(
        &mut self,
        t: DateTime<Utc>,
        answer: Answer,
    ) -> Result<(), Failure> {
        let Answer::Identity { raw, certificate } = answer else {
            return Err(unexpected_body(Operation::RenewId));
        };
        let Some(current) = self.valid_identity(t).cloned() else {
            return Ok(()); // lapsed or deregistered meanwhile; a renewal cannot revive it
        };
        let rejected = |e| Failure {
            operation: Operation::RenewId,
            kind: FailureKind::Rejected(e),
        };
        if let Err(why) = self.check_identity(&certificate, &current.key, t) {
            return Err(rejected(AnswerError::Identity(why)));
        }
        if certificate.piid != current.cert.piid {
            return Err(rejected(AnswerError::PiidMismatch));
        }
        let expires = certificate.not_after;
        let renewed = Identity {
            raw,
            cert: certificate,
            renewed_at: Some(t),
            ..current
        };
        self.write_licensing(t, |lic| {
            lic.registration = Registration::Registered(Box::new(renewed))
        });
        self.comm.renew_id.succeeded(t);
        self.push(t, EventKind::IdentityRenewed { expires });
        Ok(())
    }

    /// A failed identity renewal: the §4 backoff, never past not-after.
    pub(crate) fn on_renew_id_failure(&mut self, t: DateTime<Utc>, failure: Failure) {
        let failures = self.comm.renew_id.failures.saturating_add(1);
        let next = self.valid_identity(t).and_then(|id| {
            // The last try must still find the identity valid.
            let last_chance = later(id.cert.not_after, -TimeDelta::seconds(1));
            let next = later(t, self.config.policy.backoff(failures)).min(last_chance);
            (next > t).then_some(next)
        });
        self.comm.renew_id.failed(t, failure.clone(), next);
        self.push(
            t,
            EventKind::IdentityRenewalFailed {
                failure,
                next_attempt: next,
            },
        );
    }

    /// Checks a new identity certificate against this instance and its key.
    fn check_identity(
        &self,
        cert: &IdentityCertificate,
        key: &DeviceKey,
        t: DateTime<Utc>,
    ) -> Result<(), IdentityError> {
        if cert.udi != self.config.udi {
            return Err(IdentityError::OtherUdi);
        }
        if cert.public_key != key.public_key() {
            return Err(IdentityError::OtherKey);
        }
        if cert.not_after <= t {
            return Err(IdentityError::Expired);
        }
        Ok(())
    }
}
