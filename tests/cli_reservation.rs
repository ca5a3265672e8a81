//! License Reservation through the built binaries (issue 12 item 4): the Unified CM words
//! (003:392-400) and Expressway's (004:491-498), the device lines of SPEC §6 exactly, the
//! reservation layouts of `../shared/layouts/` byte for byte (hand-copied into
//! `tests/cli/golden/`), every refusal with its message, exit 1 and the directory unchanged,
//! and round trips between `license` and `manager` that copy the printed codes only.
#![cfg(feature = "manager")]

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

// ---------------------------------------------------------------------------------------------
// Round trips with the manager: only the printed codes are copied from one CLI to the other
// ---------------------------------------------------------------------------------------------

const INSTALLED: &str = "Authorization code installed.\n";
const CONFIRMATION_LINE: &str = "Please enter the confirmation code to CSSM account: ";
const RETURN_LINE: &str = "Enter the following return code into the CSSM:\n";
const NO_SURPLUS: &str = "In order to continue, ensure that you have a surplus of the licenses you want to reserve in the Virtual Account.";
const CUWL_TERM: &str = "5,2020-03-04,2021-03-04";

/// `manager <args>`: the code it printed alone on its last line, after one line saying what
/// it is.
fn issued(cli: &Cli, args: &[&str]) -> String {
    let run = cli.manager(args);
    let out = run.ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].ends_with("(install it on the product):"),
        "{}",
        lines[0]
    );
    lines[1].to_string()
}

/// The confirmation code an SLR install printed.
fn confirmation(run: &Run) -> String {
    let out = run.ok();
    let rest = out
        .strip_prefix(INSTALLED)
        .and_then(|r| r.strip_prefix(CONFIRMATION_LINE))
        .unwrap_or_else(|| panic!("no confirmation code in\n{out}"));
    let code = rest.strip_suffix('\n').unwrap_or(rest);
    assert!(
        code.len() == 8 && code.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')),
        "{code:?}"
    );
    code.to_string()
}

/// `manager licenses` of the default Virtual Account: its rows.
fn license_rows(cli: &Cli) -> String {
    let run = cli.manager(&["licenses"]);
    run.ok()
        .strip_prefix(
            "Reference Smart Account / DEFAULT\nLicense\tPurchased\tIn Use\tSubstitution\tBalance\n",
        )
        .unwrap_or_else(|| panic!("{}", run.stdout))
        .to_string()
}

/// The reservation rows of `manager reservation list` (after its header).
fn reservation_rows(cli: &Cli) -> Vec<String> {
    let run = cli.manager(&["reservation", "list"]);
    let out = run.ok();
    if out == "no reservations\n" {
        return Vec::new();
    }
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("Product Instance ID\tUDI\tVirtual Account\tType\tLicenses\tState\tExport"),
        "{out}"
    );
    lines.map(str::to_string).collect()
}

/// 10 Enhanced and 5 CUWL bought, reservation entitled, the UCM in reservation mode with its
/// request printed: the request code.
fn ucm_requesting(cli: &Cli) -> String {
    in_use(cli);
    cli.pool(ENHANCED, 10);
    cli.pool(CUWL, 5);
    cli.manager(&["account", "--reservation", "on"]).expect(
        0,
        "Reference Smart Account / DEFAULT\nLicense Reservation: on\n",
        "",
    );
    ucm_reservation(cli, INSTALL_AT, &["enable"]).expect(0, ENABLED_UCM, "");
    request(cli, INSTALL_AT)
}

#[test]
fn slr_round_trip_request_authorize_install_confirm_return_restores_the_pools() {
    let cli = ucm();
    let request = ucm_requesting(&cli);
    let enhanced = format!("{ENHANCED}=10");
    let cuwl = format!("{CUWL}={CUWL_TERM}");
    let code = issued(
        &cli,
        &[
            "reservation",
            "authorize",
            &request,
            "--license",
            &enhanced,
            "--license",
            &cuwl,
            "--export",
        ],
    );
    assert!(
        code.starts_with("<specificPLR><authorizationCode>"),
        "{code}"
    );
    assert_eq!(
        license_rows(&cli),
        "UC Manager CUWL License\t5\t5 (5 Reserved)\t-\t+ 0\n\
         UC Manager Enhanced License\t10\t10 (10 Reserved)\t-\t+ 0\n"
    );
    // The product pastes the code quoted, as 003:400 shows.
    let installed = ucm_reservation(&cli, INSTALL_AT, &["install", &format!("\"{code}\"")]);
    let confirm = confirmation(&installed);
    // The layouts, byte for byte (the confirmation code is this code's).
    cli.license(INSTALL_AT, &["show", "license", "status"])
        .expect(0, &golden("show-license-status.slr.txt"), "");
    cli.license(INSTALL_AT, &["show", "license", "reservation"])
        .expect(
            0,
            &golden("show-license-reservation.slr.txt").replace(
                "Last Confirmation code: 08715c93",
                &format!("Last Confirmation code: {confirm}"),
            ),
            "",
        );
    // A wrong confirmation code changes nothing; the right one, in upper case and with
    // leading zeros dropped as the seeds show, is accepted.
    let wrong = if confirm == "00000001" { "2" } else { "1" };
    cli.unchanged(|| cli.manager(&["reservation", "confirm", SEED_UDI, wrong]))
        .expect(
            1,
            "",
            "manager reservation confirm: The Reservation Confirmation Code does not match the Reservation Authorization Code\n",
        );
    let typed = confirm.trim_start_matches('0').to_uppercase();
    cli.manager(&["reservation", "confirm", SEED_UDI, &typed])
        .expect(
            0,
            &format!("confirmed: {SEED_UDI} holds {ENHANCED}=10 {CUWL}=5\n"),
            "",
        );
    let rows = reservation_rows(&cli);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let piid = rows[0].split('\t').next().unwrap().to_string();
    assert_eq!(
        rows[0],
        format!("{piid}\t{SEED_UDI}\tReference Smart Account / DEFAULT\tSLR\t{ENHANCED}=10 {CUWL}=5\treserved\tallowed")
    );
    // Return: the product prints a return code, the manager takes it once.
    let run = ucm_reservation(&cli, INSTALL_AT, &["return"]);
    let returned = printed_code(&run, RETURN_LINE);
    assert!(returned.starts_with('C'), "{returned}");
    cli.license(INSTALL_AT, &["show", "license", "status"])
        .expect(0, &unregistered_layout(), "");
    cli.manager(&["reservation", "return", &returned]).expect(
        0,
        &format!("returned: product instance {piid} ({SEED_UDI}); back in the pool: {ENHANCED}=10 {CUWL}=5\n"),
        "",
    );
    assert_eq!(
        license_rows(&cli),
        "UC Manager CUWL License\t5\t0\t-\t+ 5\n\
         UC Manager Enhanced License\t10\t0\t-\t+ 10\n"
    );
    assert_eq!(reservation_rows(&cli), Vec::<String>::new());
    // A replayed return code frees nothing.
    cli.unchanged(|| cli.manager(&["reservation", "return", &returned]))
        .expect(
            1,
            "",
            "manager reservation return: this reservation was returned already: its licenses are back in the pool (request a new code on the product)\n",
        );
}

#[test]
fn slr_update_a_newer_code_a_new_confirmation_and_the_change_in_transit_until_it_arrives() {
    let cli = ucm();
    let request = ucm_requesting(&cli);
    let four = format!("{ENHANCED}=4");
    let code = issued(
        &cli,
        &["reservation", "authorize", &request, "--license", &four],
    );
    let first = confirmation(&ucm_reservation(&cli, INSTALL_AT, &["install", &code]));
    cli.manager(&["reservation", "confirm", SEED_UDI, &first])
        .ok();
    let rows = reservation_rows(&cli);
    let piid = rows[0].split('\t').next().unwrap().to_string();
    // By piid this time: 2 Enhanced fewer, 5 CUWL more.
    let two = format!("{ENHANCED}=2");
    let cuwl = format!("{CUWL}={CUWL_TERM}");
    let newer = issued(
        &cli,
        &[
            "reservation",
            "update",
            &piid,
            "--license",
            &two,
            "--license",
            &cuwl,
        ],
    );
    assert_ne!(newer, code);
    // In transit: the larger of old and new per tag.
    assert_eq!(
        reservation_rows(&cli),
        vec![format!(
            "{piid}\t{SEED_UDI}\tReference Smart Account / DEFAULT\tSLR\t{ENHANCED}=4 {CUWL}=5\tupdate in transit\tnot allowed"
        )]
    );
    assert_eq!(
        license_rows(&cli),
        "UC Manager CUWL License\t5\t5 (5 Reserved)\t-\t+ 0\n\
         UC Manager Enhanced License\t10\t4 (4 Reserved)\t-\t+ 6\n"
    );
    // The first confirmation code is not this code's.
    cli.unchanged(|| cli.manager(&["reservation", "confirm", &piid, &first]))
        .expect(
            1,
            "",
            "manager reservation confirm: The Reservation Confirmation Code does not match the Reservation Authorization Code\n",
        );
    let second = confirmation(&ucm_reservation(&cli, INSTALL_AT, &["install", &newer]));
    assert_ne!(second, first);
    cli.manager(&["reservation", "confirm", &piid, &second])
        .expect(
            0,
            &format!("confirmed: {SEED_UDI} holds {ENHANCED}=2 {CUWL}=5\n"),
            "",
        );
    assert_eq!(
        license_rows(&cli),
        "UC Manager CUWL License\t5\t5 (5 Reserved)\t-\t+ 0\n\
         UC Manager Enhanced License\t10\t2 (2 Reserved)\t-\t+ 8\n"
    );
    let returned = printed_code(&ucm_reservation(&cli, INSTALL_AT, &["return"]), RETURN_LINE);
    cli.manager(&["reservation", "return", &returned]).ok();
    assert_eq!(
        license_rows(&cli),
        "UC Manager CUWL License\t5\t0\t-\t+ 5\n\
         UC Manager Enhanced License\t10\t0\t-\t+ 10\n"
    );
}

#[test]
fn cancel_then_return_authorization_gives_a_code_never_installed_back() {
    let cli = ucm();
    let request = ucm_requesting(&cli);
    let ten = format!("{ENHANCED}=10");
    let code = issued(
        &cli,
        &["reservation", "authorize", &request, "--license", &ten],
    );
    // The seed's order (004:843-906): the request is cancelled before the code is installed.
    ucm_reservation(&cli, INSTALL_AT, &["cancel"]).expect(0, CANCELLED_UCM, "");
    let run = ucm_reservation(
        &cli,
        INSTALL_AT,
        &["return-authorization", &format!("\"{code}\"")],
    );
    let returned = printed_code(&run, RETURN_LINE);
    assert_eq!(
        license_rows(&cli),
        "UC Manager CUWL License\t5\t0\t-\t+ 5\nUC Manager Enhanced License\t10\t10 (10 Reserved)\t-\t+ 0\n"
    );
    let out = cli.manager(&["reservation", "return", &returned]);
    assert!(
        out.ok()
            .ends_with(&format!("({SEED_UDI}); back in the pool: {ENHANCED}=10\n")),
        "{}",
        out.stdout
    );
    assert_eq!(
        license_rows(&cli),
        "UC Manager CUWL License\t5\t0\t-\t+ 5\nUC Manager Enhanced License\t10\t0\t-\t+ 10\n"
    );
}

#[test]
fn plr_on_expressway_two_codes_make_one_set_and_its_return_frees_both() {
    use smart_agent::manager::catalogue::EXPY_PLR_WITH_EXPORT_CONTROL as PLR;
    let cli = expressway();
    cli.license(INSTALL_AT, &words(&XCONFIG, &["On"]))
        .expect(0, "OK\n", "");
    cli.pool(PLR, 3);
    cli.manager(&["account", "--reservation", "on"]).ok();
    let request = printed_code(
        &cli.license(INSTALL_AT, &words(&XCOMMAND, &["Request"])),
        REQUEST_LINE,
    );
    let code = issued(&cli, &["reservation", "authorize", &request, "--plr", PLR]);
    assert!(code.starts_with('C') && code.contains('-'), "{code}");
    // No confirmation code for a PLR.
    cli.license(INSTALL_AT, &words(&XCOMMAND, &["Install", &code]))
        .expect(0, INSTALLED, "");
    let status = cli.license(INSTALL_AT, &["show", "license", "status"]);
    assert!(
        status.ok().contains(
            "  Status: Registered - Universal License Reservation\n  Export-Controlled Functionality: Allowed\n"
        ),
        "{}",
        status.stdout
    );
    cli.unchanged(|| cli.manager(&["reservation", "confirm", EXPY_UDI, "1"]))
        .expect(
            1,
            "",
            "manager reservation confirm: invalid reservation: a PLR has no confirmation code\n",
        );
    // A second PLR code is added to the installed set.
    let more = issued(&cli, &["reservation", "update", EXPY_UDI, "--plr", PLR]);
    cli.license(
        INSTALL_AT,
        &words(&XCOMMAND, &["Install", &format!("\"{more}\"")]),
    )
    .expect(0, INSTALLED, "");
    let rows = reservation_rows(&cli);
    let piid = rows[0].split('\t').next().unwrap().to_string();
    assert_eq!(
        rows,
        vec![format!(
            "{piid}\t{EXPY_UDI}\tReference Smart Account / DEFAULT\tPLR\t{PLR}=2\treserved\tallowed"
        )]
    );
    assert_eq!(
        license_rows(&cli),
        "Expressway PLR with Export Control\t3\t2 (2 Reserved)\t-\t+ 1\n"
    );
    let returned = printed_code(
        &cli.license(INSTALL_AT, &words(&XCOMMAND, &["Return"])),
        RETURN_LINE,
    );
    cli.manager(&["reservation", "return", &returned]).expect(
        0,
        &format!("returned: product instance {piid} ({EXPY_UDI}); back in the pool: {PLR}=2\n"),
        "",
    );
    assert_eq!(
        license_rows(&cli),
        "Expressway PLR with Export Control\t3\t0\t-\t+ 3\n"
    );
}

#[test]
fn manager_refusals_print_its_message_and_change_nothing() {
    let cli = ucm();
    in_use(&cli);
    cli.pool(ENHANCED, 3);
    ucm_reservation(&cli, INSTALL_AT, &["enable"]).ok();
    let request = request(&cli, INSTALL_AT);
    let four = format!("{ENHANCED}=4");
    let three = format!("{ENHANCED}=3");
    // Not entitled to reservation.
    cli.unchanged(|| cli.manager(&["reservation", "authorize", &request, "--license", &three]))
        .expect(
            1,
            "",
            "manager reservation authorize: the Smart Account \"Reference Smart Account\" is not entitled to License Reservation (manager account --reservation on)\n",
        );
    cli.manager(&["account", "--reservation", "on"]).ok();
    // 003:570: no surplus, and a tag the account never bought.
    for license in [four.as_str(), &format!("{CUWL}=1")] {
        cli.unchanged(|| {
            cli.manager(&["reservation", "authorize", &request, "--license", license])
        })
        .expect(
            1,
            "",
            &format!("manager reservation authorize: {NO_SURPLUS}\n"),
        );
    }
    // Export-controlled functionality for an account under export restrictions.
    cli.manager(&["account", "--export-restricted", "on"])
        .expect(
            0,
            "Reference Smart Account / DEFAULT\nExport restrictions: on\n",
            "",
        );
    cli.unchanged(|| {
        cli.manager(&[
            "reservation", "authorize", &request, "--license", &three, "--export",
        ])
    })
    .expect(
        1,
        "",
        "manager reservation authorize: the Smart Account \"Reference Smart Account\" is under export restrictions: export-controlled functionality needs export authorization keys\n",
    );
    // A damaged request code: the product's message.
    let last = if request.ends_with('0') { '1' } else { '0' };
    let damaged = format!("{}{last}", &request[..request.len() - 1]);
    cli.unchanged(|| {
        cli.manager(&["reservation", "authorize", &damaged, "--license", &three])
    })
    .expect(
        1,
        "",
        "manager reservation authorize: The Reservation Request Code is not valid: the check digits do not match (a character is mistyped or missing)\n",
    );
    // Unknown instances, bad return codes.
    cli.unchanged(|| cli.manager(&["reservation", "confirm", SEED_UDI, "1"]))
        .expect(
            1,
            "",
            &format!(
                "manager reservation confirm: no reservation for product instance {SEED_UDI}\n"
            ),
        );
    cli.unchanged(|| cli.manager(&["reservation", "update", SEED_UDI, "--license", &three]))
        .expect(
            1,
            "",
            &format!(
                "manager reservation update: no reservation for product instance {SEED_UDI}\n"
            ),
        );
    let run = cli.unchanged(|| cli.manager(&["reservation", "return", "CAVfS8-tqmsHn-ntioqo"]));
    assert_eq!((run.code, run.stdout.as_str()), (1, ""), "{run:?}");
    assert!(
        run.stderr.starts_with("manager reservation return: ") && run.stderr.lines().count() == 1,
        "{run:?}"
    );
    // Bad arguments are usage errors (exit 2), nothing written.
    for args in [
        &["reservation", "authorize", &request][..],
        &["reservation", "authorize", &request, "--license", ENHANCED],
        &[
            "reservation",
            "authorize",
            &request,
            "--license",
            &format!("{ENHANCED}=0"),
        ],
        &[
            "reservation",
            "authorize",
            &request,
            "--license",
            &format!("{ENHANCED}=1,2020-03-04"),
        ],
        &[
            "reservation",
            "authorize",
            &request,
            "--license",
            &three,
            "--plr",
            ENHANCED,
        ],
        &["reservation", "update", SEED_UDI],
        &["reservation", "confirm", SEED_UDI],
        &["reservation"],
        &["account", "--reservation", "maybe"],
    ] {
        let run = cli.unchanged(|| cli.manager(args));
        assert_eq!(run.code, 2, "{run:?}");
        assert_eq!(run.stdout, "", "{run:?}");
    }
    // Then it works: the account still has its 3.
    cli.manager(&["account", "--export-restricted", "off"]).ok();
    issued(
        &cli,
        &[
            "reservation",
            "authorize",
            &request,
            "--license",
            &three,
            "--export",
        ],
    );
    assert_eq!(
        license_rows(&cli),
        "UC Manager Enhanced License\t3\t3 (3 Reserved)\t-\t+ 0\n"
    );
}
