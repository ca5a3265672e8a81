//! The one seam for licensing writes (SPEC §12). The licensing part is readable everywhere in
//! the agent but writable only through [`Agent::write_licensing`], which first records what
//! the passage of time made true ([`Agent::record_lapse`]) and afterwards starts or stops the
//! evaluation clock as the new state says ([`Agent::checkpoint_evaluation`]), so that no write
//! can forget either.

use std::ops::Deref;

use chrono::{DateTime, Utc};

use super::registration::Registration;
use super::state::Licensing;
use super::Agent;

/// The licensing part behind its write seam: `Deref` for reading, no `DerefMut`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Guarded(Licensing);

impl Guarded {
    /// Wraps a licensing part just built or decoded.
    pub fn new(lic: Licensing) -> Guarded {
        Guarded(lic)
    }
}

impl Deref for Guarded {
    type Target = Licensing;
    fn deref(&self) -> &Licensing {
        &self.0
    }
}

impl Agent {
    /// Writes the licensing part at effective time `t`: `record_lapse`, then `edit`, then
    /// `checkpoint_evaluation`. Returns what `edit` returns.
    pub(crate) fn write_licensing<R>(
        &mut self,
        t: DateTime<Utc>,
        edit: impl FnOnce(&mut Licensing) -> R,
    ) -> R {
        self.record_lapse(t);
        let result = edit(&mut self.lic.0);
        self.checkpoint_evaluation(t);
        result
    }

    /// Before a write at `t`: raises due notifications and records an identity lapse the
    /// licensing part has only derived so far (evaluation counting from its not-after), so
    /// the write starts from the truth.
    fn record_lapse(&mut self, t: DateTime<Utc>) {
        self.check_thresholds(t);
        if let Registration::Registered(id) = &self.lic.registration {
            let at = id.cert.not_after;
            if at <= t {
                let since = self.eval_start(t);
                let lic = &mut self.lic.0;
                lic.evaluation.counting_since = since;
                lic.registration = Registration::Expired { at };
                lic.authorization = Default::default();
                self.comm.renew_id = Default::default();
                self.comm.authorize = Default::default();
            }
        }
    }

    /// After a write at `t`: starts or stops the evaluation clock as the new state says
    /// (SPEC §5); a no-op when counting neither starts nor stops.
    fn checkpoint_evaluation(&mut self, t: DateTime<Utc>) {
        let start = self.eval_start(t);
        let counting = self.eval_should_count(t);
        self.lic.0.evaluation.checkpoint(start, t, counting);
    }
}
