//! Time helpers shared by the agent, the wire protocol, the manager and the driver: the range of
//! times a persisted format stores, saturating arithmetic within it, and the RFC 3339 text form
//! the protocol and the state files use.
//!
//! chrono panics when `DateTime + TimeDelta` overflows, and times reach us from snapshots, from
//! the manager and from the product; every sum of a time and a duration goes through [`later`].
//!
//! ```
//! use chrono::{DateTime, TimeDelta, Utc};
//! use smart_agent::time;
//!
//! let t: DateTime<Utc> = "9999-12-01T00:00:00Z".parse().unwrap();
//! assert_eq!(time::later(t, TimeDelta::days(365)), time::last_storable());
//! assert_eq!(time::parse(&time::format(t)), Some(t));
//! ```

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};

/// 0001-01-01T00:00:00Z, the first second a persisted format stores.
pub const FIRST_STORABLE_SECS: i64 = -62_135_596_800;
/// 9999-12-31T23:59:59Z, the last second a persisted format stores.
pub const LAST_STORABLE_SECS: i64 = 253_402_300_799;

/// The first storable time (year 1).
pub fn first_storable() -> DateTime<Utc> {
    DateTime::from_timestamp(FIRST_STORABLE_SECS, 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The last storable time (the end of year 9999).
pub fn last_storable() -> DateTime<Utc> {
    DateTime::from_timestamp(LAST_STORABLE_SECS, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Clamps `t` to the storable range, so that nothing writes a time its own decoder refuses.
pub fn storable(t: DateTime<Utc>) -> DateTime<Utc> {
    t.clamp(first_storable(), last_storable())
}

/// Whether a whole number of seconds since the epoch is in the storable range.
pub fn is_storable_secs(secs: i64) -> bool {
    (FIRST_STORABLE_SECS..=LAST_STORABLE_SECS).contains(&secs)
}

/// `t + d`, saturating within the storable range.
pub fn later(t: DateTime<Utc>, d: TimeDelta) -> DateTime<Utc> {
    storable(t.checked_add_signed(d).unwrap_or(if d < TimeDelta::zero() {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    }))
}

/// RFC 3339 with a `Z` zone and only the fraction digits the time needs (the wire form).
pub fn format(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Parses RFC 3339 (any offset) into UTC; `None` if it is not RFC 3339.
pub fn parse(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_saturates_at_both_ends_of_the_storable_range() {
        assert_eq!(later(last_storable(), TimeDelta::days(1)), last_storable());
        assert_eq!(
            later(DateTime::<Utc>::MAX_UTC, TimeDelta::MAX),
            last_storable()
        );
        assert_eq!(
            later(first_storable(), -TimeDelta::days(1)),
            first_storable()
        );
        assert_eq!(
            later(DateTime::<Utc>::MIN_UTC, TimeDelta::MIN),
            first_storable()
        );
    }

    #[test]
    fn format_and_parse_round_trip_with_fractions() {
        let t = DateTime::from_timestamp(1_700_000_000, 123_000_000).unwrap();
        assert_eq!(format(t), "2023-11-14T22:13:20.123Z");
        assert_eq!(parse(&format(t)), Some(t));
        assert_eq!(
            parse("2023-11-15T03:43:20+05:30"),
            DateTime::from_timestamp(1_700_000_000, 0)
        );
        assert_eq!(parse("yesterday"), None);
    }
}
