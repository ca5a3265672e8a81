//! The Expressway export-limit governor (SPEC §7, 004:1644-1681): a cap on encrypted calls plus
//! registrations ("sessions"), with its two alarms and a low watermark.
//!
//! Sans-IO and clock-free: the product reports sessions starting and ending, and the product or
//! agent reports the three inputs that decide the limit; every call is O(1).
//!
//! # The rules
//! - The limit L is [`LIMIT`] (2500), or [`LIMIT_WEBRTC`] (2244) while WebRTC is enabled
//!   (004:1672-1676).
//! - The cap is on by default, in connected and reservation mode alike (004:1648, 1657). It is
//!   lifted only while the instance holds an export authorization key for the feature
//!   [`EXPORT_LIMIT_KEY_FEATURE`] (SPEC §7, reading 004:1681), never by the token's export flag,
//!   and never on a VCS (004:1680-1681).
//! - Once the count reaches L, new sessions are refused until it is below the low watermark
//!   L − round(L/100): 2475, or 2222 with WebRTC (004:1664-1670).
//! - While capped, the *approaching* alarm is active while the count is at least ⌈0.9 L⌉ (2250 or
//!   2020) and the *reached* alarm while new sessions are refused (004:1652).
//!
//! Every input re-applies these rules to the current count, so switching WebRTC on at 2300
//! sessions refuses new ones until fewer than 2222 are in use and raises the reached alarm once,
//! and returning the key with the count above L does the same for 2500 / 2475.
//!
//! # Alarm clear rules
//! Each alarm is raised when its condition starts to hold and cleared when it stops, so it is
//! raised once per crossing and cleared once on the way down:
//! - *approaching* clears as soon as the count falls below ⌈0.9 L⌉. The seed gives the low
//!   watermark only for the limit (004:1662-1670), not for the 90 % alarm, so none is invented.
//! - *reached* clears when admission resumes, i.e. when the count falls below the low watermark,
//!   not when it falls below L: the seed introduces the watermark "to update if the export control
//!   limit is reached or not" and says "the export limit is reached only when calls or
//!   registrations drop until 25", precisely to avoid notifications flapping between 99 % and
//!   100 % (004:1664-1668).
//! - Lifting the cap clears both; re-imposing it raises whichever hold for the current count.
//!   A change of L while an alarm stays active (WebRTC switched on at 2480) emits nothing: an alarm's
//!   numbers are those of the moment it was raised or cleared.
//!
//! Alarm changes come out of [`ExportLimit::poll_alarm`] in order; when both alarms change in one
//! call, *approaching* is raised before *reached* and *reached* is cleared before *approaching*.
//!
//! ```
//! use smart_agent::export_limit::{Admission, AlarmKind, AlarmState, ExportLimit};
//!
//! let mut governor = ExportLimit::new();
//! assert!(governor.try_start(2250).is_admitted());
//! let alarm = governor.poll_alarm().unwrap();
//! assert_eq!((alarm.kind, alarm.state), (AlarmKind::Approaching, AlarmState::Raised));
//! assert_eq!(
//!     alarm.to_string(),
//!     "Export control limit approaching: 2250 of 2500 encrypted sessions in use"
//! );
//!
//! assert!(governor.try_start(250).is_admitted()); // 2500: the limit is reached
//! assert_eq!(
//!     governor.poll_alarm().unwrap().to_string(),
//!     "Export control limit reached: 2500 of 2500 encrypted sessions in use; \
//!      new ones are refused until fewer than 2475 are in use"
//! );
//! governor.end(1);
//! assert_eq!(governor.try_start(1), Admission::RefusedAtLimit); // 2499: still refused
//! governor.end(25);
//! assert!(governor.try_start(1).is_admitted()); // 2474: admitted again
//! assert_eq!(governor.poll_alarm().unwrap().state, AlarmState::Cleared);
//!
//! // Only an export authorization key lifts the cap, and never on a VCS.
//! governor.set_export_key_held(true);
//! assert!(!governor.is_capped());
//! governor.set_vcs(true);
//! assert!(governor.is_capped());
//! ```

use std::collections::VecDeque;
use std::fmt;

/// The export control limit while WebRTC is disabled (004:1648).
pub const LIMIT: u32 = 2500;

/// The export control limit while WebRTC is enabled on Expressway-C or -E (004:1672-1674).
pub const LIMIT_WEBRTC: u32 = 2244;

/// The feature whose export authorization key lifts the cap (SPEC §7, *ours*, the seed's
/// "crypto key", 004:1681). The product or agent tells the governor whether it is held with
/// [`ExportLimit::set_export_key_held`].
pub const EXPORT_LIMIT_KEY_FEATURE: &str = "EXPY_Export_Limit_Key";

/// ⌈0.9 L⌉: the count at which the approaching alarm is raised.
const fn approaching_threshold(limit: u32) -> u32 {
    (limit * 9).div_ceil(10)
}

/// L − round(L/100), halves rounded up: admission resumes below this count.
const fn low_watermark(limit: u32) -> u32 {
    limit - (limit + 50) / 100
}

/// The export-limit governor of one Expressway (or VCS) instance.
///
/// Counts saturate: an [`end`](ExportLimit::end) without a matching start never takes the count
/// below zero, and while the cap is lifted the count saturates at `u64::MAX` (unreachable in
/// practice: it takes 2³² batches of `u32::MAX`). No sequence of calls panics.
///
/// Drain [`poll_alarm`](ExportLimit::poll_alarm) after every call, as with
/// [`Agent::poll_event`](crate::Agent::poll_event): alarms queue until they are polled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportLimit {
    count: u64,
    webrtc: bool,
    vcs: bool,
    key_held: bool,
    /// New sessions are refused (the reached alarm is active). Only ever true while capped.
    refusing: bool,
    /// The approaching alarm is active. Only ever true while capped.
    approaching: bool,
    alarms: VecDeque<ExportLimitAlarm>,
}

/// The answer to [`ExportLimit::try_start`].
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Admission {
    /// All the sessions were started and are counted.
    Admitted,
    /// Nothing was started: the limit was reached and the count has not yet fallen below the
    /// low watermark.
    RefusedAtLimit,
    /// Nothing was started: the batch would take the count above the limit.
    RefusedNoRoom {
        /// How many sessions would have been admitted (fewer than the batch).
        headroom: u64,
    },
}

impl Admission {
    /// Whether the sessions were started.
    pub fn is_admitted(self) -> bool {
        self == Admission::Admitted
    }
}

/// Which of the two export control alarms (004:1652).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AlarmKind {
    /// The count is at least 90 % of the limit (rounded up).
    Approaching,
    /// The count reached the limit; new sessions are refused until it is below the low
    /// watermark.
    Reached,
}

/// Whether an alarm was raised or cleared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AlarmState {
    /// The alarm's condition started to hold.
    Raised,
    /// The alarm's condition stopped holding.
    Cleared,
}

/// An export control alarm being raised or cleared, with the numbers at that moment.
///
/// `Display` gives the SPEC §7 text for a raised alarm (*ours*) and, for a cleared one, the
/// same numbers with "cleared" (*ours*; the seeds and SPEC give no clear texts).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExportLimitAlarm {
    /// Which alarm.
    pub kind: AlarmKind,
    /// Raised or cleared.
    pub state: AlarmState,
    /// The number of sessions in use after the call that changed the alarm.
    pub count: u64,
    /// The limit at that moment (2500 or 2244).
    pub limit: u32,
    /// The low watermark at that moment (2475 or 2222).
    pub low_watermark: u32,
}

impl fmt::Display for ExportLimitAlarm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ExportLimitAlarm {
            count: n,
            limit: l,
            low_watermark: low,
            ..
        } = *self;
        match (self.kind, self.state) {
            (AlarmKind::Approaching, AlarmState::Raised) => write!(
                f,
                "Export control limit approaching: {n} of {l} encrypted sessions in use"
            ),
            (AlarmKind::Reached, AlarmState::Raised) => write!(
                f,
                "Export control limit reached: {n} of {l} encrypted sessions in use; \
                 new ones are refused until fewer than {low} are in use"
            ),
            (AlarmKind::Approaching, AlarmState::Cleared) => write!(
                f,
                "Export control limit approaching cleared: {n} of {l} encrypted sessions in use"
            ),
            (AlarmKind::Reached, AlarmState::Cleared) => write!(
                f,
                "Export control limit reached cleared: {n} of {l} encrypted sessions in use; \
                 new ones are admitted"
            ),
        }
    }
}

impl Default for ExportLimit {
    fn default() -> Self {
        Self::new()
    }
}

impl ExportLimit {
    /// A governor with no sessions, WebRTC disabled, not a VCS, no export key: capped at 2500.
    pub fn new() -> Self {
        ExportLimit {
            count: 0,
            webrtc: false,
            vcs: false,
            key_held: false,
            refusing: false,
            approaching: false,
            alarms: VecDeque::new(),
        }
    }

    /// Asks to start `n` encrypted sessions (calls or registrations) at once.
    ///
    /// All or nothing: a batch is admitted only if all of it fits under the limit, so a call
    /// needing several encrypted legs is never half started and the count never exceeds the
    /// limit through starts. A product that wants a partial admission asks for
    /// [`headroom`](ExportLimit::headroom) first. A batch of zero is admitted and changes
    /// nothing. While the cap is lifted every batch is admitted.
    pub fn try_start(&mut self, n: u32) -> Admission {
        if n == 0 {
            return Admission::Admitted;
        }
        if let Some(headroom) = self.headroom() {
            if self.refusing {
                return Admission::RefusedAtLimit;
            }
            if u64::from(n) > headroom {
                return Admission::RefusedNoRoom { headroom };
            }
        }
        self.count = self.count.saturating_add(u64::from(n));
        self.settle();
        Admission::Admitted
    }

    /// Reports that `n` sessions ended; returns how many were counted as ended.
    ///
    /// Saturating: ends without a matching start are ignored, so the count never goes below
    /// zero and the answer is less than `n` exactly when the product ended more than it started.
    pub fn end(&mut self, n: u32) -> u32 {
        // A count beyond u32::MAX covers any n.
        let ended = u32::try_from(self.count).map_or(n, |count| count.min(n));
        self.count -= u64::from(ended);
        self.settle();
        ended
    }

    /// Enables or disables WebRTC: the limit becomes 2244 or 2500 (004:1672-1676).
    pub fn set_webrtc(&mut self, enabled: bool) {
        self.webrtc = enabled;
        self.settle();
    }

    /// Marks the instance as a VCS, which is always capped (004:1680-1681).
    pub fn set_vcs(&mut self, vcs: bool) {
        self.vcs = vcs;
        self.settle();
    }

    /// Tells whether the instance holds an export authorization key for
    /// [`EXPORT_LIMIT_KEY_FEATURE`]; while it does (and is not a VCS) the cap is lifted.
    ///
    /// The token's export-controlled flag never lifts the cap.
    pub fn set_export_key_held(&mut self, held: bool) {
        self.key_held = held;
        self.settle();
    }

    /// The number of sessions in use.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The limit that applies while capped: 2500, or 2244 with WebRTC enabled. Reported also
    /// while the cap is lifted; see [`is_capped`](ExportLimit::is_capped).
    pub fn limit(&self) -> u32 {
        if self.webrtc {
            LIMIT_WEBRTC
        } else {
            LIMIT
        }
    }

    /// The count at which the approaching alarm is raised: ⌈0.9 L⌉, 2250 or 2020.
    pub fn approaching_threshold(&self) -> u32 {
        approaching_threshold(self.limit())
    }

    /// Once the limit is reached, new sessions are admitted again only below this count:
    /// L − round(L/100), 2475 or 2222.
    pub fn low_watermark(&self) -> u32 {
        low_watermark(self.limit())
    }

    /// Whether the limit applies: always on a VCS, otherwise unless the export key is held.
    pub fn is_capped(&self) -> bool {
        self.vcs || !self.key_held
    }

    /// Whether a single new session would be admitted now.
    pub fn admitting(&self) -> bool {
        !self.refusing
    }

    /// How many more sessions would be admitted now: `None` while the cap is lifted, `Some(0)`
    /// while new sessions are refused.
    pub fn headroom(&self) -> Option<u64> {
        if !self.is_capped() {
            None
        } else if self.refusing {
            Some(0)
        } else {
            Some(u64::from(self.limit()).saturating_sub(self.count))
        }
    }

    /// Whether WebRTC is enabled.
    pub fn webrtc(&self) -> bool {
        self.webrtc
    }

    /// Whether the instance is a VCS.
    pub fn vcs(&self) -> bool {
        self.vcs
    }

    /// Whether the export authorization key for [`EXPORT_LIMIT_KEY_FEATURE`] is held.
    pub fn export_key_held(&self) -> bool {
        self.key_held
    }

    /// Whether the alarm is active now (raised and not yet cleared).
    pub fn alarm_active(&self, kind: AlarmKind) -> bool {
        match kind {
            AlarmKind::Approaching => self.approaching,
            AlarmKind::Reached => self.refusing,
        }
    }

    /// The next alarm raised or cleared, oldest first.
    #[must_use]
    pub fn poll_alarm(&mut self) -> Option<ExportLimitAlarm> {
        self.alarms.pop_front()
    }

    /// Re-applies the rules to the current count and queues the alarms that changed.
    fn settle(&mut self) {
        let capped = self.is_capped();
        let count = self.count;
        let limit = self.limit();
        let low = self.low_watermark();
        let refusing =
            capped && (count >= u64::from(limit) || (self.refusing && count >= u64::from(low)));
        let approaching = capped && count >= u64::from(self.approaching_threshold());
        let mut emit = |kind, raised: bool| {
            self.alarms.push_back(ExportLimitAlarm {
                kind,
                state: if raised {
                    AlarmState::Raised
                } else {
                    AlarmState::Cleared
                },
                count,
                limit,
                low_watermark: low,
            });
        };
        // Both alarms only ever move in the same direction in one call; the order follows
        // the thresholds: approaching (lower) rises first, reached (higher) clears first.
        if self.refusing && !refusing {
            emit(AlarmKind::Reached, false);
        }
        if self.approaching != approaching {
            emit(AlarmKind::Approaching, approaching);
        }
        if !self.refusing && refusing {
            emit(AlarmKind::Reached, true);
        }
        self.refusing = refusing;
        self.approaching = approaching;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(governor: &mut ExportLimit) -> Vec<(AlarmKind, AlarmState, u64)> {
        std::iter::from_fn(|| governor.poll_alarm())
            .map(|a| (a.kind, a.state, a.count))
            .collect()
    }

    #[test]
    fn thresholds_follow_the_spec_formulas_for_both_limits() {
        assert_eq!(approaching_threshold(LIMIT), 2250);
        assert_eq!(low_watermark(LIMIT), 2475);
        assert_eq!(approaching_threshold(LIMIT_WEBRTC), 2020);
        assert_eq!(low_watermark(LIMIT_WEBRTC), 2222);
    }

    #[test]
    fn a_new_governor_is_capped_at_2500_and_admitting() {
        let governor = ExportLimit::default();
        assert_eq!(governor, ExportLimit::new());
        assert!(governor.is_capped());
        assert!(governor.admitting());
        assert_eq!(
            (governor.count(), governor.limit(), governor.low_watermark()),
            (0, 2500, 2475)
        );
        assert_eq!(governor.headroom(), Some(2500));
    }

    #[test]
    fn a_batch_that_does_not_fit_is_refused_whole_and_changes_nothing() {
        let mut governor = ExportLimit::new();
        assert!(governor.try_start(2498).is_admitted());
        drain(&mut governor);
        let before = governor.clone();
        assert_eq!(
            governor.try_start(3),
            Admission::RefusedNoRoom { headroom: 2 }
        );
        assert_eq!(governor, before);
        assert!(governor.try_start(2).is_admitted());
        assert_eq!(governor.count(), 2500);
    }

    #[test]
    fn a_batch_of_zero_is_admitted_even_while_refusing() {
        let mut governor = ExportLimit::new();
        assert!(governor.try_start(2500).is_admitted());
        drain(&mut governor);
        let before = governor.clone();
        assert_eq!(governor.try_start(0), Admission::Admitted);
        assert_eq!(governor, before);
    }

    #[test]
    fn one_call_raising_both_alarms_raises_approaching_first() {
        let mut governor = ExportLimit::new();
        assert!(governor.try_start(2500).is_admitted());
        assert_eq!(
            drain(&mut governor),
            [
                (AlarmKind::Approaching, AlarmState::Raised, 2500),
                (AlarmKind::Reached, AlarmState::Raised, 2500)
            ]
        );
        assert_eq!(governor.end(u32::MAX), 2500);
        assert_eq!(
            drain(&mut governor),
            [
                (AlarmKind::Reached, AlarmState::Cleared, 0),
                (AlarmKind::Approaching, AlarmState::Cleared, 0)
            ]
        );
    }

    #[test]
    fn cleared_alarms_have_their_own_texts() {
        let mut governor = ExportLimit::new();
        assert!(governor.try_start(2500).is_admitted());
        governor.end(100);
        let texts: Vec<String> = std::iter::from_fn(|| governor.poll_alarm())
            .map(|a| a.to_string())
            .collect();
        assert_eq!(
            texts[2],
            "Export control limit reached cleared: 2400 of 2500 encrypted sessions in use; \
             new ones are admitted"
        );
        governor.end(200);
        assert_eq!(
            governor.poll_alarm().map(|a| a.to_string()).as_deref(),
            Some(
                "Export control limit approaching cleared: 2200 of 2500 encrypted sessions in use"
            )
        );
    }

    #[test]
    fn an_uncapped_count_saturates_instead_of_overflowing() {
        let mut governor = ExportLimit::new();
        governor.set_export_key_held(true);
        governor.count = u64::MAX - 1;
        assert!(governor.try_start(u32::MAX).is_admitted());
        assert_eq!(governor.count(), u64::MAX);
        assert_eq!(governor.headroom(), None);
        governor.set_export_key_held(false);
        assert!(!governor.admitting());
        assert_eq!(governor.headroom(), Some(0));
    }
}
