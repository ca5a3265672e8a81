//! Authorization, compliance, renewal and backoff (SPEC §4).
//!
//! - Renewal 30 days after the last success; 12 hours while out of compliance.
//! - Deadline = min(signed not-after, last success + 90 days).
//! - A failed request retries after 15 min, doubling to 24 h, never later than the deadline;
//!   from the deadline on, every 24 h until a success.
//! - Usage changes are reported after a 60 s coalescing window; `renew_auth` asks at once.

use chrono::{DateTime, Utc};

use super::exchange::unexpected_body;
use super::failure::{Failure, FailureKind};
use super::operation::{Operation, OperationSpec, Pending, RequestParts};
use super::state::KeptGrant;
use super::timers::TimerReason;
use super::{Agent, EventKind};
use crate::entitlement::Tag;
use crate::time::later;
use crate::wire::{
    self, Answer, AnswerError, AuthorizeBody, Grant, GrantError, GrantStatus, RequestBody,
    UsageLine,
};

/// Authorization: a usage report and a request for a grant, at renewal, on a usage change
/// (after coalescing), on `renew_auth`, and retried with the §4 backoff.
pub(crate) const AUTHORIZE: OperationSpec = OperationSpec {
    kind: wire::RequestKind::Authorize,
    timeout_full_stop: false,
    due: |agent, t| {
        let (due, _) = agent.authorization_due(t)?;
        (due <= t).then(|| Pending {
            sequence: agent.comm.usage_sequence.wrapping_add(1),
            usage: agent
                .lic
                .usage
                .iter()
                .map(|(tag, count)| UsageLine {
                    tag: tag.to_string(),
                    count: *count,
                })
                .collect(),
            ..Pending::new(Operation::RenewAuth)
        })
    },
    schedule: |agent, t, table| {
        if let Some((at, reason)) = agent.authorization_due(t) {
            table.set(reason, at);
        }
    },
    build: |agent, pending, t| {
        let id = agent.valid_identity(t)?;
        Some(RequestParts {
            key: id.key.clone(),
            piid: Some(id.cert.piid),
            body: RequestBody::authorize(AuthorizeBody {
                sequence: pending.sequence,
                usage: pending.usage.clone(),
            }),
        })
    },
    sent: |agent, pending| {
        agent.comm.usage_sequence = agent.comm.usage_sequence.max(pending.sequence);
        agent.comm.usage_dirty_since = None;
        agent.comm.authorize.requested = false;
    },
    answered: |agent, t, pending, answer| agent.on_authorize_answer(t, pending.sequence, answer),
    refused: super::operation::never_refused,
    failed: |agent, t, _, failure| agent.on_authorize_failure(t, failure),
};

/// A verified grant and when it arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GrantRecord {
    /// The verbatim signed grant, re-verified on restore.
    pub raw: Vec<u8>,
    pub grant: Grant,
    pub received_at: DateTime<Utc>,
}

/// Authorization state of the current registration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Authorization {
    /// A grant arrived since this registration (evaluation stops for good until it lapses).
    pub authorized_since_registration: bool,
    pub grant: Option<GrantRecord>,
    /// The grant did not verify at restore: `NOT APPLICABLE` until an accepted answer.
    pub grant_untrusted: bool,
    /// That grant, kept verbatim with its arrival time (SPEC §12: restore never destroys): a
    /// later restore that verifies it brings it back; an accepted grant replaces it.
    pub dormant_grant: Option<KeptGrant>,
    /// When the current out-of-compliance stretch began.
    pub ooc_since: Option<DateTime<Utc>>,
}

impl Agent {
    /// Whether the grant leaves a tag now in use out of compliance or unknown.
    pub(crate) fn grant_out_of_compliance(&self) -> bool {
        let Some(g) = &self.lic.authorization.grant else {
            return false;
        };
        out_of_compliance(&self.lic.usage, &g.grant)
    }

    /// The grant deadline: min(signed not-after, last success + validity).
    pub(crate) fn deadline(&self) -> Option<DateTime<Utc>> {
        let g = self.lic.authorization.grant.as_ref()?;
        Some(g.grant.not_after.min(later(
            g.received_at,
            self.config.policy.authorization_validity,
        )))
    }

    /// When the next authorization request is due and why, while registered at `t`.
    pub(crate) fn authorization_due(
        &self,
        t: DateTime<Utc>,
    ) -> Option<(DateTime<Utc>, TimerReason)> {
        self.valid_identity(t)?;
        let auth = &self.lic.authorization;
        let log = &self.comm.authorize;
        let policy = &self.config.policy;
        let scheduled = if log.requested {
            t
        } else if log.failures > 0 {
            log.next_retry.unwrap_or(t)
        } else {
            match &auth.grant {
                Some(g) if !auth.grant_untrusted => {
                    let every = if self.grant_out_of_compliance() {
                        policy.out_of_compliance_recheck
                    } else {
                        policy.authorization_renewal
                    };
                    later(g.received_at, every)
                }
                // First authorization after registration, or the grant was dropped: at once.
                _ => t,
            }
        };
        let usage = self
            .comm
            .usage_dirty_since
            .map(|since| later(since, policy.usage_coalesce));
        match usage {
            Some(u) if u < scheduled => Some((u, TimerReason::UsageReport)),
            _ => Some((scheduled, TimerReason::AuthorizationRenewal)),
        }
    }

    /// Applies the answer to an authorize request carrying usage report `sequence`.
    pub(crate) fn on_authorize_answer(
        &mut self,
        t: DateTime<Utc>,
        sequence: u64,
        answer: Answer,
    ) -> Result<(), Failure> {
        if self.valid_identity(t).is_none() {
            return Ok(()); // deregistered or lapsed meanwhile
        }
        let Answer::Grant { raw, grant } = answer else {
            return Err(unexpected_body(Operation::RenewAuth));
        };
        let rejected = |why| Failure {
            operation: Operation::RenewAuth,
            kind: FailureKind::Rejected(AnswerError::Grant(why)),
        };
        if grant.udi != self.config.udi {
            return Err(rejected(GrantError::OtherUdi));
        }
        if grant.sequence != sequence {
            return Err(rejected(GrantError::OtherReport));
        }
        let before = self.tag_statuses(t);
        let out_of_compliance = out_of_compliance(&self.lic.usage, &grant);
        self.write_licensing(t, |lic| {
            let auth = &mut lic.authorization;
            auth.grant = Some(GrantRecord {
                raw,
                grant,
                received_at: t,
            });
            auth.authorized_since_registration = true;
            auth.grant_untrusted = false;
            auth.dormant_grant = None;
            auth.ooc_since = if out_of_compliance {
                auth.ooc_since.or(Some(t))
            } else {
                None
            };
        });
        self.comm.authorize.succeeded(t);
        self.push(
            t,
            EventKind::Authorized {
                in_compliance: !out_of_compliance,
            },
        );
        let after = self.tag_statuses(t);
        for (((tag, _), from), to) in self.lic.usage.clone().iter().zip(before).zip(after) {
            if from != to {
                self.push(
                    t,
                    EventKind::EntitlementStatusChanged {
                        tag: tag.to_string(),
                        from,
                        to,
                    },
                );
            }
        }
        Ok(())
    }

    /// A failed authorization: backoff 15 min doubling to 24 h, never past the deadline; from
    /// the deadline on, every 24 h.
    pub(crate) fn on_authorize_failure(&mut self, t: DateTime<Utc>, failure: Failure) {
        let policy = &self.config.policy;
        let failures = self.comm.authorize.failures.saturating_add(1);
        let next = match self.deadline() {
            Some(d) if t < d => later(t, policy.backoff(failures)).min(d),
            Some(_) => later(t, policy.backoff_max),
            None => later(t, policy.backoff(failures)),
        };
        self.comm.authorize.failed(t, failure.clone(), Some(next));
        self.push(
            t,
            EventKind::AuthorizationFailed {
                failure,
                next_attempt: Some(next),
            },
        );
    }
}

/// Whether `grant` leaves a tag in use (count > 0) out of compliance or unknown.
fn out_of_compliance(usage: &[(Tag, u32)], grant: &Grant) -> bool {
    grant.entries.iter().any(|e| {
        let in_use = usage.iter().any(|(tag, n)| *n > 0 && tag.as_str() == e.tag);
        in_use
            && matches!(
                e.content.as_ref().map(|c| c.status),
                Ok(GrantStatus::OutOfCompliance | GrantStatus::InvalidTag)
            )
    })
}
