//! Every duration the agent uses, in one place, with the SPEC defaults.
//!
//! Products normally keep [`Policy::default`]; tests and simulations may shorten it.

use chrono::TimeDelta;

/// Timing and size policy of the agent (SPEC §3, §4, §5, §11).
///
/// ```
/// use smart_agent::Policy;
/// let p = Policy::default();
/// assert_eq!(p.authorization_renewal.num_days(), 30);
/// assert_eq!(p.identity_renewal.num_days(), 180);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Identity renewal is due this long after registration or the last renewal (180 d, 003:219).
    pub identity_renewal: TimeDelta,
    /// Authorization renewal is due this long after the last success (30 d).
    pub authorization_renewal: TimeDelta,
    /// The grant expires this long after the last success, unless its signed not-after is
    /// earlier (90 d, 002:85).
    pub authorization_validity: TimeDelta,
    /// While out of compliance, the agent asks again this often (12 h, ours).
    pub out_of_compliance_recheck: TimeDelta,
    /// First retry after a failed renewal; doubled after each further failure (15 min).
    pub backoff_initial: TimeDelta,
    /// The longest retry interval of a failed renewal, and the interval after the deadline (24 h).
    pub backoff_max: TimeDelta,
    /// Interval between attempts of a pending registration (15 min, 004:255).
    pub registration_retry: TimeDelta,
    /// Usage changes within this window are sent as one report (60 s, ours).
    pub usage_coalesce: TimeDelta,
    /// The evaluation period, once per product lifetime (90 d).
    pub evaluation_period: TimeDelta,
    /// Evaluation warnings are raised when this much evaluation time is left (30, 7, 1 days).
    pub evaluation_warnings: Vec<TimeDelta>,
    /// A clock moved back by more than this raises a clock-changed event; a manager time further
    /// apart than this raises a clock-skew event (1 h, SPEC §11).
    pub clock_tolerance: TimeDelta,
    /// Answers larger than this are rejected before parsing (1 MiB, ours).
    pub max_answer_bytes: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            identity_renewal: TimeDelta::days(180),
            authorization_renewal: TimeDelta::days(30),
            authorization_validity: TimeDelta::days(90),
            out_of_compliance_recheck: TimeDelta::hours(12),
            backoff_initial: TimeDelta::minutes(15),
            backoff_max: TimeDelta::hours(24),
            registration_retry: TimeDelta::minutes(15),
            usage_coalesce: TimeDelta::seconds(60),
            evaluation_period: TimeDelta::days(90),
            evaluation_warnings: vec![TimeDelta::days(30), TimeDelta::days(7), TimeDelta::days(1)],
            clock_tolerance: TimeDelta::hours(1),
            max_answer_bytes: 1 << 20,
        }
    }
}

impl Policy {
    /// Checks that the policy can drive an agent: positive intervals (a zero retry interval
    /// would retry in a loop), an evaluation period a snapshot can store (at most 100 years),
    /// at most 32 warnings.
    pub fn validate(&self) -> Result<(), &'static str> {
        let positive = [
            (self.identity_renewal, "identity_renewal must be positive"),
            (
                self.authorization_renewal,
                "authorization_renewal must be positive",
            ),
            (
                self.authorization_validity,
                "authorization_validity must be positive",
            ),
            (
                self.out_of_compliance_recheck,
                "out_of_compliance_recheck must be positive",
            ),
            (self.backoff_initial, "backoff_initial must be positive"),
            (
                self.registration_retry,
                "registration_retry must be positive",
            ),
            (self.clock_tolerance, "clock_tolerance must be positive"),
        ];
        for (d, why) in positive {
            if d <= TimeDelta::zero() {
                return Err(why);
            }
        }
        if self.backoff_max < self.backoff_initial {
            return Err("backoff_max must be at least backoff_initial");
        }
        if self.usage_coalesce < TimeDelta::zero() {
            return Err("usage_coalesce must not be negative");
        }
        if self.evaluation_period < TimeDelta::zero()
            || self.evaluation_period > TimeDelta::days(366 * 100)
        {
            return Err("evaluation_period must be between 0 and 100 years");
        }
        if self.evaluation_warnings.len() > 32 {
            return Err("at most 32 evaluation warnings");
        }
        if self.max_answer_bytes == 0 {
            return Err("max_answer_bytes must be positive");
        }
        Ok(())
    }

    /// The retry interval after `failures` consecutive failed renewals (1 → 15 min, 2 → 30 min,
    /// … capped at [`Policy::backoff_max`]).
    pub fn backoff(&self, failures: u32) -> TimeDelta {
        let mut delay = self.backoff_initial;
        for _ in 1..failures.max(1) {
            match delay.checked_add(&delay) {
                Some(d) if d < self.backoff_max => delay = d,
                _ => return self.backoff_max,
            }
        }
        delay.min(self.backoff_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_15_minutes_and_caps_at_24_hours() {
        let p = Policy::default();
        let minutes: Vec<i64> = (1..=10).map(|n| p.backoff(n).num_minutes()).collect();
        assert_eq!(minutes, [15, 30, 60, 120, 240, 480, 960, 1440, 1440, 1440]);
        assert_eq!(p.backoff(u32::MAX), TimeDelta::hours(24));
    }

    #[test]
    fn policies_that_would_loop_or_not_persist_are_invalid() {
        assert_eq!(Policy::default().validate(), Ok(()));
        let zero_retry = Policy {
            backoff_initial: TimeDelta::zero(),
            ..Policy::default()
        };
        assert!(zero_retry.validate().is_err());
        let forever = Policy {
            evaluation_period: TimeDelta::days(366 * 200),
            ..Policy::default()
        };
        assert!(forever.validate().is_err());
    }
}
