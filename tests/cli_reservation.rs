//! License Reservation through the built binaries (issue 12 item 4): the Unified CM words
//! (003:392-400) and Expressway's (004:491-498), the device lines of SPEC §6 exactly, the
//! reservation layouts of `../shared/layouts/` byte for byte (hand-copied into
//! `tests/cli/golden/`), every refusal with its message, exit 1 and the directory unchanged,
//! and round trips between `license` and `manager` that copy the printed codes only.
#![cfg(all(feature = "manager", feature = "transport"))]

mod cli;

use cli::*;

/// Usage starts here, so that the evaluation has 61 days, 4 hours, 12 minutes, 50 seconds
/// left at [`INSTALL_AT`], as the layouts show.
const USED_FROM: &str = "2020-02-04T14:27:52Z";
/// The layouts' `Mar 4 10:15:02 2020 UTC`.
const INSTALL_AT: &str = "2020-03-04T10:15:02Z";

pub const EXPY_UDI: &str = "PID:Expressway,SN:0B070519,UUID:320ac19c1e2f4a5b8c9d0e1f2a3b4c5d";

/// SPEC §6's device lines.
const REQUEST_LINE: &str = "Enter the following reservation request code into the CSSM:\n";

/// SPEC §6's refusals.
const NOT_ENABLED: &str = "License Reservation is not enabled\n";
const NOT_WHILE_REGISTERED: &str =
    "License Reservation cannot be enabled while the product is registered. Deregister it first\n";
const NO_REQUEST: &str = "There is no reservation request in progress\n";
const NOTHING_INSTALLED: &str = "No reservation authorization code is installed\n";
const REGISTRATION_REFUSED: &str = "Smart Software Licensing registration operations are not allowed while License Reservation is enabled. Return an installed code with license smart reservation return, or disable License Reservation\n";
const UNTRUSTED: &str =
    "The Reservation Authorization Code is not signed by a trusted Smart Software Manager\n";

const ENABLED_UCM: &str =
    "License Reservation enabled: request a code with `license smart reservation request`.\n";
const CANCELLED_UCM: &str = "Reservation request cancelled: a code the manager issued for it can still be returned with `license smart reservation return-authorization \"<code>\"`.\n";

fn ucm() -> Cli {
    Cli::new().with(&["--udi", SEED_UDI])
}

fn expressway() -> Cli {
    Cli::new().with(&["--product", "expressway", "--udi", EXPY_UDI])
}

/// Enhanced and CUWL declared, 5 Enhanced in use from [`USED_FROM`] (evaluation).
fn in_use(cli: &Cli) {
    cli.declare(at(USED_FROM), &[ENHANCED, CUWL]);
    cli.license(USED_FROM, &["usage", ENHANCED, "5"])
        .expect(0, &usage_line(ENHANCED, 5), "");
}

const RESERVATION: [&str; 3] = ["license", "smart", "reservation"];

fn words<'a>(family: &[&'a str], rest: &[&'a str]) -> Vec<&'a str> {
    family.iter().chain(rest).copied().collect()
}

/// `license smart reservation <rest…>`.
fn ucm_reservation(cli: &Cli, now: &str, rest: &[&str]) -> Run {
    cli.license(now, &words(&RESERVATION, rest))
}

/// The request code the device printed: the line after [`REQUEST_LINE`].
fn printed_code(run: &Run, heading: &str) -> String {
    let out = run.ok();
    let code = out
        .strip_prefix(heading)
        .unwrap_or_else(|| panic!("no {heading:?} in\n{out}"));
    let mut lines = code.lines();
    let code = lines.next().unwrap_or_default().to_string();
    assert_eq!(lines.next(), None, "one code line:\n{out}");
    code
}

fn request(cli: &Cli, now: &str) -> String {
    printed_code(&ucm_reservation(cli, now, &["request"]), REQUEST_LINE)
}

/// The in-progress layout with the request code the device printed in place of its
/// placeholders.
fn in_progress_layout(code: &str) -> String {
    let placeholder =
        "CB-PUCM,S37624,U6fe83addc80240bc92dc071ac7a37624-<base58 reservation key>-<2 hex>";
    assert!(
        code.starts_with("CB-PUCM,S37624,U6fe83addc80240bc92dc071ac7a37624-"),
        "{code}"
    );
    let layout = golden("show-license-status.reservation-in-progress.txt");
    assert!(layout.contains(placeholder));
    layout.replace(placeholder, code)
}

/// The in-progress layout after cancel, return-authorization or return (the layouts' README):
/// `UNREGISTERED`, no request-code line, the rest as there.
fn unregistered_layout() -> String {
    golden("show-license-status.reservation-in-progress.txt")
        .replace("RESERVATION IN PROGRESS", "UNREGISTERED")
        .lines()
        .filter(|l| !l.contains("Reservation Request Code"))
        .map(|l| format!("{l}\n"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Unified CM: enable, request, the in-progress layout, cancel, disable
// ---------------------------------------------------------------------------------------------

#[test]
fn enable_and_request_print_the_device_lines_and_the_in_progress_layout() {
    let cli = ucm();
    in_use(&cli);
    ucm_reservation(&cli, INSTALL_AT, &["enable"]).expect(0, ENABLED_UCM, "");
    ucm_reservation(&cli, INSTALL_AT, &["enable"]).expect(
        0,
        "License Reservation is enabled already.\n",
        "",
    );
    let code = request(&cli, INSTALL_AT);
    cli.license(INSTALL_AT, &["show", "license", "status"])
        .expect(0, &in_progress_layout(&code), "");
    // The same code until cancel.
    assert_eq!(request(&cli, INSTALL_AT), code);
    // `show license all` carries the same block.
    let all = cli.license(INSTALL_AT, &["show", "license", "all"]);
    assert!(
        all.ok().starts_with(&format!(
            "Smart Licensing Status\n=======================\n{}\nLicense Usage\n",
            in_progress_layout(&code)
        )),
        "{}",
        all.stdout
    );
    cli.license(INSTALL_AT, &["show", "license", "reservation"])
        .expect(
            0,
            &format!(
                "License reservation: ENABLED\n\nOverall status:\n  Active: {SEED_UDI}\n      Reservation status: REQUEST IN PROGRESS\n      Reservation Request Code: {code}\n"
            ),
            "",
        );
}

#[test]
fn cancel_leaves_reservation_mode_on_unregistered_and_a_new_request_has_a_new_code() {
    let cli = ucm();
    in_use(&cli);
    ucm_reservation(&cli, INSTALL_AT, &["enable"]).ok();
    let first = request(&cli, INSTALL_AT);
    ucm_reservation(&cli, INSTALL_AT, &["cancel"]).expect(0, CANCELLED_UCM, "");
    cli.license(INSTALL_AT, &["show", "license", "status"])
        .expect(0, &unregistered_layout(), "");
    cli.license(INSTALL_AT, &["show", "license", "reservation"])
        .expect(
            0,
            &format!(
                "License reservation: ENABLED\n\nOverall status:\n  Active: {SEED_UDI}\n      Reservation status: NOT INSTALLED\n"
            ),
            "",
        );
    // Nothing outstanding: accepted, nothing to do.
    cli.unchanged(|| ucm_reservation(&cli, INSTALL_AT, &["cancel"]))
        .expect(
            0,
            "No reservation request is in progress: nothing to cancel.\n",
            "",
        );
    let second = request(&cli, INSTALL_AT);
    assert_ne!(first, second);
    ucm_reservation(&cli, INSTALL_AT, &["disable"]).expect(
        0,
        "License Reservation disabled.\n",
        "",
    );
    cli.license(INSTALL_AT, &["show", "license", "reservation"])
        .expect(0, "License reservation: DISABLED\n", "");
    let status = cli.license(INSTALL_AT, &["show", "license", "status"]);
    assert!(
        status
            .ok()
            .starts_with("Smart Licensing is ENABLED\n\nRegistration:\n  Status: UNREGISTERED\n"),
        "{}",
        status.stdout
    );
}

// ---------------------------------------------------------------------------------------------
// Expressway's words
// ---------------------------------------------------------------------------------------------

const XCONFIG: [&str; 4] = ["xconfiguration", "License", "Smart", "ReservationEnable:"];
const XCOMMAND: [&str; 4] = ["xcommand", "License", "Smart", "Reservation"];

#[test]
fn expressway_configuration_and_cancel_answer_ok_and_request_prints_the_device_lines() {
    let cli = expressway();
    cli.license(INSTALL_AT, &words(&XCONFIG, &["On"]))
        .expect(0, "OK\n", "");
    let run = cli.license(INSTALL_AT, &words(&XCOMMAND, &["Request"]));
    let code = printed_code(&run, REQUEST_LINE);
    assert!(code.starts_with("CB-PExpressway,S0B070519,"), "{code}");
    let status = cli.license(INSTALL_AT, &["show", "license", "status"]);
    assert!(
        status.ok().contains(&format!(
            "License Reservation is ENABLED\n\nRegistration:\n  Status: Reservation In Progress\n  Export-Controlled Functionality: Not Allowed\n  Reservation Request Code: {code}\n"
        )),
        "{}",
        status.stdout
    );
    cli.license(INSTALL_AT, &words(&XCOMMAND, &["Cancel"]))
        .expect(0, "OK\n", "");
    cli.license(INSTALL_AT, &words(&XCONFIG, &["Off"]))
        .expect(0, "OK\n", "");
    // Setting the configuration to what it is already is OK too; the value is any case.
    cli.unchanged(|| cli.license(INSTALL_AT, &words(&XCONFIG, &["off"])))
        .expect(0, "OK\n", "");
    cli.license(
        INSTALL_AT,
        &[
            "xconfiguration",
            "License",
            "Smart",
            "ReservationEnable",
            "on",
        ],
    )
    .expect(0, "OK\n", "");
}

#[test]
fn expressway_refusals_are_the_agents_messages() {
    let cli = expressway();
    for args in [
        words(&XCOMMAND, &["Request"]),
        words(&XCOMMAND, &["Cancel"]),
        words(&XCOMMAND, &["Return"]),
        words(
            &XCOMMAND,
            &["Install", "CAVfS8-tqmsHn-ntioqo-Z8Q4wK-jsddDU-3YkM"],
        ),
    ] {
        cli.unchanged(|| cli.license(INSTALL_AT, &args))
            .expect(1, "", NOT_ENABLED);
    }
    cli.license(INSTALL_AT, &words(&XCONFIG, &["On"]))
        .expect(0, "OK\n", "");
    cli.unchanged(|| cli.license(INSTALL_AT, &words(&XCOMMAND, &["Return"])))
        .expect(1, "", NOTHING_INSTALLED);
    // 004:727's PLR code: no request outstanding.
    cli.unchanged(|| {
        cli.license(
            INSTALL_AT,
            &words(
                &XCOMMAND,
                &["Install", "CAVfS8-tqmsHn-ntioqo-Z8Q4wK-jsddDU-3YkM"],
            ),
        )
    })
    .expect(1, "", NO_REQUEST);
    cli.license(INSTALL_AT, &words(&XCOMMAND, &["Request"]))
        .ok();
    // A seed sample, quoted as 004:1217 shows it: it parses, then fails trust.
    let sample = std::fs::read_to_string(fixture("slr_004_1217.xml")).unwrap();
    let quoted = format!("\"{}\"", sample.trim());
    cli.unchanged(|| cli.license(INSTALL_AT, &words(&XCOMMAND, &["Install", &quoted])))
        .expect(1, "", UNTRUSTED);
    cli.unchanged(|| {
        cli.license(
            INSTALL_AT,
            &words(&XCOMMAND, &["ReturnAuthorization", &quoted]),
        )
    })
    .expect(1, "", UNTRUSTED);
}

// ---------------------------------------------------------------------------------------------
// Refusals: exact messages, exit 1, nothing written
// ---------------------------------------------------------------------------------------------

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/codes")
        .join(name)
}

#[test]
fn every_command_but_enable_needs_reservation_mode() {
    let cli = ucm();
    in_use(&cli);
    for rest in [
        &["disable"][..],
        &["request"],
        &["cancel"],
        &["return"],
        &["install", "\"<specificPLR/>\""],
        &["return-authorization", "CAVfS8-tqmsHn"],
    ] {
        cli.unchanged(|| ucm_reservation(&cli, INSTALL_AT, rest))
            .expect(1, "", NOT_ENABLED);
    }
    cli.license(INSTALL_AT, &["show", "license", "reservation"])
        .expect(0, "License reservation: DISABLED\n", "");
}

#[test]
fn enable_is_refused_while_registered_and_registration_in_reservation_mode() {
    let cli = ucm();
    cli.registered_with(at(INSTALL_AT), ENHANCED, 5);
    cli.unchanged(|| ucm_reservation(&cli, INSTALL_AT, &["enable"]))
        .expect(1, "", NOT_WHILE_REGISTERED);
    cli.license(INSTALL_AT, &["license", "smart", "deregister"])
        .ok();
    ucm_reservation(&cli, INSTALL_AT, &["enable"]).expect(0, ENABLED_UCM, "");
    let token = cli.token(&[]);
    for args in [
        &["license", "smart", "register", "idtoken", &token][..],
        &["license", "smart", "renew", "ID"],
        &["license", "smart", "renew", "auth"],
        &["license", "smart", "deregister"],
    ] {
        cli.unchanged(|| cli.license(INSTALL_AT, args))
            .expect(1, "", REGISTRATION_REFUSED);
    }
    // Export keys need a registered instance, not in reservation mode (SPEC §7).
    cli.unchanged(|| {
        cli.license(
            INSTALL_AT,
            &[
                "license",
                "smart",
                "export",
                "request",
                "local",
                "CUCM_Export_Restricted_Authorization_Key",
            ],
        )
    })
    .expect(
        1,
        "",
        "Export authorization keys are available only to a registered product instance\n",
    );
}

#[test]
fn install_checks_refuse_without_writing() {
    let cli = ucm();
    in_use(&cli);
    ucm_reservation(&cli, INSTALL_AT, &["enable"]).ok();
    cli.unchanged(|| ucm_reservation(&cli, INSTALL_AT, &["install", "\"<specificPLR/>\""]))
        .expect(1, "", NO_REQUEST);
    request(&cli, INSTALL_AT);
    for (code, message) in [
        (
            "<specificPLR>x</specificPLR>",
            "The Reservation Authorization Code is not valid: <authorizationCode> is missing\n",
        ),
        (
            "\"<specificPLR>x</specificPLR>\"",
            "The Reservation Authorization Code is not valid: <authorizationCode> is missing\n",
        ),
    ] {
        cli.unchanged(|| ucm_reservation(&cli, INSTALL_AT, &["install", code]))
            .expect(1, "", message);
    }
    // The repaired seed samples parse and fail trust; the one without a signature is unsigned.
    for name in [
        "slr_003_638.xml",
        "slr_003_662.xml",
        "slr_003_696.xml",
        "slr_004_1217.xml",
    ] {
        let code = std::fs::read_to_string(fixture(name)).unwrap();
        cli.unchanged(|| ucm_reservation(&cli, INSTALL_AT, &["install", &code]))
            .expect(1, "", UNTRUSTED);
    }
    let unsigned = std::fs::read_to_string(fixture("slr_004_1176_unsigned.xml")).unwrap();
    cli.unchanged(|| ucm_reservation(&cli, INSTALL_AT, &["install", &unsigned]))
        .expect(
            1,
            "",
            "The Reservation Authorization Code is not valid: it is not signed\n",
        );
    cli.unchanged(|| ucm_reservation(&cli, INSTALL_AT, &["return"]))
        .expect(1, "", NOTHING_INSTALLED);
}

#[test]
fn install_file_reads_a_path_or_a_file_url_and_refuses_sftp() {
    let cli = ucm();
    in_use(&cli);
    ucm_reservation(&cli, INSTALL_AT, &["enable"]).ok();
    request(&cli, INSTALL_AT);
    let sample = fixture("slr_003_638.xml");
    let path = sample.display().to_string();
    for given in [
        path.clone(),
        format!("file://{path}"),
        format!("file://localhost{path}"),
    ] {
        cli.unchanged(|| ucm_reservation(&cli, INSTALL_AT, &["install-file", &given]))
            .expect(1, "", UNTRUSTED);
    }
    // A space in the name, %-escaped in the URL.
    let spaced = cli.sandbox().join("auth code.xml");
    std::fs::copy(&sample, &spaced).unwrap();
    let url = format!("file://{}", spaced.display()).replace(' ', "%20");
    cli.unchanged(|| ucm_reservation(&cli, INSTALL_AT, &["install-file", &url]))
        .expect(1, "", UNTRUSTED);
    // The seed's form (003:466): the harness reads local files only.
    let sftp = "sftp://10.10.10.1:22/licenses/authorization-code.txt";
    cli.unchanged(|| ucm_reservation(&cli, INSTALL_AT, &["install-file", sftp]))
        .expect(
            1,
            "",
            &format!("{sftp}: the harness reads local files only; copy the authorization-code file to this system and give its path or a file:// URL\n"),
        );
    let other_host = "file://ssm.example.com/tmp/code.xml";
    cli.unchanged(|| ucm_reservation(&cli, INSTALL_AT, &["install-file", other_host]))
        .expect(
            1,
            "",
            &format!("{other_host}: the harness reads local files only; copy the authorization-code file to this system and give its path or a file:// URL\n"),
        );
    let missing = cli.sandbox().join("missing.xml");
    let run = cli.unchanged(|| {
        ucm_reservation(
            &cli,
            INSTALL_AT,
            &["install-file", &missing.display().to_string()],
        )
    });
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.starts_with(&format!("{}: ", missing.display())),
        "{}",
        run.stderr
    );
    let dir = cli.sandbox().display().to_string();
    cli.unchanged(|| ucm_reservation(&cli, INSTALL_AT, &["install-file", &dir]))
        .expect(1, "", &format!("{dir}: not a regular file\n"));
}
