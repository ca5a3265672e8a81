//! Requests out, answers in: `poll_transmit` builds and signs the next request (at most one
//! outstanding), `handle_response` verifies the answer and hands it to the sub-machine.

use std::fmt;

use chrono::{DateTime, Utc};

use super::failure::{Failure, FailureKind, Operation};
use super::operation::{Pending, RequestParts};
use super::state::Outstanding;
use super::{Agent, EventKind, InFlight};
use crate::crypto::random_array;
use crate::udi::Uuid;
use crate::wire::{
    self, decode_response, encode_request, hex, AnswerError, Request, RequestKind, SendError,
    PROTOCOL_VERSION,
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
        if let (Some(o), Some(f)) = (&self.comm.outstanding, &self.in_flight) {
            if f.id == o.id {
                return None;
            }
        }
        let t = self.effective(now);
        let mut pending = self.comm.outstanding.as_ref().map(|o| o.pending.clone());
        let mut parts = pending.as_ref().and_then(|p| self.request_parts(p, t));
        if parts.is_none() {
            self.comm.outstanding = None;
            pending = self.due_request(t);
            parts = pending.as_ref().and_then(|p| self.request_parts(p, t));
        }
        let (Some(pending), Some(parts)) = (pending, parts) else {
            return None;
        };
        let nonce = random_array::<16>(self.config.random.as_mut());
        let t = self.observe(now);
        self.check_thresholds(t);
        let spec = pending.operation.spec();
        (spec.sent)(self, &pending);
        let Ok(nonce) = nonce else {
            // Like a send failure: the operation backs off (and says so), so the deadline
            // `poll_timeout` reports moves on and a product loop does not spin.
            self.comm.outstanding = None;
            let failure = Failure {
                operation: pending.operation,
                kind: FailureKind::Send(SendError::Send {
                    detail: "not sent: the random source failed (no nonce)".into(),
                }),
            };
            self.note_communication_failure(t, &failure);
            (spec.failed)(self, t, &pending, failure);
            self.check_thresholds(t);
            return None;
        };
        let id = self.next_id();
        let nonce = hex(&nonce);
        let settings = &self.lic.settings;
        let (hostname, ip) = match (&settings.host, settings.privacy) {
            (Some(h), false) => (Some(h.name().to_string()), Some(h.ip().to_string())),
            _ => (None, None),
        };
        let request = Request {
            kind: spec.kind,
            version: PROTOCOL_VERSION,
            nonce: nonce.clone(),
            piid: parts.piid,
            udi: self.config.udi.clone(),
            sent_at: t,
            hostname,
            ip,
            body: parts.body,
        };
        let bytes = encode_request(&request, &parts.key);
        self.comm.outstanding = Some(Outstanding { id, pending, nonce });
        self.in_flight = Some(InFlight {
            id,
            piid: parts.piid,
        });
        Some(Transmit {
            id: TransmitId(id),
            kind: request.kind,
            body: bytes,
        })
    }

    /// The first operation, in table order, with a request due at `t`.
    fn due_request(&self, t: DateTime<Utc>) -> Option<Pending> {
        Operation::ALL
            .iter()
            .filter(|op| !self.spent_at_end_of_time(**op, t))
            .find_map(|op| (op.spec().due)(self, t))
    }

    /// The request for `pending`, or `None` if it can no longer be sent.
    pub(crate) fn request_parts(
        &self,
        pending: &Pending,
        t: DateTime<Utc>,
    ) -> Option<RequestParts> {
        (pending.operation.spec().build)(self, pending, t)
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
        let Some(sent) = self.in_flight.filter(|f| f.id == id.0) else {
            return; // restored since it was sent: the re-sent request is the one to answer
        };
        let t = self.observe(now);
        self.comm.outstanding = None;
        self.in_flight = None;
        let pending = &outstanding.pending;
        let spec = pending.operation.spec();
        let verified = match result {
            Err(e) => Err(FailureKind::Send(e)),
            Ok(bytes) => self
                .verify(spec.kind, &outstanding.nonce, sent.piid, &bytes)
                .map_err(FailureKind::Rejected),
        };
        let failure = |kind| Failure {
            operation: pending.operation,
            kind,
        };
        let outcome = match verified {
            Err(kind) => Err(failure(kind)),
            Ok((answer, server_time)) => {
                self.check_skew(t, server_time);
                match answer {
                    wire::Answer::Failed { code, message }
                        if (spec.refused)(self, t, pending, &code, &message) =>
                    {
                        Ok(())
                    }
                    wire::Answer::Failed { code, message } => {
                        Err(failure(FailureKind::Manager { code, message }))
                    }
                    wire::Answer::VersionTooHigh => Err(failure(FailureKind::VersionTooHigh)),
                    answer => (spec.answered)(self, t, pending, answer),
                }
            }
        };
        match outcome {
            Ok(()) => {
                if std::mem::take(&mut self.comm.notified.failing) {
                    self.push(t, EventKind::CommunicationRestored);
                }
            }
            Err(failure) => {
                self.note_communication_failure(t, &failure);
                (spec.failed)(self, t, pending, failure);
            }
        }
        self.check_thresholds(t);
    }

    /// Raises the communication-failure event once per failing stretch (a manager's refusal
    /// is an answer, not a communication failure).
    fn note_communication_failure(&mut self, t: DateTime<Utc>, failure: &Failure) {
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
    }

    /// Parses and verifies an answer against the request sent: its kind, nonce and piid.
    fn verify(
        &self,
        kind: RequestKind,
        nonce: &str,
        piid: Option<Uuid>,
        bytes: &[u8],
    ) -> Result<(wire::Answer, DateTime<Utc>), AnswerError> {
        let parsed = decode_response(bytes, self.config.policy.max_answer_bytes)?;
        let expected = wire::Expected { kind, nonce, piid };
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
