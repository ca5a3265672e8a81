//! Input at the edges (issue 9 item 6): an enormous `--lock-wait`, control characters in
//! names from the manager, a tag version with an empty part, a proxy user Basic
//! authentication cannot carry.
#![cfg(feature = "manager")]

mod cli;

use cli::*;

#[test]
fn the_largest_lock_wait_is_a_wait_without_end_not_a_panic() {
    // Before: `Instant + Duration` overflowed and the harness panicked.
    let cli = Cli::new();
    cli.declare(t0(), &[ENHANCED]);
    let run = cli.license(
        t0(),
        &[
            "--lock-wait",
            "18446744073709551615",
            "show",
            "license",
            "udi",
        ],
    );
    assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{run:?}");
}

#[test]
fn control_characters_in_names_from_the_manager_are_shown_as_hex_escapes() {
    // A pool's display name and description reach the agent in its grant; ESC, BEL, a line
    // break and a C1 control are shown as \xNN, other characters (ü) as they are.
    let cli = Cli::new().with(&["--udi", SEED_UDI]);
    cli.declare(t0(), &[ENHANCED]);
    cli.license(t0(), &["usage", ENHANCED, "1"]).ok();
    cli.manager(&[
        "pool",
        "add",
        ENHANCED,
        "10",
        "--name",
        "Red\u{1b}[31m\u{7}ü\nnew",
        "--description",
        "d\u{9b}2J",
    ])
    .ok();
    let token = cli.token(&[]);
    cli.license(t0(), &["license", "smart", "register", "idtoken", &token])
        .ok();
    let usage = cli.license(t0(), &["show", "license", "usage"]);
    let out = usage.ok();
    assert!(
        out.contains(&format!(
            "Red\\x1B[31m\\x07ü\\x0Anew ({ENHANCED})\n  Description: d\\x9B2J\n"
        )),
        "{out}"
    );
    assert!(!out.contains('\u{1b}') && !out.contains('\u{7}') && !out.contains('\u{9b}'));
    // The manager's own table follows the same rule.
    let licenses = cli.manager(&["licenses"]);
    assert!(
        licenses.ok().contains("d\\x9B2J\t10\t1\t-\t+ 9\n"),
        "{}",
        licenses.stdout
    );
    let summary = cli.license(t0(), &["show", "license", "summary"]);
    assert!(
        summary.ok().contains("  Red\\x1B[31m\\x07ü\\x0Anew"),
        "{}",
        summary.stdout
    );
}

#[test]
fn a_tag_version_with_an_empty_part_is_refused() {
    let cli = Cli::new();
    let tag = "regid.2016-07.com.cisco.UCM_Enhanced,1..0_66d0d1cf-4863-4761-91d0-d01d3eb1949a";
    cli.license(t0(), &["declare", tag])
        .expect(1, "", "Please enter a valid entitlement tag\n");
    assert!(!cli.dir().exists());
}

#[test]
fn a_proxy_user_with_a_colon_is_refused_and_nothing_written() {
    let cli = Cli::new();
    cli.declare(t0(), &[ENHANCED]);
    cli.unchanged(|| {
        cli.license(
            t0(),
            &["transport", "proxy", "proxy.example.com", "3128", "us:er", "pw"],
        )
    })
    .expect(
        1,
        "",
        "Please enter a valid HTTP/HTTPS Proxy user name and password (no ':' in the user name, no control characters)\n",
    );
}

#[test]
fn a_usage_error_naming_a_control_character_shows_it_by_the_rule_in_both_binaries() {
    // Before: clap's messages dropped BEL, ESC and DEL from what they quoted and printed a
    // line break raw (`error: unrecognized subcommand 'sho` then `w'` on a line of its own).
    let cli = Cli::new();
    cli.license_raw(&["--state", &cli.dir().display().to_string(), "sho\nw\u{7f}"])
        .usage_error(
            1,
            "error: argument 'sho\\x0Aw\\x7F' holds a control character and is not a valid command line here",
        );
    cli.manager_raw(&["token", "revoke", "ü\u{7}\nnew"])
        .usage_error(
            2,
            "error: argument 'ü\\x07\\x0Anew' holds a control character and is not a valid command line here",
        );
    assert!(
        !cli.dir().exists(),
        "a refused command makes no state directory"
    );
}

#[test]
fn a_pasted_line_break_reaches_the_command_and_a_usage_error_quotes_it_on_one_line() {
    // A code pasted across lines is accepted as one argument (SPEC §6); when clap refuses a
    // word carrying one, the quote stays on its line.
    let cli = Cli::new();
    let run = cli.license_raw(&["--state", &cli.dir().display().to_string(), "sho\nw"]);
    run.usage_error(1, "'sho\\x0Aw'");
    assert!(!run.stderr.contains("'sho\n"), "{}", run.stderr);
}
