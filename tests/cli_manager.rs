//! The `manager` admin commands on the harness's embedded manager (`--state DIR` being the
//! harness's directory): `account`, `pool add`, `token create|revoke`, `instances`,
//! `licenses` (the table of 004:586-590), with their effect seen by `license`. Exit codes: 0
//! done, 1 failed, 2 bad arguments.
#![cfg(feature = "manager")]

mod cli;

use std::time::Duration;

use cli::*;

const HEADER: &str = "License\tPurchased\tIn Use\tSubstitution\tBalance\n";

/// A harness directory (one tag declared at t0), so that the embedded manager exists and its
/// clock is t0.
fn harness() -> Cli {
    let cli = Cli::new();
    cli.declare(t0(), &[ENHANCED, BASIC]);
    cli
}

fn register(cli: &Cli, now: impl Now, token: &str) -> Run {
    cli.license(now, &["license", "smart", "register", "idtoken", token])
}

#[track_caller]
fn assert_usage_error(run: &Run, needle: &str) {
    run.usage_error(2, needle);
}

// ---------------------------------------------------------------------------------------------
// licenses
// ---------------------------------------------------------------------------------------------

#[test]
fn licenses_table_lists_purchased_in_use_and_balance_per_license() {
    let cli = harness();
    cli.license(t0(), &["usage", ENHANCED, "5"]).ok();
    cli.license(t0(), &["usage", BASIC, "2"]).ok();
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
    .ok();
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
    .ok();
    cli.manager(&["licenses"]).expect(
        0,
        &format!(
            "Reference Smart Account / DEFAULT\n{HEADER}\
             UC Manager Enhanced License\t10\t0\t-\t+ 10\n\
             UC Manager Basic License\t10\t0\t-\t+ 10\n"
        ),
        "",
    );
    let token = cli.token(&[]);
    register(&cli, t0(), &token).ok();
    cli.manager(&["licenses"]).expect(
        0,
        &format!(
            "Reference Smart Account / DEFAULT\n{HEADER}\
             UC Manager Enhanced License\t10\t5\t-\t+ 5\n\
             UC Manager Basic License\t10\t2\t-\t+ 8\n"
        ),
        "",
    );
}

#[test]
fn licenses_table_shows_what_a_higher_tier_lends_to_a_lower_one() {
    // No Basic licenses: Basic is served from Enhanced ("To Lower" substitution, SPEC §4).
    let cli = harness();
    cli.license(t0(), &["usage", ENHANCED, "2"]).ok();
    cli.license(t0(), &["usage", BASIC, "3"]).ok();
    cli.pool(ENHANCED, 10);
    let token = cli.token(&[]);
    register(&cli, t0(), &token).ok();
    cli.manager(&["licenses"]).expect(
        0,
        &format!(
            "Reference Smart Account / DEFAULT\n{HEADER}\
             UC Manager Enhanced License\t10\t2\tTo Lower: -3\t+ 5\n"
        ),
        "",
    );
    let usage = cli.license(t0(), &["show", "license", "usage"]);
    assert!(
        usage.ok().contains(&format!(
            "({BASIC})\n  Description: UC Manager Basic License\n  Count: 3\n  Version: 12.0\n  Status: InCompliance\n"
        )),
        "{}",
        usage.stdout
    );
}

#[test]
fn licenses_of_a_fresh_account_is_the_header_alone() {
    let cli = harness();
    cli.manager(&["licenses"]).expect(
        0,
        &format!("Reference Smart Account / DEFAULT\n{HEADER}"),
        "",
    );
}

#[test]
fn a_pool_too_small_makes_the_tag_out_of_compliance() {
    let cli = harness();
    cli.license(t0(), &["usage", ENHANCED, "12"]).ok();
    cli.pool(ENHANCED, 10);
    let token = cli.token(&[]);
    register(&cli, t0(), &token).ok();
    let out = cli.license(t0(), &["show", "license", "usage"]);
    assert!(
        out.ok().starts_with(
            "License Usage\n=============\nLicense Authorization Status: OUT OF COMPLIANCE as of Jan 4 10:00:00 2027 UTC\n"
        ),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("  Count: 12\n  Version: 12.0\n  Status: OutOfCompliance\n"),
        "{}",
        out.stdout
    );
    // More licenses: the 12-hour recheck (SPEC §4) brings it back.
    cli.pool(ENHANCED, 5);
    let tick = cli.license(t0() + hours(12), &["tick"]);
    assert!(
        tick.ok().contains(&format!(
            "Jan 4 22:00:00 2027 UTC  Entitlement {ENHANCED} changed from OutOfCompliance to InCompliance\n"
        )),
        "{}",
        tick.stdout
    );
}

// ---------------------------------------------------------------------------------------------
// pool add
// ---------------------------------------------------------------------------------------------

#[test]
fn pool_add_prints_the_new_totals_and_adds_up() {
    let cli = harness();
    cli.manager(&["pool", "add", ENHANCED, "10"]).expect(
        0,
        &format!("{ENHANCED}: purchased 10, in use 0, balance 10\n"),
        "",
    );
    cli.manager(&["pool", "add", ENHANCED, "5"]).expect(
        0,
        &format!("{ENHANCED}: purchased 15, in use 0, balance 15\n"),
        "",
    );
}

#[test]
fn pool_add_with_bad_arguments_is_exit_2_and_changes_nothing() {
    // Changed on purpose (issue 10): clap's usage errors, still exit 2.
    let cli = harness();
    for (args, needle) in [
        (
            &["pool", "add", "foo", "1"][..],
            "invalid value 'foo' for '<TAG>': an entitlement tag, regid.<yyyy-mm>.com.cisco.<Name>,<version>_<uuid>",
        ),
        (
            &["pool", "add", ENHANCED, "x"],
            "invalid value 'x' for '<COUNT>': a whole number from 0 to 4294967295",
        ),
        (&["pool", "add"], "Usage: manager pool add <TAG> <COUNT>"),
        (&["pool", "add", ENHANCED], "  <COUNT>\n"),
        (
            &["pool", "add", ENHANCED, "1", "extra"],
            "unexpected argument 'extra' found",
        ),
    ] {
        let run = cli.unchanged(|| cli.manager(args));
        assert_usage_error(&run, needle);
    }
}

#[test]
fn pool_add_past_the_largest_count_fails_with_exit_1() {
    let cli = harness();
    cli.manager(&["pool", "add", ENHANCED, "4294967295"]).ok();
    cli.unchanged(|| cli.manager(&["pool", "add", ENHANCED, "1"]))
        .expect(
            1,
            "",
            "manager pool add: the purchased count would exceed 4294967295\n",
        );
}

// ---------------------------------------------------------------------------------------------
// token create | revoke
// ---------------------------------------------------------------------------------------------

/// `manager token create | head -1`: the reader is gone before the token is printed. The
/// token stays created (the manager's state is written), and the command neither panics nor
/// fails.
#[test]
fn token_create_into_a_closed_pipe_stops_quietly_and_keeps_the_token() {
    let cli = harness();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader); // closed before the command starts: its first write fails, every time
    let before = cli.tree();
    let state = cli.dir().display().to_string();
    let output = std::process::Command::new(example("manager"))
        .args(["--state", state.as_str(), "token", "create"])
        .current_dir(cli.sandbox())
        .stdin(std::process::Stdio::null())
        .stdout(writer)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr, "");
    assert_ne!(cli.tree(), before, "the token was not stored");
}

#[test]
fn token_create_says_what_the_token_allows_and_prints_it_on_its_own_last_line() {
    let cli = harness();
    // The checkbox is ticked by default (004:279).
    let run = cli.manager(&["token", "create"]);
    let lines: Vec<&str> = run.ok().lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some(
            "Registration token for Reference Smart Account / DEFAULT, valid until \
             2027-02-03T10:00:00Z, any number of registrations, export-controlled \
             functionality allowed:"
        ),
        "{}",
        run.stdout
    );
    assert_eq!(lines.len(), 2, "{}", run.stdout);
    let token = lines[1];
    assert!(
        !token.is_empty()
            && token.len() <= 256
            && token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+/%=-".contains(c)),
        "{token:?}"
    );
    let run = cli.manager(&[
        "token",
        "create",
        "--expires",
        "7",
        "--uses",
        "2",
        "--no-export",
    ]);
    assert_eq!(
        run.ok().lines().next(),
        Some(
            "Registration token for Reference Smart Account / DEFAULT, valid until \
             2027-01-11T10:00:00Z, 2 registration(s), export-controlled functionality not allowed:"
        ),
        "{}",
        run.stdout
    );
    // --export is still accepted; the last of the two wins.
    for (args, allowed) in [
        (&["--export"][..], "allowed"),
        (&["--no-export", "--export"], "allowed"),
        (&["--export", "--no-export"], "not allowed"),
    ] {
        let run = cli.manager(&[&["token", "create"][..], args].concat());
        assert!(
            run.ok()
                .lines()
                .next()
                .unwrap_or_default()
                .ends_with(&format!(
                    "any number of registrations, export-controlled functionality {allowed}:"
                )),
            "{args:?}: {}",
            run.stdout
        );
    }
}

#[test]
fn token_create_with_bad_options_is_exit_2() {
    let cli = harness();
    for (args, needle) in [
        (
            &["token", "create", "--expires", "0"][..],
            "invalid value '0' for '--expires <DAYS>': days from 1 to 365",
        ),
        (
            &["token", "create", "--expires", "366"],
            "invalid value '366' for '--expires <DAYS>': days from 1 to 365",
        ),
        (
            &["token", "create", "--uses", "0"],
            "invalid value '0' for '--uses <N>': a number of registrations from 1 to 4294967295",
        ),
        (
            &["token", "create", "--expires"],
            "a value is required for '--expires <DAYS>' but none was supplied",
        ),
    ] {
        let run = cli.unchanged(|| cli.manager(args));
        assert_usage_error(&run, needle);
    }
}

#[test]
fn export_controlled_functionality_follows_the_token() {
    for (options, allowed) in [
        (&[][..], "Allowed"),
        (&["--export"], "Allowed"),
        (&["--no-export"], "Not Allowed"),
    ] {
        let cli = harness();
        cli.pool(ENHANCED, 10);
        let token = cli.token(options);
        register(&cli, t0(), &token).ok();
        let out = cli.license(t0(), &["show", "license", "status"]);
        assert!(
            out.ok()
                .contains(&format!("  Export-Controlled Functionality: {allowed}\n")),
            "{}",
            out.stdout
        );
    }
}

#[test]
fn a_token_for_one_registration_refuses_a_second_instance() {
    let cli = harness();
    cli.pool(ENHANCED, 10);
    let token = cli.token(&["--uses", "1"]);
    register(&cli, t0(), &token).ok();
    // Another instance on the same manager: a backup of this one restored under another UDI
    // (changed on purpose: `--udi` no longer rewrites a directory's UDI), with the manager
    // copied along.
    let other = Cli::new().with(&[
        "--udi",
        "PID:UCM,SN:2,UUID:00000000000000000000000000000002",
    ]);
    other
        .license(t0(), &["restore-backup", cli.dir().to_str().unwrap()])
        .ok();
    other
        .license(t0(), &["license", "smart", "register", "idtoken", &token])
        .fails(2, &format!("{TOKEN_MESSAGE}\n"));
}

#[test]
fn a_token_used_after_it_expires_is_refused() {
    let cli = harness();
    cli.pool(ENHANCED, 10);
    let token = cli.token(&["--expires", "7"]);
    register(&cli, t0() + days(8), &token).fails(2, &format!("{TOKEN_MESSAGE}\n"));
    let cli = harness();
    cli.pool(ENHANCED, 10);
    let token = cli.token(&["--expires", "7"]);
    register(&cli, t0() + days(6), &token).ok();
}

#[test]
fn token_revoke_prints_revoked_and_the_token_is_refused_from_then_on() {
    let cli = harness();
    cli.pool(ENHANCED, 10);
    let token = cli.token(&[]);
    cli.manager(&["token", "revoke", &token])
        .expect(0, "revoked\n", "");
    register(&cli, t0(), &token).fails(2, &format!("{TOKEN_MESSAGE}\n"));
}

#[test]
fn token_revoke_of_an_unknown_or_malformed_token_fails() {
    let cli = harness();
    cli.unchanged(|| cli.manager(&["token", "revoke", "AAAAunknownToken"]))
        .expect(1, "", "manager token revoke: no such registration token\n");
    let run = cli.unchanged(|| cli.manager(&["token", "revoke", "not a token!"]));
    assert_usage_error(
        &run,
        &format!("invalid value 'not a token!' for '<TOKEN>': {TOKEN_MESSAGE}"),
    );
    let run = cli.unchanged(|| cli.manager(&["token", "revoke"]));
    assert_usage_error(&run, "Usage: manager token revoke <TOKEN>");
}

#[test]
fn revoking_a_used_token_keeps_the_instances_it_registered() {
    let cli = harness();
    cli.license(t0(), &["usage", ENHANCED, "1"]).ok();
    cli.pool(ENHANCED, 10);
    let token = cli.token(&[]);
    register(&cli, t0(), &token).ok();
    cli.manager(&["token", "revoke", &token])
        .expect(0, "revoked\n", "");
    cli.license(t0() + days(1), &["license", "smart", "renew", "auth"])
        .expect(0, "Authorization succeeded\n", "");
}

// ---------------------------------------------------------------------------------------------
// account, instances
// ---------------------------------------------------------------------------------------------

#[test]
fn account_creates_and_selects_a_virtual_account_for_later_commands() {
    let cli = harness();
    cli.manager(&["account"])
        .expect(0, "* Reference Smart Account / DEFAULT\n", "");
    cli.manager(&[
        "account",
        "--smart",
        "BU Production Test",
        "--virtual",
        "TAC-CollabTesting",
    ])
    .expect(0, "BU Production Test / TAC-CollabTesting\n", "");
    cli.manager(&["account"]).expect(
        0,
        "* BU Production Test / TAC-CollabTesting\n  Reference Smart Account / DEFAULT\n",
        "",
    );
    // Selecting it again is not an error.
    cli.manager(&[
        "account",
        "--smart",
        "BU Production Test",
        "--virtual",
        "TAC-CollabTesting",
    ])
    .expect(0, "BU Production Test / TAC-CollabTesting\n", "");
    // A Virtual Account in the default Smart Account.
    cli.manager(&["account", "--virtual", "Lab"])
        .expect(0, "Reference Smart Account / Lab\n", "");
    cli.manager(&["licenses"])
        .expect(0, &format!("Reference Smart Account / Lab\n{HEADER}"), "");
    let run = cli.manager(&["token", "create"]);
    assert!(
        run.ok()
            .starts_with("Registration token for Reference Smart Account / Lab, "),
        "{}",
        run.stdout
    );
}

#[test]
fn account_with_an_invalid_name_fails_and_changes_nothing() {
    let cli = harness();
    cli.unchanged(|| cli.manager(&["account", "--smart", ""]))
        .expect(
            1,
            "",
            "manager account: invalid account name \"\" (1 to 100 characters, no control characters, no leading or trailing space)\n",
        );
    // Control characters are shown by the one rule (changed on purpose: Rust's Debug
    // quoting, "ü\u{7}\nnew").
    cli.unchanged(|| cli.manager(&["account", "--smart", "ü\u{7}\nnew"]))
        .expect(
            1,
            "",
            "manager account: invalid account name \"ü\\x07\\x0Anew\" (1 to 100 characters, no control characters, no leading or trailing space)\n",
        );
}

#[test]
fn instances_lists_each_registered_instance_with_its_usage() {
    let cli = harness();
    cli.manager(&["instances"])
        .expect(0, "no product instances\n", "");
    cli.license(t0(), &["usage", ENHANCED, "1"]).ok();
    cli.license(t0(), &["usage", BASIC, "2"]).ok();
    cli.pool(ENHANCED, 10);
    cli.pool(BASIC, 10);
    let token = cli.token(&[]);
    register(&cli, t0(), &token).ok();
    let udi = cli.license(t0(), &["show", "license", "udi"]);
    let udi = udi.ok().trim_start_matches("UDI: ").trim_end().to_string();
    let run = cli.manager(&["instances"]);
    let lines: Vec<&str> = run.ok().lines().collect();
    // Changed on purpose (issue 11): a header line, then one line per instance.
    assert_eq!(lines.len(), 2, "{}", run.stdout);
    assert_eq!(
        lines[0],
        "Product Instance ID\tUDI\tVirtual Account\tLast Contact\tUsage"
    );
    let lines = &lines[1..];
    let fields: Vec<&str> = lines[0].split('\t').collect();
    assert_eq!(fields.len(), 5, "{}", lines[0]);
    assert_eq!(fields[0].len(), 36, "product instance id: {}", fields[0]);
    assert_eq!(
        &fields[1..],
        [
            udi.as_str(),
            "Reference Smart Account / DEFAULT",
            "2027-01-04T10:00:00Z",
            &format!("{BASIC}=2,{ENHANCED}=1"),
        ],
        "{}",
        lines[0]
    );
}

// ---------------------------------------------------------------------------------------------
// The command line
// ---------------------------------------------------------------------------------------------

#[test]
fn an_explicit_state_directory_must_exist() {
    let cli = Cli::new();
    let run = cli.manager(&["licenses"]);
    run.expect(
        1,
        "",
        &format!(
            "manager licenses: {}: no such directory\n",
            cli.dir().display()
        ),
    );
    assert!(!cli.dir().exists());
}

#[test]
fn state_given_alone_is_a_usage_error_and_returns() {
    // It used to spin forever rotating its arguments.
    let cli = harness();
    let run = cli.manager(&[]);
    assert_eq!((run.code, run.stdout.as_str()), (2, ""), "{run:?}");
    assert!(
        run.stderr.contains("Usage: manager [OPTIONS] <COMMAND>"),
        "{}",
        run.stderr
    );
    assert!(run.elapsed < Duration::from_secs(10), "{:?}", run.elapsed);
}

#[test]
fn unknown_manager_command_is_exit_2_and_names_only_the_command() {
    let cli = harness();
    let run = cli.unchanged(|| cli.manager(&["bogus"]));
    assert_usage_error(&run, "error: unrecognized subcommand 'bogus'\n");
    let run = cli.unchanged(|| cli.manager(&["instnaces"]));
    assert_usage_error(
        &run,
        "tip: some similar subcommands exist: 'licenses', 'instances'",
    );
}

#[test]
fn help_lists_every_admin_command_with_its_options_defaults_and_exit_codes() {
    let cli = Cli::new();
    let run = cli.manager_raw(&["--help"]);
    let out = run.ok();
    for command in [
        "  serve ",
        "  account ",
        "  pool ",
        "  token ",
        "  instances ",
        "  licenses ",
        "  clock ",
        "--state <DIR>",
        "[default: ./.smart-agent/manager, created on first use]",
        "Exit status: 0 done, 1 failed (the message on stderr), 2 bad arguments",
    ] {
        assert!(out.contains(command), "{command} missing:\n{out}");
    }
    // Every option of serve with a description and its default (before: none).
    let run = cli.manager_raw(&["serve", "--help"]);
    let out = run.ok();
    for option in [
        "--listen <ADDR>",
        "--environment <ENVIRONMENT>",
        "[default: development]",
        "--virtual-clock",
        "--host <NAME>",
        "--state <DIR>",
    ] {
        assert!(out.contains(option), "{option} missing:\n{out}");
    }
    let run = cli.manager_raw(&["token", "create", "-h"]);
    assert!(run.ok().contains("[default: 30]"), "{}", run.stdout);
}

#[test]
fn help_version_and_the_state_option_work_anywhere() {
    // Before: `manager -h` and `manager --state=DIR …` were unknown commands, and `manager`
    // alone printed its usage on stdout. (A --state given twice is no longer refused: the
    // last one given counts, as for any clap option.)
    let cli = harness();
    for args in [
        &["-h"][..],
        &["--help"],
        &["help"],
        &["pool", "add", "--help"],
    ] {
        let run = cli.manager_raw(args);
        assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{run:?}");
        assert!(run.stdout.contains("Usage: manager"), "{}", run.stdout);
    }
    cli.manager_raw(&["--version"]).expect(
        0,
        &format!("manager {}\n", env!("CARGO_PKG_VERSION")),
        "",
    );
    let state = format!("--state={}", cli.dir().display());
    let first = cli.manager_raw(&[&state, "licenses"]);
    let last = cli.manager_raw(&["licenses", &state]);
    assert_eq!(first.ok(), last.ok());
    assert!(first
        .stdout
        .starts_with("Reference Smart Account / DEFAULT\n"));
    let run = cli.manager_raw(&[]);
    assert_eq!((run.code, run.stdout.as_str()), (2, ""), "{run:?}");
}

#[test]
fn serve_on_a_file_or_without_state_says_what_is_wrong() {
    let cli = Cli::new();
    let file = cli.sandbox().join("afile");
    std::fs::write(&file, "x").unwrap();
    // Before: `File exists (os error 17)`.
    cli.manager_raw(&[
        "serve",
        "--state",
        file.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ])
    .expect(
        1,
        "",
        &format!(
            "manager serve: {}: not a directory (give a new directory, or an existing manager state directory)\n",
            file.display()
        ),
    );
    let run = cli.manager_raw(&["serve", "--listen", "127.0.0.1:0"]);
    assert_usage_error(&run, "serve needs --state DIR");
}

#[test]
fn admin_commands_act_at_the_harness_time() {
    // The embedded manager's clock follows the harness's last --now.
    let cli = harness();
    cli.license(t0() + days(100), &["tick"]).ok();
    let run = cli.manager(&["token", "create", "--expires", "1"]);
    assert!(
        run.ok().contains("valid until 2027-04-15T10:00:00Z,"),
        "{}",
        run.stdout
    );
}
