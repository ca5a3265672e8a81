//! Golden tests: `show license all | status | summary | usage | udi` byte for byte against the
//! hand-written files of `tests/cli/golden/` (from `../shared/layouts/` with the substitutions
//! its README lists), for the seed's situation (002: two tags in compliance, four Init), and
//! the evaluation, pending and failing-renewal layouts replayed in virtual time.
#![cfg(feature = "manager")]

mod cli;

use cli::*;

/// 002:77, the registration; 002:79/82, the manual authorization; just after, the `show`s.
const REGISTERED_AT: &str = "2018-01-26T15:11:23+05:30";
const AUTHORIZED_AT: &str = "2018-01-26T15:12:59+05:30";
const SHOWN_AT: &str = "2018-01-26T15:13:00+05:30";

/// The seed's situation, replayed as a person would: the six tags of 002:62-67 declared,
/// Enhanced 5 and Basic 2 in use, the seed's accounts and display names on the embedded
/// manager, a token that allows export control, register, then `renew auth` 96 s later.
fn seed_situation() -> Cli {
    let cli = Cli::new().with(&["--tz", "IST=+05:30", "--udi", SEED_UDI]);
    for tag in SEED_TAGS {
        cli.license(REGISTERED_AT, &["declare", tag])
            .expect(0, &declared_line(tag), "");
    }
    cli.license(REGISTERED_AT, &["usage", ENHANCED, "5"])
        .expect(0, &usage_line(ENHANCED, 5), "");
    cli.license(REGISTERED_AT, &["usage", BASIC, "2"])
        .expect(0, &usage_line(BASIC, 2), "");
    cli.manager(&[
        "account",
        "--smart",
        "BU Production Test",
        "--virtual",
        "TAC-CollabTesting",
    ])
    .expect(0, "BU Production Test / TAC-CollabTesting\n", "");
    cli.manager(&[
        "pool",
        "add",
        ENHANCED,
        "10",
        "--name",
        "UC Manager Enhanced License (12.x)",
        "--description",
        "UC Manager Enhanced License",
    ])
    .expect(
        0,
        &format!("{ENHANCED}: purchased 10, in use 0, balance 10\n"),
        "",
    );
    cli.manager(&[
        "pool",
        "add",
        BASIC,
        "10",
        "--name",
        "UC Manager Basic License (12.x)",
        "--description",
        "UC Manager Basic License",
    ])
    .expect(
        0,
        &format!("{BASIC}: purchased 10, in use 0, balance 10\n"),
        "",
    );
    let token = cli.token(&["--export"]);
    cli.license(
        REGISTERED_AT,
        &["license", "smart", "register", "idtoken", &token],
    )
    .expect(
        0,
        &format!(
            "Registration succeeded (Smart Account: BU Production Test, Virtual Account: TAC-CollabTesting)\n\
             Authorization succeeded\n\
             Entitlement {ENHANCED} changed from Waiting to InCompliance\n\
             Entitlement {BASIC} changed from Waiting to InCompliance\n"
        ),
        "",
    );
    cli.license(AUTHORIZED_AT, &["license", "smart", "renew", "auth"])
        .expect(0, "Authorization succeeded\n", "");
    cli
}

#[test]
fn show_license_all_prints_the_seed_layout_with_our_exact_durations() {
    let cli = seed_situation();
    cli.license(SHOWN_AT, &["show", "license", "all"]).expect(
        0,
        &golden("show-license-all.registered.txt"),
        "",
    );
}

#[test]
fn show_license_status_prints_the_seed_layout_with_our_exact_durations() {
    let cli = seed_situation();
    cli.license(SHOWN_AT, &["show", "license", "status"])
        .expect(0, &golden("show-license-status.registered.txt"), "");
}

#[test]
fn show_license_summary_prints_the_seed_summary_with_the_table_columns_of_the_layout() {
    let cli = seed_situation();
    cli.license(SHOWN_AT, &["show", "license", "summary"])
        .expect(0, &golden("show-license-summary.registered.txt"), "");
}

#[test]
fn show_license_usage_prints_display_names_from_the_grant_and_null_for_init_tags() {
    let cli = seed_situation();
    cli.license(SHOWN_AT, &["show", "license", "usage"]).expect(
        0,
        &golden("show-license-usage.registered.txt"),
        "",
    );
}

#[test]
fn show_license_udi_prints_the_one_udi_line() {
    let cli = seed_situation();
    cli.license(SHOWN_AT, &["show", "license", "udi"]).expect(
        0,
        &golden("show-license-udi.txt"),
        "",
    );
}

#[test]
fn showing_twice_at_the_same_time_prints_the_same_and_writes_nothing() {
    // A `show` is accepted (exit 0), so the catch-up is written; at the same time as the last
    // command there is nothing to catch up, and showing twice gives the same bytes.
    let cli = seed_situation();
    let first = cli.license(SHOWN_AT, &["show", "license", "all"]);
    first.ok();
    let second = cli.unchanged(|| cli.license(SHOWN_AT, &["show", "license", "all"]));
    assert_eq!(first.stdout, second.stdout);
}

#[test]
fn show_license_all_is_status_then_usage_then_product_information_and_agent_version() {
    // The layout rule of `all`, checked against the other hand-written files.
    let composed = format!(
        "Smart Licensing Status\n=======================\n{}\n{}\nProduct Information\n===================\n{}\nAgent Version\n=============\nSmart Agent for Licensing: {}\n",
        golden("show-license-status.registered.txt"),
        golden("show-license-usage.registered.txt"),
        golden("show-license-udi.txt"),
        env!("CARGO_PKG_VERSION"),
    );
    assert_eq!(composed, golden("show-license-all.registered.txt"));
}

// ---------------------------------------------------------------------------------------------
// Expressway vocabulary (SPEC §3/§4, 004:227-240)
// ---------------------------------------------------------------------------------------------

#[test]
fn expressway_status_says_registered_and_authorized_in_its_own_words() {
    let cli = seed_situation();
    cli.license(
        SHOWN_AT,
        &["--product", "expressway", "show", "license", "status"],
    )
    .expect(
        0,
        &golden("show-license-status.registered.expressway.txt"),
        "",
    );
}

#[test]
fn expressway_usage_lists_only_the_tags_in_use_as_authorized() {
    let cli = seed_situation();
    cli.license(
        SHOWN_AT,
        &["--product", "expressway", "show", "license", "usage"],
    )
    .expect(
        0,
        &golden("show-license-usage.registered.expressway.txt"),
        "",
    );
}

#[test]
fn expressway_show_license_all_combines_its_own_status_and_usage() {
    let cli = seed_situation();
    let expected = format!(
        "Smart Licensing Status\n=======================\n{}\n{}\nProduct Information\n===================\n{}\nAgent Version\n=============\nSmart Agent for Licensing: 0.1.0\n",
        golden("show-license-status.registered.expressway.txt"),
        golden("show-license-usage.registered.expressway.txt"),
        golden("show-license-udi.txt"),
    );
    cli.license(
        SHOWN_AT,
        &["--product", "expressway", "show", "license", "all"],
    )
    .expect(0, &expected, "");
}

#[test]
fn expressway_summary_uses_its_words_and_leaves_out_unused_tags() {
    let cli = seed_situation();
    let run = cli.license(
        SHOWN_AT,
        &["--product", "expressway", "show", "license", "summary"],
    );
    let out = run.ok();
    assert!(out.contains("\n  Status: Registered\n"), "{out}");
    assert!(out.contains("\n  Status: Authorized\n"), "{out}");
    for unused in [CUWL, ENHANCED_PLUS, ESSENTIAL, TP_ROOM] {
        assert!(!out.contains(unused), "{unused} listed:\n{out}");
    }
    assert!(
        out.contains(&format!(
            "  UC Manager Enhanced Licens  {ENHANCED:<87}5            Authorized\n"
        )),
        "{out}"
    );
    assert!(
        !out.contains("InCompliance") && !out.contains("Init"),
        "{out}"
    );
}

// ---------------------------------------------------------------------------------------------
// States the seed does not show (layouts ours)
// ---------------------------------------------------------------------------------------------

#[test]
fn evaluation_layout_counts_down_from_the_first_usage() {
    let cli = Cli::new();
    cli.declare(t0(), &[ENHANCED]);
    cli.license(t0(), &["usage", ENHANCED, "1"])
        .expect(0, &usage_line(ENHANCED, 1), "");
    cli.license(t0() + days(5) + seconds(1), &["show", "license", "status"])
        .expect(0, &golden("show-license-status.eval.txt"), "");
}

/// Usage since 2027-02-02 14:27:00 UTC, the manager offline, a first registration attempt at
/// 09:45 on Mar 3: at 10:15 the second attempt has failed too.
fn pending_registration() -> Cli {
    let cli = Cli::new();
    let start = at("2027-02-02T14:27:00Z");
    cli.declare(start, &[ENHANCED]);
    cli.license(start, &["usage", ENHANCED, "1"])
        .expect(0, &usage_line(ENHANCED, 1), "");
    cli.pool(ENHANCED, 10);
    let token = cli.token(&[]);
    cli.license(start, &["manager", "offline"])
        .expect(0, OFFLINE_LINE, "");
    cli.license(
        "2027-03-03T09:45:00Z",
        &["license", "smart", "register", "idtoken", &token],
    )
    .expect(
        2,
        &format!(
            "Communication with Smart Software Licensing failed: {SEND_ERROR} ({OFFLINE_DETAIL})\n\
             Registration attempt failed, will retry: {SEND_ERROR} ({OFFLINE_DETAIL})  \
             [SmartLicensingRegistrationFailure]\n"
        ),
        &format!("{SEND_ERROR}\n"),
    );
    cli
}

#[test]
fn pending_layout_shows_the_latest_failed_attempt_and_the_next_one() {
    let cli = pending_registration();
    cli.license("2027-03-03T10:15:00Z", &["show", "license", "status"])
        .expect(0, &golden("show-license-status.pending.txt"), "");
}

#[test]
fn pending_registration_is_retried_15_minutes_after_each_failure() {
    let cli = pending_registration();
    let out = cli
        .license("2027-03-03T09:45:00Z", &["show", "license", "status"])
        .ok()
        .to_string();
    assert!(
        out.contains(&format!(
            "  Status: UNREGISTERED - REGISTRATION PENDING\n  Export-Controlled Functionality: Not Allowed\n  \
             Initial Registration: FAILED on Mar 3 09:45:00 2027 UTC\n    Failure reason: {SEND_ERROR}\n  \
             Next Registration Attempt: Mar 3 10:00:00 2027 UTC\n\n"
        )),
        "{out}"
    );
    let out = cli
        .license("2027-03-03T10:29:59Z", &["show", "license", "summary"])
        .ok()
        .to_string();
    assert!(
        out.starts_with(
            "Smart Licensing is ENABLED.\n\nRegistration:\n  Status: UNREGISTERED - REGISTRATION PENDING\n  \
             Next Registration Attempt: Mar 3 10:30:00 2027 UTC\n\nLicense Authorization:\n  Status: EVAL MODE\n"
        ),
        "{out}"
    );
}

#[test]
fn failing_renewal_layout_backs_off_15_30_60_120_minutes_then_4_hours() {
    let cli = Cli::new();
    let registered = at("2027-01-26T15:11:23Z");
    cli.declare(registered, &[ENHANCED]);
    cli.manager(&[
        "account",
        "--smart",
        "BU Production Test",
        "--virtual",
        "TAC-CollabTesting",
    ])
    .ok();
    cli.pool(ENHANCED, 10);
    let token = cli.token(&["--export"]);
    // An empty authorization at once, ...
    cli.license(
        registered,
        &["license", "smart", "register", "idtoken", &token],
    )
    .expect(
        0,
        "Registration succeeded (Smart Account: BU Production Test, Virtual Account: TAC-CollabTesting)\n\
         Authorization succeeded\n",
        "",
    );
    // ... usage 36 s later, reported after the 60 s coalescing window.
    cli.license("2027-01-26T15:11:59Z", &["usage", ENHANCED, "1"])
        .expect(0, &usage_reported_line(ENHANCED, 1), "");
    cli.license("2027-01-26T15:12:59Z", &["tick"]).expect(
        0,
        &format!(
            "Jan 26 15:12:59 2027 UTC  Authorization succeeded\n\
             Jan 26 15:12:59 2027 UTC  Entitlement {ENHANCED} changed from Waiting to InCompliance\n"
        ),
        "",
    );
    cli.license("2027-02-20T00:00:00Z", &["manager", "offline"])
        .expect(0, OFFLINE_LINE, "");
    cli.license("2027-02-25T18:57:59Z", &["show", "license", "status"])
        .expect(0, &golden("show-license-status.renewal-failing.txt"), "");
}
