//! The evaluation clock (SPEC §5): 90 days once per product lifetime, consumed only while
//! counting, never reset.
//!
//! Time passing alone never rewrites it (SPEC §12): it is stored as *remaining at the last
//! checkpoint* plus *counting since*, and rewritten only when counting starts or stops. How
//! much is left, and when it ran out, are derived at read time.

use chrono::{DateTime, TimeDelta, Utc};

use crate::time::last_storable;

/// Stored evaluation state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Evaluation {
    /// Left at the last checkpoint.
    pub remaining: TimeDelta,
    /// Counting since this instant, if counting.
    pub counting_since: Option<DateTime<Utc>>,
    /// When it ran out, once a checkpoint has seen it run out.
    pub expired_at: Option<DateTime<Utc>>,
}

impl Evaluation {
    pub fn new(period: TimeDelta) -> Self {
        Evaluation {
            remaining: period.max(TimeDelta::zero()),
            counting_since: None,
            expired_at: None,
        }
    }

    /// Time left at `t` when counting from `start` (the stored start, or one derived from an
    /// identity lapse the licensing part has not recorded yet).
    pub fn remaining_at(&self, start: Option<DateTime<Utc>>, t: DateTime<Utc>) -> TimeDelta {
        match start {
            Some(s) if t > s => (self.remaining - (t - s)).max(TimeDelta::zero()),
            _ => self.remaining,
        }
    }

    /// When it runs out (or ran out) if it keeps counting from `start`; `None` if that is past
    /// the last storable second (time stops there, so it never runs out: saturating to that
    /// second would call it expired with all its time left).
    pub fn runs_out_at(&self, start: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        match (self.expired_at, start) {
            (Some(at), _) => Some(at),
            (None, Some(s)) if self.remaining > TimeDelta::zero() => s
                .checked_add_signed(self.remaining)
                .filter(|at| *at <= last_storable()),
            _ => None,
        }
    }

    /// When it ran out, if it has by `t`.
    pub fn expired_by(
        &self,
        start: Option<DateTime<Utc>>,
        t: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        self.runs_out_at(start).filter(|&at| at <= t)
    }

    /// Writes a checkpoint at `t`: starts or stops counting. `start` is the effective start
    /// (stored or derived).
    pub fn checkpoint(&mut self, start: Option<DateTime<Utc>>, t: DateTime<Utc>, counting: bool) {
        if let Some(at) = self.expired_by(start, t) {
            self.expired_at = Some(at);
        }
        match (start, counting) {
            (Some(_), false) => {
                self.remaining = self.remaining_at(start, t);
                self.counting_since = None;
            }
            (None, true) => self.counting_since = Some(t),
            (Some(s), true) => self.counting_since = Some(s),
            (None, false) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(days: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap() + TimeDelta::days(days)
    }

    #[test]
    fn evaluation_counts_only_while_counting_and_resumes() {
        let mut e = Evaluation::new(TimeDelta::days(90));
        e.checkpoint(None, t(0), true);
        assert_eq!(e.remaining_at(e.counting_since, t(10)), TimeDelta::days(80));
        e.checkpoint(e.counting_since, t(10), false);
        assert_eq!(e.remaining, TimeDelta::days(80));
        assert_eq!(e.remaining_at(e.counting_since, t(50)), TimeDelta::days(80));
        e.checkpoint(None, t(50), true);
        assert_eq!(e.runs_out_at(e.counting_since), Some(t(130)));
        assert_eq!(e.expired_by(e.counting_since, t(131)), Some(t(130)));
        e.checkpoint(e.counting_since, t(200), false);
        assert_eq!(e.remaining, TimeDelta::zero());
        assert_eq!(e.expired_at, Some(t(130)));
    }

    #[test]
    fn clock_before_the_start_consumes_nothing() {
        let mut e = Evaluation::new(TimeDelta::days(90));
        e.checkpoint(None, t(10), true);
        assert_eq!(e.remaining_at(e.counting_since, t(5)), TimeDelta::days(90));
    }
}
