//! Bounded catch-up (issue 9 item 5): a `--now` far ahead is processed in bounded time — a run
//! of identical failures is one step and a count, not one step per deadline — with the same
//! result as getting there in small steps, and the event log stays bounded. (How long it takes
//! is measured by `benches/catch_up.rs`, not asserted here.)
#![cfg(feature = "manager")]

mod cli;

use chrono::{DateTime, Datelike, TimeDelta, Utc};
use cli::*;

/// `t` moved `years` calendar years on (same month, day and time).
fn years_on(t: DateTime<Utc>, years: i32) -> DateTime<Utc> {
    t.with_year(t.year() + years).unwrap()
}

/// Registered at t0, the manager offline from t0 + 1 day.
fn registered_offline() -> Cli {
    let cli = Cli::in_memory().with(&["--udi", SEED_UDI]);
    cli.registered_with(t0(), ENHANCED, 1);
    cli.license(t0() + days(1), &["manager", "offline"])
        .expect(0, OFFLINE_LINE, "");
    cli
}

/// Declared and in use, registering while the manager is offline: pending, retried every
/// 15 minutes for ever.
fn pending_offline() -> Cli {
    let cli = Cli::in_memory().with(&["--udi", SEED_UDI]);
    cli.declare(t0(), &[ENHANCED]);
    cli.license(t0(), &["usage", ENHANCED, "1"]).ok();
    let token = cli.token(&[]);
    cli.license(t0(), &["manager", "offline"])
        .expect(0, OFFLINE_LINE, "");
    let run = cli.license(t0(), &["license", "smart", "register", "idtoken", &token]);
    assert_eq!(run.code, 2, "{run:?}");
    cli
}

/// What a directory shows at `now`: status and log.
fn shown(cli: &Cli, now: DateTime<Utc>) -> (String, String) {
    (
        cli.license(now, &["show", "license", "all"])
            .ok()
            .to_string(),
        cli.license(now, &["events"]).ok().to_string(),
    )
}

/// Steps `cli` to `end` through `steps` (each a later time).
fn step_through(cli: &Cli, steps: impl IntoIterator<Item = DateTime<Utc>>) {
    for at in steps {
        cli.license(at, &["tick"]).ok();
    }
}

#[test]
fn seven_thousand_years_offline_registered_end_where_small_steps_end_with_a_bounded_log() {
    let end = years_on(t0(), 7000);
    let jumped = registered_offline();
    jumped.license(end, &["tick"]).ok();
    let stepped = registered_offline();
    // Year by year while anything happens (the identity lapses in the first year, the
    // evaluation runs out in the second), then a century at a time.
    step_through(
        &stepped,
        (1..=10)
            .map(|y| years_on(t0(), y))
            .chain((1..=70).map(|c| years_on(t0(), 100 * c))),
    );
    assert_eq!(shown(&jumped, end), shown(&stepped, end));
    let (status, log) = shown(&jumped, end);
    assert!(
        status.contains("  Status: UNREGISTERED - REGISTRATION EXPIRED\n")
            && status.contains("  Status: EVAL EXPIRED\n"),
        "{status}"
    );
    // About 530 failed renewals, two runs that alternate, are two entries with their counts.
    assert!(log.lines().count() < 30, "{log}");
    let log_file = std::fs::read_to_string(jumped.path("events.log")).unwrap();
    assert!(log_file.len() < 8 << 10, "{} bytes", log_file.len());
}

#[test]
fn seven_thousand_years_of_a_pending_registration_are_one_run_with_its_count() {
    let end = years_on(t0(), 7000);
    let jumped = pending_offline();
    let run = jumped.license(end, &["tick"]);
    let out = run.ok();
    // 96 retries a day for 7000 years, one line each before: now a handful of lines.
    assert!(out.lines().count() < 20, "{out}");
    let stepped = pending_offline();
    step_through(&stepped, (1..=70).map(|c| years_on(t0(), 100 * c)));
    assert_eq!(shown(&jumped, end), shown(&stepped, end));
    let (status, log) = shown(&jumped, end);
    assert!(
        status.contains(&format!(
            "  Status: UNREGISTERED - REGISTRATION PENDING\n  Export-Controlled Functionality: Not Allowed\n  \
             Initial Registration: FAILED on Jan 4 10:00:00 {} UTC\n",
            end.year()
        )),
        "{status}"
    );
    // Every retry counted, on the 15-minute grid, between the evaluation's thresholds.
    let retries = (end - t0()).num_minutes() / 15 + 1;
    let counted: i64 = log
        .lines()
        .filter(|l| l.contains("Registration attempt failed"))
        .map(|l| {
            l.split("(and ")
                .nth(1)
                .and_then(|r| r.split(' ').next())
                .map_or(1, |n| n.parse::<i64>().unwrap() + 1)
        })
        .sum();
    assert_eq!(counted, retries, "{log}");
}

#[test]
fn the_last_storable_second_is_processed_and_consistent() {
    let last = at("9999-12-31T23:59:59Z");
    // A pending registration: retried once there, not for ever.
    let cli = pending_offline();
    let status = cli
        .license(last, &["show", "license", "status"])
        .ok()
        .to_string();
    assert!(
        status.contains("  Status: UNREGISTERED - REGISTRATION PENDING\n"),
        "{status}"
    );
    // An identity lapsing at that second: evaluation resumes with all its time, which time can
    // no longer consume — EVAL MODE and the time left, not EVALUATION PERIOD EXPIRED.
    let cli = Cli::in_memory();
    let start = last - TimeDelta::days(200);
    cli.declare(start, &[ENHANCED]);
    cli.license(start, &["usage", ENHANCED, "1"]).ok();
    cli.pool(ENHANCED, 10);
    cli.manager(&["clock", "set", &start.rfc3339()]).ok();
    let token = cli.token(&[]);
    cli.license(start, &["license", "smart", "register", "idtoken", &token])
        .ok();
    cli.license(start + days(1), &["manager", "offline"])
        .expect(0, OFFLINE_LINE, "");
    let status = cli
        .license(last, &["show", "license", "status"])
        .ok()
        .to_string();
    assert!(
        status.ends_with(
            "License Authorization:\n  Status: EVAL MODE\n\nEvaluation Period:\n  Evaluation Mode: In Use\n  \
             Evaluation Period Remaining: 90 days, 0 hours, 0 minutes, 0 seconds\n"
        ),
        "{status}"
    );
}

/// The issue's own check, year by year for all 7000 years (about 7000 invocations: minutes).
#[test]
#[ignore = "7000 invocations; run with --ignored"]
fn seven_thousand_years_offline_registered_end_where_year_by_year_steps_end() {
    let end = years_on(t0(), 7000);
    let jumped = registered_offline();
    jumped.license(end, &["tick"]).ok();
    let stepped = registered_offline();
    step_through(&stepped, (1..=7000).map(|y| years_on(t0(), y)));
    assert_eq!(shown(&jumped, end), shown(&stepped, end));
}
