//! Requests out, answers in: `poll_transmit` builds and signs the next request (at most one
//! outstanding), `handle_response` verifies the answer and hands it to the sub-machine.

use std::fmt;

use base64::Engine as _;
use chrono::{DateTime, Utc};

use super::failure::{Failure, FailureKind, Operation};
use super::state::{Outstanding, PendingOp};
use super::{Agent, EventKind};
use crate::crypto::{random_array, DeviceKey, B64};
use crate::udi::Uuid;
use crate::wire::{
    self, decode_response, encode_request, hex, AnswerError, AuthorizeBody, RegisterBody, Request,
    RequestBody, RequestKind, SendError, UsageLine, PROTOCOL_VERSION,
};

/// Identifies one transmission; answer it with [`Agent::handle_response`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransmitId(pub u64);

/// A signed request to POST to the manager.
#[derive(Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Pass this back with the answer.
    pub id: TransmitId,
    /// What the request asks.
    pub kind: RequestKind,
    /// The XML document to send. It may contain the registration token: never log it.
    pub body: Vec<u8>,
}

impl fmt::Debug for Transmit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transmit")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl PendingOp {
    fn kind(&self) -> RequestKind {
        match self {
            PendingOp::Register { .. } => RequestKind::Register,
            PendingOp::RenewId => RequestKind::RenewId,
            PendingOp::Authorize { .. } => RequestKind::Authorize,
            PendingOp::Deregister { .. } => RequestKind::Deregister,
        }
    }

    fn operation(&self) -> Operation {
        match self {
            PendingOp::Register { .. } => Operation::Register,
            PendingOp::RenewId => Operation::RenewId,
            PendingOp::Authorize { .. } => Operation::RenewAuth,
            PendingOp::Deregister { .. } => Operation::Deregister,
        }
    }
}

/// A failure for an answer whose body does not fit the request.
pub(crate) fn unexpected_body(operation: Operation) -> Failure {
    Failure {
        operation,
        kind: FailureKind::Rejected(AnswerError::Malformed("unexpected answer body".into())),
    }
}

impl Agent {
    /// The next request to send, if one is due at `now` and none is awaiting its answer.
    /// A request restored from a snapshot is re-sent with a fresh nonce; one that can no
    /// longer be built (its identity lapsed or was dropped, its registration was cancelled) is
    /// abandoned for whatever is due instead.
    #[must_use]
    pub fn poll_transmit(&mut self, now: DateTime<Utc>) -> Option<Transmit> {
        if let Some(o) = &self.comm.outstanding {
            if self.in_flight == Some(o.id) {
                return None;
            }
        }
        let t = self.effective(now);
        let mut op = self.comm.outstanding.as_ref().map(|o| o.op.clone());
        let mut parts = op.as_ref().and_then(|op| self.request_parts(op, t));
        if parts.is_none() {
            self.comm.outstanding = None;
            op = self.due_operation(t);
            parts = op.as_ref().and_then(|op| self.request_parts(op, t));
        }
        let (Some(op), Some((key, piid, body))) = (op, parts) else {
            return None;
        };
        let nonce: [u8; 16] = random_array(self.config.random.as_mut()).ok()?;
        let t = self.observe(now);
        self.check_thresholds(t);
        match &op {
            PendingOp::Authorize { sequence, .. } => {
                self.comm.usage_sequence = self.comm.usage_sequence.max(*sequence);
                self.comm.usage_dirty_since = None;
                self.comm.authorize.requested = false;
            }
            PendingOp::RenewId => self.comm.renew_id.requested = false,
            PendingOp::Deregister { piid, .. } => {
                self.comm.deregistrations.retain(|(p, _)| p != piid);
            }
            PendingOp::Register { .. } => {}
        }
        let id = self.next_id();
        let nonce = hex(&nonce);
        let settings = &self.lic.settings;
        let (hostname, ip) = match (&settings.host, settings.privacy) {
            (Some(h), false) => (Some(h.name().to_string()), Some(h.ip().to_string())),
            _ => (None, None),
        };
        let request = Request {
            kind: op.kind(),
            version: PROTOCOL_VERSION,
            nonce: nonce.clone(),
            piid,
            udi: self.config.udi.clone(),
            sent_at: t,
            hostname,
            ip,
            body,
        };
        let bytes = encode_request(&request, &key);
        self.comm.outstanding = Some(Outstanding { id, op, nonce });
        self.in_flight = Some(id);
        Some(Transmit {
            id: TransmitId(id),
            kind: request.kind,
            body: bytes,
        })
    }

    /// The highest-priority operation due at `t`: deregistrations, then registration, identity
    /// renewal, authorization.
    fn due_operation(&self, t: DateTime<Utc>) -> Option<PendingOp> {
        if let Some((piid, key)) = self.comm.deregistrations.first() {
            return Some(PendingOp::Deregister {
                piid: *piid,
                key: key.clone(),
            });
        }
        if let Some(job) = &self.lic.job {
            if self.comm.register.next_retry.is_none_or(|r| r <= t) {
                return Some(PendingOp::Register {
                    key: job.key.clone(),
                });
            }
        }
        if self.identity_renewal_due(t).is_some_and(|due| due <= t) {
            return Some(PendingOp::RenewId);
        }
        if self.authorization_due(t).is_some_and(|(due, _)| due <= t) {
            return Some(PendingOp::Authorize {
                sequence: self.comm.usage_sequence.wrapping_add(1),
                usage: self
                    .lic
                    .usage
                    .iter()
                    .map(|(tag, count)| UsageLine {
                        tag: tag.to_string(),
                        count: *count,
                    })
                    .collect(),
            });
        }
        None
    }

    /// The signing key, piid and body for `op`, or `None` if it can no longer be sent.
    fn request_parts(
        &self,
        op: &PendingOp,
        t: DateTime<Utc>,
    ) -> Option<(DeviceKey, Option<Uuid>, RequestBody)> {
        match op {
            PendingOp::Register { key } => {
                let job = self.lic.job.as_ref().filter(|job| job.key == *key)?;
                let body = RequestBody::register(RegisterBody {
                    token: job.token.expose().to_string(),
                    public_key: B64.encode(job.key.public_key()),
                    force: job.force,
                });
                Some((job.key.clone(), None, body))
            }
            PendingOp::RenewId => {
                let id = self.valid_identity(t)?;
                Some((id.key.clone(), Some(id.cert.piid), RequestBody::renew_id()))
            }
            PendingOp::Authorize { sequence, usage } => {
                let id = self.valid_identity(t)?;
                let body = RequestBody::authorize(AuthorizeBody {
                    sequence: *sequence,
                    usage: usage.clone(),
                });
                Some((id.key.clone(), Some(id.cert.piid), body))
            }
            PendingOp::Deregister { piid, key } => {
                Some((key.clone(), Some(*piid), RequestBody::deregister()))
            }
        }
    }

    /// Feeds back the answer to a [`Transmit`] (or why there is none). An id that is not the
    /// outstanding request's is ignored without recording anything.
    pub fn handle_response(
        &mut self,
        id: TransmitId,
        result: Result<Vec<u8>, SendError>,
        now: DateTime<Utc>,
    ) {
        let Some(outstanding) = self.comm.outstanding.clone().filter(|o| o.id == id.0) else {
            return;
        };
        if self.in_flight != Some(id.0) {
            return; // restored since it was sent: the re-sent request is the one to answer
        }
        let t = self.observe(now);
        self.comm.outstanding = None;
        self.in_flight = None;
        let operation = outstanding.op.operation();
        let verified = match result {
            Err(e) => Err(FailureKind::Send(e)),
            Ok(bytes) => self
                .verify(&outstanding, &bytes)
                .map_err(FailureKind::Rejected),
        };
        let outcome = match verified {
            Err(kind) => Err(Failure { operation, kind }),
            Ok((answer, server_time)) => {
                self.check_skew(t, server_time);
                self.apply(t, &outstanding.op, answer)
            }
        };
        match outcome {
            Ok(()) => {
                if std::mem::take(&mut self.comm.notified.failing) {
                    self.push(t, EventKind::CommunicationRestored);
                }
            }
            Err(failure) => self.on_failure(t, &outstanding.op, failure),
        }
        self.check_thresholds(t);
    }

    /// Hands a verified answer to the sub-machine of its request.
    fn apply(
        &mut self,
        t: DateTime<Utc>,
        op: &PendingOp,
        answer: wire::Answer,
    ) -> Result<(), Failure> {
        let operation = op.operation();
        match (op, answer) {
            (PendingOp::Register { key }, wire::Answer::Failed { code, .. })
                if code == wire::codes::TOKEN_INVALID =>
            {
                self.on_token_refused(t, key);
                Ok(())
            }
            (_, wire::Answer::Failed { code, message }) => Err(Failure {
                operation,
                kind: FailureKind::Manager { code, message },
            }),
            (_, wire::Answer::VersionTooHigh) => Err(Failure {
                operation,
                kind: FailureKind::VersionTooHigh,
            }),
            (PendingOp::Register { key }, answer) => self.on_register_answer(t, key, answer),
            (PendingOp::RenewId, answer) => self.on_renew_id_answer(t, answer),
            (PendingOp::Authorize { sequence, .. }, answer) => {
                self.on_authorize_answer(t, *sequence, answer)
            }
            (PendingOp::Deregister { .. }, wire::Answer::Done) => {
                self.push(t, EventKind::Deregistered);
                Ok(())
            }
            (PendingOp::Deregister { .. }, _) => Err(unexpected_body(operation)),
        }
    }

    fn on_failure(&mut self, t: DateTime<Utc>, op: &PendingOp, failure: Failure) {
        let communication = !matches!(
            failure.kind,
            FailureKind::Manager { .. } | FailureKind::TokenRefused | FailureKind::VersionTooHigh
        );
        if communication && !self.comm.notified.failing {
            self.comm.notified.failing = true;
            self.push(
                t,
                EventKind::CommunicationFailure {
                    failure: failure.clone(),
                },
            );
        }
        match op {
            PendingOp::Register { .. } => self.on_register_failure(t, failure),
            PendingOp::RenewId => self.on_renew_id_failure(t, failure),
            PendingOp::Authorize { .. } => self.on_authorize_failure(t, failure),
            // One best-effort request: no retry; the instance must be removed by hand.
            PendingOp::Deregister { .. } => {
                self.push(t, EventKind::DeregistrationFailed { failure })
            }
        }
    }

    /// Parses and verifies an answer against the outstanding request.
    fn verify(
        &self,
        outstanding: &Outstanding,
        bytes: &[u8],
    ) -> Result<(wire::Answer, DateTime<Utc>), AnswerError> {
        let parsed = decode_response(bytes, self.config.policy.max_answer_bytes)?;
        let piid = match &outstanding.op {
            PendingOp::Register { .. } => None,
            PendingOp::Deregister { piid, .. } => Some(*piid),
            PendingOp::RenewId | PendingOp::Authorize { .. } => match &self.lic.registration {
                super::registration::Registration::Registered(id) => Some(id.cert.piid),
                _ => None,
            },
        };
        let expected = wire::Expected {
            kind: outstanding.op.kind(),
            nonce: &outstanding.nonce,
            piid,
        };
        wire::verify_response(
            &parsed,
            &self.config.trust_anchors,
            self.config.environment,
            &expected,
        )
    }

    /// The manager's signed time only feeds a clock-skew event (SPEC §11).
    fn check_skew(&mut self, t: DateTime<Utc>, server_time: DateTime<Utc>) {
        let apart = (server_time - t).abs() > self.config.policy.clock_tolerance;
        if apart && !self.comm.notified.skew {
            self.push(
                t,
                EventKind::ClockSkew {
                    manager_time: server_time,
                    local_time: t,
                },
            );
        }
        self.comm.notified.skew = apart;
    }
}
