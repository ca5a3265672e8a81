//! Deregistration (SPEC §3): local at once, then one signed best-effort request.
//!
//! The identity and grant go at once (back to evaluation if any is left); the request is sent
//! after the one in flight, if any, is answered (at most one on the wire). If it fails, the
//! event says the instance must be removed on the manager by hand; there is no retry.

use chrono::{DateTime, Utc};

use super::exchange::unexpected_body;
use super::operation::{Operation, OperationSpec, Pending, RequestParts};
use super::registration::Registration;
use super::state::Deregistration;
use super::{Agent, EventKind};
use crate::error::Error;
use crate::wire::{self, Answer, RequestBody};

/// One best-effort deregister per retired identity, sent before anything else.
pub(crate) const DEREGISTER: OperationSpec = OperationSpec {
    kind: wire::RequestKind::Deregister,
    timeout_full_stop: true,
    due: |agent, _| {
        let next = agent.comm.deregistrations.first()?;
        Some(Pending {
            key: Some(next.key.clone()),
            piid: Some(next.piid),
            subjects: next.export_keys.clone(),
            ..Pending::new(Operation::Deregister)
        })
    },
    schedule: |_, _, _| {},
    build: |_, pending, _| {
        Some(RequestParts {
            key: pending.key.clone()?,
            piid: Some(pending.piid?),
            body: RequestBody::deregister_returning(pending.subjects.clone()),
        })
    },
    sent: |agent, pending| {
        agent
            .comm
            .deregistrations
            .retain(|d| Some(d.piid) != pending.piid);
    },
    answered: |agent, t, _, answer| match answer {
        Answer::Done => {
            agent.push(t, EventKind::Deregistered);
            Ok(())
        }
        _ => Err(unexpected_body(Operation::Deregister)),
    },
    refused: super::operation::never_refused,
    // One best-effort request: no retry; the instance must be removed by hand.
    failed: |agent, t, _, failure| agent.push(t, EventKind::DeregistrationFailed { failure }),
};

impl Agent {
    /// Deregisters: the identity and grant are removed at once (back to evaluation if any is
    /// left) and one signed best-effort deregister request is sent (SPEC §3).
    pub fn deregister(&mut self, now: DateTime<Utc>) -> Result<(), Error> {
        if !self.lic.settings.subscriber {
            self.not_in_reservation_mode()?;
        }
        if self.lic.settings.subscriber || self.valid_identity(self.effective(now)).is_none() {
            return Err(Error::NotRegisteredForDeregister);
        }
        let t = self.observe(now);
        let (registration, export_keys) = self.write_licensing(t, |lic| {
            lic.job = None;
            lic.authorization = Default::default();
            // Export keys go back with the deregistration, best-effort, and are dropped here.
            let export_keys: Vec<String> = lic
                .export
                .keys
                .drain(..)
                .map(|k| k.key.key_id().to_string())
                .collect();
            lic.export.jobs.clear();
            let registration = std::mem::replace(&mut lic.registration, Registration::Unregistered);
            (registration, export_keys)
        });
        let Registration::Registered(identity) = registration else {
            return Ok(()); // unreachable: checked above at the same effective time
        };
        if identity.cert.export_controlled {
            self.push(t, EventKind::ExportControlNotAllowed);
        }
        // Sent after the request in flight, if any, is answered: at most one on the wire.
        self.comm.deregistrations.push(Deregistration {
            piid: identity.cert.piid,
            key: identity.key,
            export_keys,
        });
        self.comm.export = Default::default();
        self.comm.register = Default::default();
        self.comm.renew_id = Default::default();
        self.comm.authorize = Default::default();
        self.comm.usage_dirty_since = None;
        self.check_thresholds(t);
        Ok(())
    }
}
