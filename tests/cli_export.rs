//! Export control through the built binaries (issue 13 items 3 and 4): `license smart export
//! request | return local <feature>` and `cancel` (003:825-827), the export key section of
//! `show license all`, and Expressway's export-limit governor driven by `session start | end
//! [n]`, `webrtc on|off`, `vcs on|off` — each alarm at its threshold with SPEC §7's text, in
//! the event log, and the state kept across invocations in `DIR/export-limit`.
#![cfg(feature = "manager")]

mod cli;

use cli::*;

const FEATURE: &str = "CUCM_Export_Restricted_Authorization_Key";
const NOT_REGISTERED: &str =
    "Export authorization keys are available only to a registered product instance\n";

fn expressway() -> Cli {
    Cli::new().with(&["--product", "expressway"])
}

fn start(cli: &Cli, n: u32) -> Run {
    cli.license(t0(), &["session", "start", &n.to_string()])
}

fn end(cli: &Cli, n: u32) -> Run {
    cli.license(t0(), &["session", "end", &n.to_string()])
}

fn approaching(n: u32, l: u32) -> String {
    format!("Export control limit approaching: {n} of {l} encrypted sessions in use\n")
}

fn reached(n: u32, l: u32, low: u32) -> String {
    format!("Export control limit reached: {n} of {l} encrypted sessions in use; new ones are refused until fewer than {low} are in use\n")
}

fn started(n: u32, count: u32, l: u32) -> String {
    format!(
        "Started {n} encrypted session{}: {count} of {l} in use.\n",
        if n == 1 { "" } else { "s" }
    )
}

fn ended(n: u32, count: u32, l: u32) -> String {
    format!(
        "Ended {n} encrypted session{}: {count} of {l} in use.\n",
        if n == 1 { "" } else { "s" }
    )
}

fn at_limit(count: u32, l: u32, low: u32) -> String {
    format!("Refused: the export control limit is reached: {count} of {l} encrypted sessions in use; new ones are refused until fewer than {low} are in use\n")
}

/// The hysteresis at the limit, from `in_use` sessions (at or above `limit`): a new one is
/// refused with nothing written; ending sessions down to `low` keeps refusing; ending one more
/// clears the alarm and admits them again.
#[track_caller]
fn refused_until_fewer_than(cli: &Cli, in_use: u32, limit: u32, low: u32) {
    cli.unchanged(|| start(cli, 1))
        .expect(1, "", &at_limit(in_use, limit, low));
    end(cli, in_use - low).expect(0, &ended(in_use - low, low, limit), "");
    cli.unchanged(|| start(cli, 1))
        .expect(1, "", &at_limit(low, limit, low));
    end(cli, 1).expect(
        0,
        &(ended(1, low - 1, limit)
            + &format!(
                "Export control limit reached cleared: {} of {limit} encrypted sessions in use; new ones are admitted\n",
                low - 1
            )),
        "",
    );
}

/// The `show license all` section, between License Usage and Product Information.
fn section(cli: &Cli) -> String {
    let all = cli.license(t0(), &["show", "license", "all"]);
    let out = all.ok();
    let start = out
        .find("Export Control Limit\n")
        .unwrap_or_else(|| panic!("no governor section:\n{out}"));
    let end = out
        .find("Product Information\n")
        .expect("product information");
    out[start..end].to_string()
}

// ---------------------------------------------------------------------------------------------
// The governor (SPEC §7, 004:1644-1681)
// ---------------------------------------------------------------------------------------------

#[test]
fn the_2500_limit_alarms_at_2250_and_2500_and_readmits_only_below_2475() {
    let cli = expressway();
    start(&cli, 2249).expect(0, &started(2249, 2249, 2500), "");
    start(&cli, 1).expect(0, &(started(1, 2250, 2500) + &approaching(2250, 2500)), "");
    // All or nothing: 251 more do not fit.
    cli.unchanged(|| start(&cli, 251)).expect(
        1,
        "",
        "Refused: 251 more encrypted sessions would pass the export control limit: 2250 of 2500 in use, room for 250\n",
    );
    start(&cli, 250).expect(
        0,
        &(started(250, 2500, 2500) + &reached(2500, 2500, 2475)),
        "",
    );
    refused_until_fewer_than(&cli, 2500, 2500, 2475);
    start(&cli, 1).expect(0, &started(1, 2475, 2500), "");
    assert_eq!(
        section(&cli),
        "Export Control Limit\n====================\nEncrypted Sessions In Use: 2475\nExport Control Limit: 2500 (WebRTC disabled)\nNew Sessions: Admitted\nActive Alarms: Export control limit approaching\n\n"
    );
    end(&cli, 300).expect(
        0,
        &(ended(300, 2175, 2500)
            + "Export control limit approaching cleared: 2175 of 2500 encrypted sessions in use\n"),
        "",
    );
    // Never below zero.
    end(&cli, 3000).expect(
        0,
        "Ended 2175 encrypted sessions (only 2175 were in use): 0 of 2500 in use.\n",
        "",
    );
    // Every alarm is in the event log, in order.
    let events = cli.license(t0(), &["events"]);
    let lines: Vec<&str> = events.ok().lines().collect();
    assert_eq!(
        lines,
        vec![
            "Jan 4 10:00:00 2027 UTC  Export control limit approaching: 2250 of 2500 encrypted sessions in use",
            "Jan 4 10:00:00 2027 UTC  Export control limit reached: 2500 of 2500 encrypted sessions in use; new ones are refused until fewer than 2475 are in use",
            "Jan 4 10:00:00 2027 UTC  Export control limit reached cleared: 2474 of 2500 encrypted sessions in use; new ones are admitted",
            "Jan 4 10:00:00 2027 UTC  Export control limit approaching cleared: 2175 of 2500 encrypted sessions in use",
        ]
    );
}

#[test]
fn webrtc_sets_the_limit_to_2244_and_switched_on_above_it_refuses_until_below_2222() {
    let cli = expressway();
    start(&cli, 2300).expect(
        0,
        &(started(2300, 2300, 2500) + &approaching(2300, 2500)),
        "",
    );
    cli.license(t0(), &["webrtc", "on"]).expect(
        0,
        &format!(
            "WebRTC: on: the export control limit is 2244 (2300 in use).\n{}",
            reached(2300, 2244, 2222)
        ),
        "",
    );
    refused_until_fewer_than(&cli, 2300, 2244, 2222);
    // With WebRTC the approaching alarm is at 2020: 2221 is above it, so it stays active.
    assert!(section(&cli).contains(
        "Export Control Limit: 2244 (WebRTC enabled)\nNew Sessions: Admitted\nActive Alarms: Export control limit approaching\n"
    ));
    start(&cli, 23).expect(
        0,
        &(started(23, 2244, 2244) + &reached(2244, 2244, 2222)),
        "",
    );
    // WebRTC off: the limit is 2500 again; 2244 is below its approaching threshold.
    cli.license(t0(), &["webrtc", "off"]).expect(
        0,
        "WebRTC: off: the export control limit is 2500 (2244 in use).\n\
         Export control limit reached cleared: 2244 of 2500 encrypted sessions in use; new ones are admitted\n\
         Export control limit approaching cleared: 2244 of 2500 encrypted sessions in use\n",
        "",
    );
}

#[test]
fn a_vcs_is_always_capped_and_the_state_survives_invocations() {
    let cli = expressway();
    cli.license(t0(), &["vcs", "on"]).expect(
        0,
        "VCS: on: the export control limit is 2500 (0 in use); no export authorization key lifts it.\n",
        "",
    );
    start(&cli, 2500).expect(
        0,
        &(started(2500, 2500, 2500) + &approaching(2500, 2500) + &reached(2500, 2500, 2475)),
        "",
    );
    let file = std::fs::read_to_string(cli.path("export-limit")).unwrap();
    assert_eq!(
        file,
        "smart-agent export limit 1\nsessions 2500\nwebrtc off\nvcs on\nkey off\nrefusing on\n"
    );
    // Still refusing at 2480 in a later invocation: the low watermark is remembered.
    end(&cli, 20).expect(0, &ended(20, 2480, 2500), "");
    cli.unchanged(|| start(&cli, 1))
        .expect(1, "", &at_limit(2480, 2500, 2475));
    assert_eq!(
        section(&cli),
        "Export Control Limit\n====================\nEncrypted Sessions In Use: 2480\nExport Control Limit: 2500 (WebRTC disabled, VCS)\nNew Sessions: Refused until fewer than 2475 are in use\nActive Alarms: Export control limit approaching, Export control limit reached\n\n"
    );
    cli.license(t0(), &["vcs", "off"]).expect(
        0,
        "VCS: off: the export control limit is 2500 (2480 in use).\n",
        "",
    );
}

#[test]
fn the_governor_is_expressways_and_absent_until_used() {
    let cli = Cli::new();
    cli.declare(t0(), &[ENHANCED]);
    for args in [
        &["session", "start"][..],
        &["session", "end", "2"],
        &["webrtc", "on"],
        &["vcs", "off"],
    ] {
        cli.unchanged(|| cli.license(t0(), args)).expect(
            1,
            "",
            "session, webrtc and vcs drive Expressway's export-limit governor: give --product expressway\n",
        );
    }
    assert!(!cli.path("export-limit").exists());
    // Nothing to show: no section, in either product's words.
    for product in ["ucm", "expressway"] {
        let all = cli.license(t0(), &["--product", product, "show", "license", "all"]);
        assert!(!all.ok().contains("Export Control Limit"), "{}", all.stdout);
        assert!(
            !all.stdout.contains("Export Authorization Keys"),
            "{}",
            all.stdout
        );
    }
    // Used once (Expressway), the section is Expressway's only.
    cli.license(t0(), &["--product", "expressway", "session", "start", "3"])
        .expect(0, &started(3, 3, 2500), "");
    let all = cli.license(t0(), &["show", "license", "all"]);
    assert!(!all.ok().contains("Export Control Limit"), "{}", all.stdout);
}

#[test]
fn a_damaged_export_limit_file_is_exit_3_naming_it() {
    let cli = expressway();
    start(&cli, 5).ok();
    for bad in [
        "smart-agent export limit 2\n",
        "smart-agent export limit 1\nsessions many\nwebrtc off\nvcs off\nkey off\nrefusing off\n",
        // Refusing below the low watermark cannot happen.
        "smart-agent export limit 1\nsessions 5\nwebrtc off\nvcs off\nkey off\nrefusing on\n",
    ] {
        std::fs::write(cli.path("export-limit"), bad).unwrap();
        let run = cli.unchanged(|| cli.license(t0(), &["show", "license", "all"]));
        assert_eq!(run.code, 3, "{run:?}");
        assert!(
            run.stderr
                .starts_with(&format!("{}: ", cli.path("export-limit").display())),
            "{}",
            run.stderr
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Export authorization keys (003:825-827)
// ---------------------------------------------------------------------------------------------

#[test]
fn export_keys_are_refused_while_unregistered() {
    let cli = Cli::new();
    cli.declare(t0(), &[ENHANCED]);
    for args in [
        &["license", "smart", "export", "request", "local", FEATURE][..],
        &["license", "smart", "export", "return", "local", FEATURE],
        &["license", "smart", "export", "cancel"],
    ] {
        cli.unchanged(|| cli.license(t0(), args))
            .expect(1, "", NOT_REGISTERED);
    }
}

#[test]
fn export_command_words_are_the_seeds() {
    let cli = Cli::new();
    cli.registered_with(t0(), ENHANCED, 0);
    cli.unchanged(|| cli.license(t0(), &["license", "smart", "export", "request", FEATURE]))
        .usage_error(1, "invalid value");
    cli.unchanged(|| {
        cli.license(
            t0(),
            &[
                "license",
                "smart",
                "export",
                "request",
                "local",
                "no such feature",
            ],
        )
    })
    .expect(1, "", "Please enter a valid export feature name\n");
    cli.unchanged(|| {
        cli.license(
            t0(),
            &["license", "smart", "export", "return", "local", FEATURE],
        )
    })
    .expect(
        1,
        "",
        &format!("No export authorization key is held for {FEATURE}\n"),
    );
    cli.unchanged(|| cli.license(t0(), &["license", "smart", "export", "cancel"]))
        .expect(
            0,
            "No export authorization key request or return is pending: nothing to cancel.\n",
            "",
        );
}

// ---------------------------------------------------------------------------------------------
// Export authorization keys against the embedded manager (SPEC §7, 003:825-827)
// ---------------------------------------------------------------------------------------------

/// `license smart export <rest…>`.
fn export(cli: &Cli, rest: &[&str]) -> Run {
    let mut args = vec!["license", "smart", "export"];
    args.extend_from_slice(rest);
    cli.license(t0(), &args)
}

#[test]
fn a_restricted_accounts_instance_requests_and_returns_an_export_key_from_the_manager() {
    let cli = Cli::new();
    cli.declare(t0(), &[ENHANCED]);
    cli.pool(ENHANCED, 10);
    cli.manager(&["account", "--export-restricted", "on"])
        .expect(
            0,
            "Reference Smart Account / DEFAULT\nExport restrictions: on\n",
            "",
        );
    // Its tokens never allow export-controlled functionality (004:281), whatever is asked.
    cli.unchanged(|| cli.manager(&["token", "create", "--export"])).expect(
        1,
        "",
        "manager token create: the Smart Account \"Reference Smart Account\" is under export restrictions: export-controlled functionality needs export authorization keys\n",
    );
    let run = cli.manager(&["token", "create"]);
    assert!(
        run.ok().lines().next().unwrap_or_default().ends_with(
            "export-controlled functionality not allowed (the Smart Account is under export restrictions):"
        ),
        "{}",
        run.stdout
    );
    cli.license(
        t0(),
        &["license", "smart", "register", "idtoken", run.last_line()],
    )
    .ok();
    let status = cli.license(t0(), &["show", "license", "status"]);
    assert!(
        status
            .ok()
            .contains("  Export-Controlled Functionality: Not Allowed\n"),
        "{}",
        status.stdout
    );
    // None bought yet: the manager's permanent refusal, reported with its message.
    let none = format!("No export authorization key for {FEATURE} is left in the Virtual Account");
    export(&cli, &["request", "local", FEATURE]).expect(
        2,
        &format!("Export authorization key for {FEATURE} refused: {none}\n"),
        &format!("{none}\n"),
    );
    cli.manager(&["export-key", "add", FEATURE, "1"]).expect(
        0,
        &format!("{FEATURE}: total 1, in use 0\n"),
        "",
    );
    export(&cli, &["request", "local", FEATURE]).expect(
        0,
        &format!("Export authorization key granted for {FEATURE}\n"),
        "",
    );
    cli.manager(&["export-key", "list"]).expect(
        0,
        &format!("Reference Smart Account / DEFAULT\nFeature\tTotal\tIn Use\n{FEATURE}\t1\t1\n"),
        "",
    );
    let all = cli.license(t0(), &["show", "license", "all"]);
    assert!(
        all.ok().contains(&format!(
            "Export Authorization Keys\n=========================\n{FEATURE}:\n  Status: AUTHORIZED\n  Issued: Jan 4 10:00:00 2027 UTC\n"
        )),
        "{}",
        all.stdout
    );
    export(&cli, &["return", "local", FEATURE]).expect(
        0,
        &format!("Export authorization key returned for {FEATURE}\n"),
        "",
    );
    cli.manager(&["export-key", "list"]).expect(
        0,
        &format!("Reference Smart Account / DEFAULT\nFeature\tTotal\tIn Use\n{FEATURE}\t1\t0\n"),
        "",
    );
    cli.unchanged(|| export(&cli, &["return", "local", FEATURE]))
        .expect(
            1,
            "",
            &format!("No export authorization key is held for {FEATURE}\n"),
        );
    // Bad feature names and counts: the manager's refusal, or a usage error.
    cli.unchanged(|| cli.manager(&["export-key", "add", "bad feature", "1"]))
        .expect(
            1,
            "",
            "manager export-key add: invalid export feature name \"bad feature\"\n",
        );
    let run = cli.unchanged(|| cli.manager(&["export-key", "add", FEATURE, "x"]));
    run.usage_error(2, "invalid value 'x' for '<COUNT>'");
}

#[test]
fn an_unrestricted_account_uses_the_token_flag_and_a_no_export_token_makes_not_allowed() {
    let cli = Cli::new();
    cli.declare(t0(), &[ENHANCED]);
    cli.pool(ENHANCED, 10);
    cli.manager(&["export-key", "add", FEATURE, "1"]).ok();
    let token = cli.token(&["--no-export"]);
    cli.license(t0(), &["license", "smart", "register", "idtoken", &token])
        .ok();
    let status = cli.license(t0(), &["show", "license", "status"]);
    assert!(
        status
            .ok()
            .contains("  Export-Controlled Functionality: Not Allowed\n"),
        "{}",
        status.stdout
    );
    let message = "The Smart Account is not under export restrictions: export-controlled functionality follows the registration token";
    export(&cli, &["request", "local", FEATURE]).expect(
        2,
        &format!("Export authorization key for {FEATURE} refused: {message}\n"),
        &format!("{message}\n"),
    );
    // Not Allowed before, so the deregistration raises no alert.
    cli.license(t0(), &["license", "smart", "deregister"])
        .expect(0, "Deregistration succeeded\n", "");
}
