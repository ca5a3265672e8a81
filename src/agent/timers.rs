//! Deadlines, as an enum-indexed table computed from the state (nothing here is stored), and
//! the notifications raised when a derived threshold passes (identity lapse, grant deadline,
//! evaluation warnings and expiry).

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use super::operation::Operation;
use super::registration::Registration;
use super::{Agent, EventKind};
use crate::time::later;

/// Why [`Agent::poll_timeout`](crate::Agent::poll_timeout) wants to be called back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[non_exhaustive]
pub enum TimerReason {
    /// A request is ready: call `poll_transmit`.
    Transmit,
    /// A pending registration is due (first attempt or 15-minute retry).
    RegistrationRetry,
    /// Identity renewal (or its retry) is due.
    IdentityRenewal,
    /// Authorization renewal (or its retry) is due.
    AuthorizationRenewal,
    /// Changed usage is due to be reported.
    UsageReport,
    /// The identity lapses.
    IdentityExpiry,
    /// The grant deadline passes.
    AuthorizationDeadline,
    /// An evaluation warning threshold is crossed.
    EvaluationWarning,
    /// The evaluation period runs out.
    EvaluationExpiry,
    /// An export authorization key request or return (or its retry) is due.
    ExportKey,
}

impl TimerReason {
    /// Every reason; ties between deadlines go to the reason listed first.
    pub const ALL: [TimerReason; 10] = [
        TimerReason::Transmit,
        TimerReason::RegistrationRetry,
        TimerReason::IdentityRenewal,
        TimerReason::AuthorizationRenewal,
        TimerReason::UsageReport,
        TimerReason::IdentityExpiry,
        TimerReason::AuthorizationDeadline,
        TimerReason::EvaluationWarning,
        TimerReason::EvaluationExpiry,
        TimerReason::ExportKey,
    ];
}

const REASONS: usize = TimerReason::ALL.len();

/// One optional deadline per reason.
#[derive(Default)]
pub(crate) struct TimerTable([Option<DateTime<Utc>>; REASONS]);

impl TimerTable {
    pub fn set(&mut self, reason: TimerReason, at: DateTime<Utc>) {
        let slot = &mut self.0[reason as usize];
        *slot = Some(slot.map_or(at, |old| old.min(at)));
    }

    /// The earliest deadline; ties go to the reason listed first.
    pub fn earliest(&self) -> Option<(DateTime<Utc>, TimerReason)> {
        TimerReason::ALL
            .iter()
            .filter_map(|&r| self.0[r as usize].map(|at| (at, r)))
            .min_by_key(|&(at, r)| (at, r))
    }
}

impl Agent {
    /// The deadline table at effective time `t`.
    pub(crate) fn timers(&self, t: DateTime<Utc>) -> TimerTable {
        let mut table = TimerTable::default();
        match (&self.comm.outstanding, &self.in_flight) {
            (Some(o), Some(f)) if f.id == o.id => {} // the product owes us an answer
            // Restored: re-sent at once, unless it can no longer be built (its identity was
            // set aside); then poll_transmit abandons it for whatever is due instead.
            (Some(o), _) if self.request_parts(&o.pending, t).is_some() => {
                table.set(TimerReason::Transmit, t)
            }
            _ => {
                for op in Operation::ALL {
                    if !self.spent_at_end_of_time(*op, t) {
                        (op.spec().schedule)(self, t, &mut table);
                    }
                }
            }
        }
        let n = &self.comm.notified;
        match &self.lic.registration {
            Registration::Registered(id) if n.identity_expired != Some(id.cert.not_after) => {
                table.set(TimerReason::IdentityExpiry, id.cert.not_after);
            }
            Registration::Expired { at } if n.identity_expired != Some(*at) => {
                table.set(TimerReason::IdentityExpiry, *at);
            }
            _ => {}
        }
        if let Some(d) = self.unnotified_deadline() {
            table.set(TimerReason::AuthorizationDeadline, d);
        }
        let start = self.eval_start(t);
        if let Some(at) = self.next_eval_warning(start) {
            table.set(TimerReason::EvaluationWarning, at.0);
        }
        if !n.eval_expired {
            if let Some(at) = self.lic.evaluation.runs_out_at(start) {
                table.set(TimerReason::EvaluationExpiry, at);
            }
        }
        table
    }

    /// Time stops at the last storable second: an operation attempted then is not due again
    /// then. (Every retry and renewal saturates to that same second, so `poll_transmit` would
    /// offer it again for ever and a product loop would never return.)
    pub(crate) fn spent_at_end_of_time(&self, op: Operation, t: DateTime<Utc>) -> bool {
        if t < crate::time::last_storable() {
            return false;
        }
        let log = match op {
            Operation::Register => &self.comm.register,
            Operation::RenewId => &self.comm.renew_id,
            Operation::RenewAuth => &self.comm.authorize,
            Operation::ExportRequest | Operation::ExportReturn => &self.comm.export,
            _ => return false,
        };
        log.last.as_ref().is_some_and(|(at, _)| *at >= t)
    }

    /// The grant deadline, if registered, before the identity lapses and not yet reported.
    fn unnotified_deadline(&self) -> Option<DateTime<Utc>> {
        let Registration::Registered(id) = &self.lic.registration else {
            return None;
        };
        let d = self.deadline()?;
        (d < id.cert.not_after && self.comm.notified.auth_expired != Some(d)).then_some(d)
    }

    /// The earliest evaluation warning not yet raised, while counting: (when, index, days).
    fn next_eval_warning(
        &self,
        start: Option<DateTime<Utc>>,
    ) -> Option<(DateTime<Utc>, usize, i64)> {
        let start = start?;
        let eval = &self.lic.evaluation;
        self.config
            .policy
            .evaluation_warnings
            .iter()
            .enumerate()
            .filter(|(i, _)| *i < 32 && self.comm.notified.eval_warnings & (1 << i) == 0)
            .filter(|(_, w)| **w > TimeDelta::zero())
            .map(|(i, w)| {
                let at = if eval.remaining > *w {
                    later(start, eval.remaining - *w)
                } else {
                    start
                };
                (at, i, w.num_days())
            })
            .min_by_key(|&(at, i, _)| (at, i))
    }

    /// Raises every derived notification whose time has come by `t`, in time order.
    pub(crate) fn check_thresholds(&mut self, t: DateTime<Utc>) {
        let mut due: Vec<(DateTime<Utc>, EventKind)> = Vec::new();
        let lapse = match &self.lic.registration {
            Registration::Registered(id) if id.cert.not_after <= t => {
                Some((id.cert.not_after, id.cert.export_controlled))
            }
            Registration::Expired { at } => Some((*at, false)),
            _ => None,
        };
        if let Some((at, export)) = lapse {
            if self.comm.notified.identity_expired != Some(at) {
                self.comm.notified.identity_expired = Some(at);
                due.push((at, EventKind::RegistrationExpired));
                if export {
                    due.push((at, EventKind::ExportControlNotAllowed));
                }
            }
        }
        if let Some(d) = self.unnotified_deadline().filter(|d| *d <= t) {
            self.comm.notified.auth_expired = Some(d);
            due.push((d, EventKind::AuthorizationExpired));
        }
        let start = self.eval_start(t);
        while let Some((at, i, days)) = self.next_eval_warning(start).filter(|w| w.0 <= t) {
            self.comm.notified.eval_warnings |= 1 << i;
            let left = self.lic.evaluation.remaining_at(start, at);
            due.push((
                at,
                EventKind::EvaluationWarning {
                    days_left: left.num_days().min(days),
                },
            ));
        }
        if !self.comm.notified.eval_expired {
            if let Some(at) = self.lic.evaluation.expired_by(start, t) {
                self.comm.notified.eval_expired = true;
                due.push((at, EventKind::EvaluationExpired));
            }
        }
        due.sort_by_key(|(at, _)| *at);
        for (at, kind) in due {
            // A lapse, the deadline or the end of evaluation changes tag statuses by itself.
            let flips = matches!(
                kind,
                EventKind::RegistrationExpired
                    | EventKind::AuthorizationExpired
                    | EventKind::EvaluationExpired
            );
            self.push(at, kind);
            if flips {
                self.push_tag_changes(later(at, -TimeDelta::nanoseconds(1)), at);
            }
        }
    }

    /// Raises an event for every declared tag whose status at `after` differs from `before`.
    pub(crate) fn push_tag_changes(&mut self, before: DateTime<Utc>, after: DateTime<Utc>) {
        let from = self.tag_statuses(before);
        let to = self.tag_statuses(after);
        let tags: Vec<String> = self.lic.usage.iter().map(|(t, _)| t.to_string()).collect();
        for ((tag, from), to) in tags.into_iter().zip(from).zip(to) {
            if from != to {
                self.push(after, EventKind::EntitlementStatusChanged { tag, from, to });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timer_reasons_are_listed_in_declaration_order_so_each_indexes_its_own_slot() {
        for (i, r) in TimerReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
    }
}
