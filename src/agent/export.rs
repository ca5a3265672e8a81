//! Export control (SPEC §7): the signed export-controlled flag, and export authorization keys
//! for Smart Accounts under export restrictions (003:817-883).
//!
//! - [`Agent::export_allowed`] is the one question for the flag: the identity certificate's
//!   signed flag while registered, the installed reservation's in reservation mode, never in
//!   evaluation.
//! - Keys: `export_request(feature)` and `export_return(feature)` queue a job, sent in order
//!   while registered; a transient failure retries with the §4 backoff until it succeeds or
//!   [`Agent::export_cancel`] stops it (003:871); a permanent refusal (`NOT_SUPPORTED`,
//!   `NOT_RESTRICTED`, `NO_KEYS_AVAILABLE`, `NOT_HELD`) ends the job with the manager's message.
//!   A granted key is kept verbatim, re-verified at restore (kept unused if untrusted), and
//!   answers [`Agent::export_key_allowed`]; deregistration returns the keys best-effort.

use chrono::{DateTime, Utc};

use super::exchange::unexpected_body;
use super::failure::Failure;
use super::operation::{Operation, OperationSpec, Pending, RequestParts};
use super::timers::TimerReason;
use super::{Agent, EventKind};
use crate::codes::{is_feature_name, ExportKey};
use crate::error::Error;
use crate::time::later;
use crate::wire::{self, codes, Answer, AnswerError, RequestBody};

/// What an export job does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum ExportJobKind {
    /// Ask for a key.
    Request,
    /// Give a key back.
    Return,
}

/// One export authorization key as a product shows it (`show license all`): a key held, or a
/// request or return not yet settled by the manager.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ExportKeyStatus {
    /// The feature, e.g. `CUCM_Export_Restricted_Authorization_Key`.
    pub feature: String,
    /// Held, asked for, or being returned.
    pub state: ExportKeyState,
    /// When the manager issued the key held (signed into it).
    pub issued: Option<DateTime<Utc>>,
    /// For a request or return that failed: when it is tried again (`None`: at once, or not
    /// failed yet).
    pub next_attempt: Option<DateTime<Utc>>,
}

/// Where an export authorization key stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum ExportKeyState {
    /// Held and trusted: [`Agent::export_key_allowed`] answers yes.
    Held,
    /// Held but it does not verify against the trust anchors configured now: kept, unused.
    Untrusted,
    /// Asked for; the manager has not granted it yet.
    Requested,
    /// Held and being given back; the manager has not confirmed it yet.
    Returning,
}

/// A request or return the product asked for and the manager has not settled yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ExportJob {
    pub kind: ExportJobKind,
    pub feature: String,
}

/// A key the instance holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HeldKey {
    pub key: ExportKey,
    /// Derived at restore: it verifies for this instance against the anchors configured now.
    /// An untrusted key is kept (SPEC §12) but does not allow its feature.
    pub trusted: bool,
}

/// The export keys of the licensing part.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Export {
    /// Held keys, in the order granted.
    pub keys: Vec<HeldKey>,
    /// Jobs in the order asked; the first one is the one sent.
    pub jobs: Vec<ExportJob>,
}

impl Export {
    fn held(&self, feature: &str) -> Option<&HeldKey> {
        self.keys.iter().find(|k| k.key.feature() == feature)
    }
}

/// Pending of the first job, if it is of `kind` and due at `t` while registered.
fn due_job(agent: &Agent, t: DateTime<Utc>, kind: ExportJobKind) -> Option<Pending> {
    agent.valid_identity(t)?;
    let job = agent.lic.export.jobs.first().filter(|j| j.kind == kind)?;
    let log = &agent.comm.export;
    if log.failures > 0 && log.next_retry.is_some_and(|r| r > t) {
        return None;
    }
    let (operation, mut subjects) = match kind {
        ExportJobKind::Request => (Operation::ExportRequest, vec![job.feature.clone()]),
        ExportJobKind::Return => (Operation::ExportReturn, vec![job.feature.clone()]),
    };
    if kind == ExportJobKind::Return {
        subjects.push(
            agent
                .lic
                .export
                .held(&job.feature)?
                .key
                .key_id()
                .to_string(),
        );
    }
    Some(Pending {
        subjects,
        ..Pending::new(operation)
    })
}

fn schedule(agent: &Agent, t: DateTime<Utc>, table: &mut super::timers::TimerTable) {
    if agent.valid_identity(t).is_none() || agent.lic.export.jobs.is_empty() {
        return;
    }
    let log = &agent.comm.export;
    let at = match log.next_retry {
        Some(r) if log.failures > 0 => r,
        _ => t,
    };
    table.set(TimerReason::ExportKey, at);
}

fn build(agent: &Agent, pending: &Pending, t: DateTime<Utc>) -> Option<RequestParts> {
    let id = agent.valid_identity(t)?;
    let feature = pending.subjects.first()?.clone();
    let body = match pending.operation {
        Operation::ExportReturn => {
            RequestBody::export_return(feature, pending.subjects.get(1)?.clone())
        }
        _ => RequestBody::export_request(feature),
    };
    Some(RequestParts {
        key: id.key.clone(),
        piid: Some(id.cert.piid),
        body,
    })
}

/// Ask for an export authorization key.
pub(crate) const EXPORT_REQUEST: OperationSpec = OperationSpec {
    kind: wire::RequestKind::ExportRequest,
    timeout_full_stop: true,
    due: |agent, t| due_job(agent, t, ExportJobKind::Request),
    schedule,
    build,
    sent: |_, _| {},
    answered: |agent, t, pending, answer| agent.on_export_answer(t, pending, answer),
    refused: |agent, t, pending, code, message| agent.on_export_refused(t, pending, code, message),
    failed: |agent, t, pending, failure| agent.on_export_failure(t, pending, failure),
};

/// Return an export authorization key.
pub(crate) const EXPORT_RETURN: OperationSpec = OperationSpec {
    kind: wire::RequestKind::ExportReturn,
    timeout_full_stop: true,
    due: |agent, t| due_job(agent, t, ExportJobKind::Return),
    schedule: |_, _, _| {}, // EXPORT_REQUEST's timer covers every job
    build,
    sent: |_, _| {},
    answered: |agent, t, pending, answer| agent.on_export_answer(t, pending, answer),
    refused: |agent, t, pending, code, message| agent.on_export_refused(t, pending, code, message),
    failed: |agent, t, pending, failure| agent.on_export_failure(t, pending, failure),
};

impl Agent {
    /// Whether export-controlled functionality is allowed now (SPEC §7): the signed flag of
    /// the identity while registered, the installed reservation in reservation mode; never in
    /// evaluation.
    pub fn export_allowed(&self, now: DateTime<Utc>) -> bool {
        let t = self.effective(now);
        match self.valid_identity(t) {
            Some(id) => id.cert.export_controlled,
            None => self.reservation_allows_export(),
        }
    }

    /// Whether this instance holds a trusted export authorization key for `feature`. Keys do
    /// not expire: a key is held until returned (or the instance deregisters).
    pub fn export_key_allowed(&self, feature: &str, _now: DateTime<Utc>) -> bool {
        self.lic.export.held(feature).is_some_and(|k| k.trusted)
    }

    /// The feature names of the trusted keys held.
    pub fn export_keys(&self) -> Vec<String> {
        self.lic
            .export
            .keys
            .iter()
            .filter(|k| k.trusted)
            .map(|k| k.key.feature().to_string())
            .collect()
    }

    /// Every key held and every request or return not yet settled, keys in the order granted
    /// then requests in the order asked (a key being returned shows as [`ExportKeyState::Returning`]).
    pub fn export_key_status(&self) -> Vec<ExportKeyStatus> {
        let export = &self.lic.export;
        let log = &self.comm.export;
        let next = |first: bool| {
            if first && log.failures > 0 {
                log.next_retry
            } else {
                None
            }
        };
        let first = export.jobs.first();
        let is_first = |kind: ExportJobKind, feature: &str| {
            first.is_some_and(|j| j.kind == kind && j.feature == feature)
        };
        let mut out: Vec<ExportKeyStatus> = export
            .keys
            .iter()
            .map(|k| {
                let feature = k.key.feature();
                let returning = export
                    .jobs
                    .iter()
                    .any(|j| j.kind == ExportJobKind::Return && j.feature == feature);
                ExportKeyStatus {
                    feature: feature.to_string(),
                    state: match (returning, k.trusted) {
                        (true, _) => ExportKeyState::Returning,
                        (false, true) => ExportKeyState::Held,
                        (false, false) => ExportKeyState::Untrusted,
                    },
                    issued: Some(k.key.issued_at()),
                    next_attempt: next(returning && is_first(ExportJobKind::Return, feature)),
                }
            })
            .collect();
        for job in export
            .jobs
            .iter()
            .filter(|j| j.kind == ExportJobKind::Request)
        {
            if out.iter().any(|k| k.feature == job.feature) {
                continue;
            }
            out.push(ExportKeyStatus {
                feature: job.feature.clone(),
                state: ExportKeyState::Requested,
                issued: None,
                next_attempt: next(is_first(ExportJobKind::Request, &job.feature)),
            });
        }
        out
    }

    /// Export keys need a registered instance, not in reservation mode (405).
    fn export_allowed_here(&self, now: DateTime<Utc>) -> Result<(), Error> {
        if self.lic.settings.subscriber {
            return Err(Error::SubscriberNode);
        }
        if self.lic.reservation.enabled || self.valid_identity(self.effective(now)).is_none() {
            return Err(Error::ExportKeysNotAvailable);
        }
        Ok(())
    }

    /// `license smart export request local <feature>`: asks the manager for an export
    /// authorization key for `feature`. Asking for a key already held or already asked for
    /// changes nothing.
    pub fn export_request(&mut self, feature: &str, now: DateTime<Utc>) -> Result<(), Error> {
        self.export_allowed_here(now)?;
        if !is_feature_name(feature) {
            return Err(Error::InvalidFeature);
        }
        let export = &self.lic.export;
        let asked = export
            .jobs
            .iter()
            .any(|j| j.kind == ExportJobKind::Request && j.feature == feature);
        if asked || export.held(feature).is_some() {
            return Ok(());
        }
        self.queue_export(ExportJobKind::Request, feature, now);
        Ok(())
    }

    /// `license smart export return local <feature>`: gives the key for `feature` back (405
    /// if none is held).
    pub fn export_return(&mut self, feature: &str, now: DateTime<Utc>) -> Result<(), Error> {
        self.export_allowed_here(now)?;
        if self.lic.export.held(feature).is_none() {
            return Err(Error::ExportKeyNotHeld(feature.to_string()));
        }
        let asked = self
            .lic
            .export
            .jobs
            .iter()
            .any(|j| j.kind == ExportJobKind::Return && j.feature == feature);
        if !asked {
            self.queue_export(ExportJobKind::Return, feature, now);
        }
        Ok(())
    }

    /// `license smart export cancel`: stops the automatic retry of failed requests and
    /// returns (003:871). A request already on the wire is still answered.
    pub fn export_cancel(&mut self, now: DateTime<Utc>) -> Result<(), Error> {
        self.export_allowed_here(now)?;
        if self.lic.export.jobs.is_empty() {
            return Ok(());
        }
        let t = self.observe(now);
        self.write_licensing(t, |lic| lic.export.jobs.clear());
        self.comm.export = Default::default();
        self.check_thresholds(t);
        Ok(())
    }

    fn queue_export(&mut self, kind: ExportJobKind, feature: &str, now: DateTime<Utc>) {
        let t = self.observe(now);
        let fresh = self.lic.export.jobs.is_empty();
        self.write_licensing(t, |lic| {
            lic.export.jobs.push(ExportJob {
                kind,
                feature: feature.to_string(),
            })
        });
        if fresh {
            self.comm.export = Default::default();
        }
        self.check_thresholds(t);
    }

    /// Removes the first job of `kind` for `feature` (it may have been cancelled already).
    fn finish_export_job(&mut self, t: DateTime<Utc>, kind: ExportJobKind, feature: &str) {
        let position = self
            .lic
            .export
            .jobs
            .iter()
            .position(|j| j.kind == kind && j.feature == feature);
        if let Some(i) = position {
            self.write_licensing(t, |lic| {
                lic.export.jobs.remove(i);
            });
        }
    }

    fn on_export_answer(
        &mut self,
        t: DateTime<Utc>,
        pending: &Pending,
        answer: Answer,
    ) -> Result<(), Failure> {
        let feature = pending.subjects.first().cloned().unwrap_or_default();
        let rejected = |why: String| Failure {
            operation: pending.operation,
            kind: super::failure::FailureKind::Rejected(AnswerError::ExportKey(why)),
        };
        match (pending.operation, answer) {
            (Operation::ExportRequest, Answer::ExportKey(key)) => {
                if *key.udi() != self.config.udi {
                    return Err(rejected("the key is for another product instance".into()));
                }
                if key.feature() != feature {
                    return Err(rejected("the key is for another feature".into()));
                }
                // Applied even if cancelled meanwhile: the manager has allocated it.
                self.write_licensing(t, |lic| {
                    lic.export.keys.retain(|k| k.key.feature() != feature);
                    lic.export.keys.push(HeldKey { key, trusted: true });
                });
                self.finish_export_job(t, ExportJobKind::Request, &feature);
                self.comm.export.succeeded(t);
                self.push(t, EventKind::ExportKeyGranted { feature });
                Ok(())
            }
            (Operation::ExportReturn, Answer::Done) => {
                self.write_licensing(t, |lic| {
                    lic.export.keys.retain(|k| k.key.feature() != feature)
                });
                self.finish_export_job(t, ExportJobKind::Return, &feature);
                self.comm.export.succeeded(t);
                self.push(t, EventKind::ExportKeyReturned { feature });
                Ok(())
            }
            _ => Err(unexpected_body(pending.operation)),
        }
    }

    /// A permanent refusal ends the job with the manager's message; other `FAILED` codes are
    /// transient (retried).
    fn on_export_refused(
        &mut self,
        t: DateTime<Utc>,
        pending: &Pending,
        code: &str,
        message: &str,
    ) -> bool {
        if !codes::is_permanent_export_refusal(code) {
            return false;
        }
        let feature = pending.subjects.first().cloned().unwrap_or_default();
        let kind = match pending.operation {
            Operation::ExportReturn => ExportJobKind::Return,
            _ => ExportJobKind::Request,
        };
        self.finish_export_job(t, kind, &feature);
        if code == codes::NOT_HELD && kind == ExportJobKind::Return {
            // The manager holds no such key for us: nothing to give back.
            self.write_licensing(t, |lic| {
                lic.export.keys.retain(|k| k.key.feature() != feature)
            });
        }
        self.comm.export = Default::default();
        self.push(
            t,
            EventKind::ExportKeyRefused {
                feature,
                code: code.to_string(),
                message: message.to_string(),
            },
        );
        true
    }

    fn on_export_failure(&mut self, t: DateTime<Utc>, pending: &Pending, failure: Failure) {
        let feature = pending.subjects.first().cloned().unwrap_or_default();
        let still_asked = !self.lic.export.jobs.is_empty();
        let failures = self.comm.export.failures.saturating_add(1);
        let next = still_asked.then(|| later(t, self.config.policy.backoff(failures)));
        self.comm.export.failed(t, failure.clone(), next);
        self.push(
            t,
            EventKind::ExportKeyFailed {
                feature,
                failure,
                next_attempt: next,
            },
        );
    }
}
