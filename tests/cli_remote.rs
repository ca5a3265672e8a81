//! `license --manager-url URL --ca PEM --manager-key PEM [--manager-env …]` against the
//! reference manager served over real HTTPS (`manager serve`, the transports issue's), with
//! its admin commands run alongside; the SPEC §9 messages for a wrong environment, an
//! untrusted CA and a stopped manager.
#![cfg(feature = "manager")]

mod cli;

use std::fs;
use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use cli::*;

/// `manager serve --virtual-clock` on a loopback port, killed when dropped.
struct Served {
    child: Child,
    state: PathBuf,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Served {
    fn start() -> Served {
        Served::start_with(&[])
    }

    /// `serve` with more options.
    fn start_with(options: &[&str]) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("ssm");
        let mut child = Command::new(example("manager"))
            .arg("serve")
            .arg("--state")
            .arg(&state)
            .args(["--listen", "127.0.0.1:0", "--virtual-clock"])
            .args(options)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let mut addr = None;
        let mut seen = Vec::new();
        while addr.is_none() {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 {
                let _ = child.kill();
                panic!("serve exited early: {seen:?}");
            }
            addr = line
                .trim_end()
                .strip_prefix("listening: ")
                .map(str::to_string);
            seen.push(line);
        }
        let served = Served {
            child,
            state,
            addr: addr.unwrap(),
            _dir: dir,
        };
        served.admin(&["clock", "set", &t0().rfc3339()]).ok();
        served
    }

    /// `manager <args> --state <served dir>`.
    fn admin(&self, args: &[&str]) -> Run {
        let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        all.extend(["--state".to_string(), self.state.display().to_string()]);
        start(&example("manager"), &all, self.state.parent().unwrap()).finish()
    }

    fn token(&self) -> String {
        let run = self.admin(&["token", "create"]);
        run.ok();
        run.last_line().to_string()
    }

    fn url(&self) -> String {
        format!("https://{}/SmartTransport", self.addr)
    }

    /// The options that point `license` at this manager.
    fn options(&self, ca: &str) -> Vec<String> {
        vec![
            "--manager-url".into(),
            self.url(),
            "--ca".into(),
            ca.into(),
            "--manager-key".into(),
            self.state.join("manager-key.pub.pem").display().to_string(),
        ]
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A harness directory pointed at `served` (trusting `ca`), one Enhanced license in use.
fn remote_harness(served: &Served, ca: &str, extra: &[&str]) -> Cli {
    let options = served.options(ca);
    let mut all: Vec<&str> = options.iter().map(String::as_str).collect();
    all.extend_from_slice(extra);
    let cli = Cli::new().with(&all);
    cli.declare(t0(), &[ENHANCED]);
    cli.license(t0(), &["usage", ENHANCED, "1"])
        .expect(0, &usage_line(ENHANCED, 1), "");
    cli
}

fn ca_of(served: &Served) -> String {
    served.state.join("ca.pem").display().to_string()
}

#[test]
fn a_served_manager_over_https_registers_and_authorizes_like_the_embedded_one() {
    let served = Served::start();
    served.admin(&["pool", "add", ENHANCED, "10"]).ok();
    let token = served.token();
    let cli = remote_harness(&served, &ca_of(&served), &[]);
    cli.license(t0(), &["license", "smart", "register", "idtoken", &token])
        .expect(
            0,
            &format!(
                "Registration succeeded (Smart Account: Reference Smart Account, Virtual Account: DEFAULT)\n\
                 Authorization succeeded\n\
                 Entitlement {ENHANCED} changed from Waiting to InCompliance\n"
            ),
            "",
        );
    let out = cli
        .license(t0(), &["show", "license", "status"])
        .ok()
        .to_string();
    assert!(
        out.contains(
            "  Status: REGISTERED\n  Smart Account: Reference Smart Account\n  Virtual Account: DEFAULT\n"
        ) && out.contains("  Status: AUTHORIZED on Jan 4 10:00:00 2027 UTC\n"),
        "{out}"
    );
    // Nothing of the remote manager is kept in the harness's directory.
    assert!(!cli.path("manager").exists());
    let instances = served.admin(&["instances"]);
    assert!(
        instances.ok().contains(&format!("{ENHANCED}=1")),
        "{}",
        instances.stdout
    );
    served.admin(&["licenses"]).expect(
        0,
        "Reference Smart Account / DEFAULT\nLicense\tPurchased\tIn Use\tSubstitution\tBalance\n\
         UC Manager Enhanced License\t10\t1\t-\t+ 9\n",
        "",
    );
}

#[test]
fn diagnose_walks_every_step_to_a_served_manager() {
    let served = Served::start();
    let cli = remote_harness(&served, &ca_of(&served), &[]);
    let run = cli.license(t0(), &["diagnose"]);
    let out = run.ok();
    let lines: Vec<&str> = out.lines().collect();
    let steps = [
        "URL: ok (",
        "DNS: ok (",
        "TCP: ok (",
        "TLS: ok (",
        "Manager: ok (",
    ];
    assert_eq!(lines.len(), steps.len(), "{out}");
    for (line, step) in lines.iter().zip(steps) {
        assert!(line.starts_with(step), "{step}… expected:\n{out}");
    }
    assert!(
        out.starts_with(&format!("URL: ok ({})\n", served.url())),
        "{out}"
    );
    assert!(out.contains("development environment"), "{out}");
}

#[test]
fn an_agent_expecting_the_production_environment_rejects_a_development_manager() {
    let served = Served::start();
    served.admin(&["pool", "add", ENHANCED, "10"]).ok();
    let token = served.token();
    let cli = remote_harness(&served, &ca_of(&served), &["--manager-env", "production"]);
    let unknown = "The requested operation was not successful due to an unknown error";
    let detail = "answer signature: signed for the development environment, expected production";
    cli.license(t0(), &["license", "smart", "register", "idtoken", &token])
        .expect(
            2,
            &format!(
                "Communication with Smart Software Licensing failed: {unknown} ({detail})\n\
                 Registration attempt failed, will retry: {unknown} ({detail})  \
                 [SmartLicensingRegistrationFailure]\n"
            ),
            // Why, on stderr too (changed on purpose: it said only "unknown error").
            &format!(
                "{unknown}\n  (the manager signs for the development environment and this directory's agent accepts production signatures only: see --manager-env; `license manager switch remote … --manager-env development` changes it)\n"
            ),
        );
    let out = cli
        .license(t0(), &["show", "license", "status"])
        .ok()
        .to_string();
    assert!(
        out.contains(&format!(
            "  Status: UNREGISTERED - REGISTRATION PENDING\n  Export-Controlled Functionality: Not Allowed\n  \
             Initial Registration: FAILED on Jan 4 10:00:00 2027 UTC\n    Failure reason: {unknown}\n  \
             Next Registration Attempt: Jan 4 10:15:00 2027 UTC\n"
        )),
        "{out}"
    );
}

#[test]
fn a_ca_that_did_not_sign_the_servers_certificate_is_an_invalid_trust_chain_pool() {
    let served = Served::start();
    let token = served.token();
    // Another manager's CA: a harness directory's embedded one.
    let other = Cli::new();
    other.declare(t0(), &[ENHANCED]);
    let wrong_ca = other.path("manager/ca.pem").display().to_string();
    let cli = remote_harness(&served, &wrong_ca, &[]);
    let trust = "The requested operation was not successful due to invalid trust chain pool";
    let run = cli.license(t0(), &["license", "smart", "register", "idtoken", &token]);
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (2, format!("{trust}\n").as_str()),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!(
            "Registration attempt failed, will retry: {trust} (Unknown CA)"
        )),
        "{}",
        run.stdout
    );
}

#[test]
fn a_stopped_manager_is_a_communication_send_error() {
    let mut served = Served::start();
    served.admin(&["pool", "add", ENHANCED, "10"]).ok();
    let token = served.token();
    let cli = remote_harness(&served, &ca_of(&served), &[]);
    cli.license(t0(), &["license", "smart", "register", "idtoken", &token])
        .ok();
    served.stop();
    let run = cli.license(t0() + hours(1), &["license", "smart", "renew", "auth"]);
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (2, format!("{SEND_ERROR}\n").as_str()),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.ends_with("  [SmartLicensingRenewAuthFailure]\n"),
        "{}",
        run.stdout
    );
    let out = cli
        .license(t0() + hours(1), &["show", "license", "status"])
        .ok()
        .to_string();
    assert!(
        out.contains(&format!(
            "  Status: AUTHORIZED on Jan 4 10:00:00 2027 UTC\n  \
             Last Communication Attempt: FAILED on Jan 4 11:00:00 2027 UTC\n    \
             Failure reason: {SEND_ERROR}\n"
        )),
        "{out}"
    );
}

// ---------------------------------------------------------------------------------------------
// The directory remembers its manager (issue 9 item 1)
// ---------------------------------------------------------------------------------------------

/// A directory registered with `served`, its manager flags given only on first use.
fn registered_remotely(served: &Served) -> (Cli, Vec<String>) {
    served.admin(&["pool", "add", ENHANCED, "10"]).ok();
    let token = served.token();
    let options = served.options(&ca_of(served));
    let cli = Cli::new();
    let mut first: Vec<&str> = options.iter().map(String::as_str).collect();
    first.extend(["license", "smart", "register", "idtoken", &token]);
    cli.declare(t0(), &[]);
    cli.license(t0(), &first).ok();
    (cli, options)
}

#[test]
fn remote_flags_left_out_later_keep_the_registration() {
    // Before: a single `show license status` without the remote flags re-verified the
    // identity against a new embedded manager's key and dropped the registration for good.
    let served = Served::start();
    let (cli, options) = registered_remotely(&served);
    let status = cli
        .license(t0() + hours(1), &["show", "license", "status"])
        .ok()
        .to_string();
    assert!(status.contains("  Status: REGISTERED\n"), "{status}");
    assert!(
        !cli.path("manager").exists(),
        "an embedded manager was made"
    );
    // A renewal without the flags goes to the remembered manager.
    cli.license(t0() + hours(1), &["license", "smart", "renew", "auth"])
        .expect(0, "Authorization succeeded\n", "");
    // The same flags again are fine.
    let mut again: Vec<&str> = options.iter().map(String::as_str).collect();
    again.extend(["show", "license", "status"]);
    let status = cli.license(t0() + hours(2), &again).ok().to_string();
    assert!(status.contains("  Status: REGISTERED\n"), "{status}");
    let shown = cli.license(t0() + hours(2), &["manager"]).ok().to_string();
    assert!(
        shown.starts_with(&format!(
            "Manager: {}\nEnvironment: development\nCA certificates: 1\nTrust anchor: ",
            served.url()
        )),
        "{shown}"
    );
}

#[test]
fn flags_naming_another_manager_are_refused_naming_the_remembered_one() {
    let served = Served::start();
    let (cli, _) = registered_remotely(&served);
    let other = Served::start();
    let options = other.options(&ca_of(&other));
    let mut args: Vec<&str> = options.iter().map(String::as_str).collect();
    args.extend(["show", "license", "status"]);
    let run = cli.unchanged(|| cli.license(t0() + hours(1), &args));
    assert_eq!((run.code, run.stdout.as_str()), (1, ""), "{run:?}");
    assert_eq!(
        run.stderr,
        format!(
            "{}: this state directory remembers the manager at {} (environment development, 1 CA certificate, 1 trust anchor); the --manager-url, --ca, --manager-key given differ. Leave the --manager-* flags out, trust a rotated key with `license manager trust KEY.pem`, or switch on purpose with `license manager switch remote --manager-url URL --ca CA.pem --manager-key KEY.pem`\n",
            cli.dir().display(),
            served.url()
        )
    );
}

#[test]
fn remote_flags_on_an_embedded_directory_are_refused() {
    let served = Served::start();
    let cli = Cli::new();
    cli.registered_with(t0(), ENHANCED, 1);
    let options = served.options(&ca_of(&served));
    let mut args: Vec<&str> = options.iter().map(String::as_str).collect();
    args.extend(["show", "license", "status"]);
    cli.unchanged(|| cli.license(t0() + hours(1), &args)).expect(
        1,
        "",
        &format!(
            "{}: this state directory uses the embedded manager; the --manager-* flags name another one, which would not trust its registration. Leave them out, or switch on purpose with `license manager switch remote --manager-url URL --ca CA.pem --manager-key KEY.pem`\n",
            cli.dir().display()
        ),
    );
}

#[test]
fn a_version_1_remote_directory_asks_for_the_flags_once_and_then_remembers_them() {
    let served = Served::start();
    let (cli, options) = registered_remotely(&served);
    // Make it what version 1 wrote: the UDI in its own file, no record, the old log format.
    let record = fs::read_to_string(cli.path("settings")).unwrap();
    let udi = record
        .lines()
        .find_map(|l| l.strip_prefix("udi "))
        .unwrap()
        .to_string();
    fs::write(cli.path("udi"), format!("{udi}\n")).unwrap();
    fs::remove_file(cli.path("settings")).unwrap();
    let log = fs::read_to_string(cli.path("events.log")).unwrap();
    let v1: String = log
        .lines()
        .skip(1)
        .map(|l| l.splitn(4, '\t').take(3).collect::<Vec<_>>().join("\t") + "\n")
        .collect();
    fs::write(cli.path("events.log"), v1).unwrap();
    cli.unchanged(|| cli.license(t0() + hours(1), &["show", "license", "status"]))
        .expect(
            1,
            "",
            &format!(
                "{}: this state directory was used with a manager over HTTPS, which the harness that made it did not remember: give --manager-url, --ca and --manager-key (and --manager-env) once; they are remembered from then on\n",
                cli.dir().display()
            ),
        );
    let mut once: Vec<&str> = options.iter().map(String::as_str).collect();
    once.extend(["license", "smart", "renew", "auth"]);
    cli.license(t0() + hours(1), &once)
        .expect(0, "Authorization succeeded\n", "");
    assert!(!cli.path("udi").exists());
    let status = cli
        .license(t0() + hours(2), &["show", "license", "status"])
        .ok()
        .to_string();
    assert!(status.contains("  Status: REGISTERED\n"), "{status}");
}

#[test]
fn switching_managers_keeps_the_registration_unused_and_switching_back_restores_it() {
    let served = Served::start();
    let cli = Cli::new();
    cli.registered_with(t0(), ENHANCED, 1);
    let options = served.options(&ca_of(&served));
    let mut args: Vec<&str> = options.iter().map(String::as_str).collect();
    args.extend(["manager", "switch", "remote"]);
    let run = cli.license(t0() + hours(1), &args);
    assert_eq!(
        run.ok(),
        format!(
            "Switched from the embedded manager to the manager at {} (environment development, 1 CA certificate, 1 trust anchor).\n\
             Warning: the registration was made with the other manager, which signed it; this one does not trust it. It stays in the snapshot, unused, and comes back if you switch back; register with a token of this manager to replace it.\n",
            served.url()
        )
    );
    let status = cli
        .license(t0() + hours(1), &["show", "license", "status"])
        .ok()
        .to_string();
    assert!(status.contains("  Status: UNREGISTERED\n"), "{status}");
    cli.license(t0() + hours(2), &["manager", "switch", "embedded"])
        .ok();
    let status = cli
        .license(t0() + hours(2), &["show", "license", "status"])
        .ok()
        .to_string();
    assert!(status.contains("  Status: REGISTERED\n"), "{status}");
}

#[test]
fn manager_trust_adds_a_rotated_key_that_the_flags_may_then_name() {
    let served = Served::start();
    let (cli, _) = registered_remotely(&served);
    // Another key (here another manager's): trusted on purpose, it may then be given.
    let other = Served::start();
    let key = other.state.join("manager-key.pub.pem");
    let run = cli.license(
        t0() + hours(1),
        &["manager", "trust", key.to_str().unwrap()],
    );
    assert!(
        run.ok().starts_with("Trusting the key ") && run.stdout.ends_with("(2 trust anchors).\n"),
        "{}",
        run.stdout
    );
    let shown = cli.license(t0() + hours(1), &["manager"]).ok().to_string();
    assert_eq!(shown.matches("Trust anchor: ").count(), 2, "{shown}");
    let mut args = served.options(&ca_of(&served));
    let last = args.len() - 1;
    args[last] = key.display().to_string();
    let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
    all.extend(["show", "license", "status"]);
    let status = cli.license(t0() + hours(1), &all).ok().to_string();
    assert!(status.contains("  Status: REGISTERED\n"), "{status}");
}

// ---------------------------------------------------------------------------------------------
// serve --no-export-keys (SPEC §7)
// ---------------------------------------------------------------------------------------------

#[test]
fn a_manager_served_without_export_keys_answers_not_supported_and_the_agent_says_so() {
    const FEATURE: &str = "CUCM_Export_Restricted_Authorization_Key";
    const NOT_SUPPORTED: &str =
        "Export authorization keys are not supported by this Smart Software Manager";
    let served = Served::start_with(&["--no-export-keys"]);
    served.admin(&["account", "--export-restricted", "on"]).ok();
    served.admin(&["export-key", "add", FEATURE, "1"]).ok();
    served.admin(&["export-key", "list"]).expect(
        0,
        &format!(
            "Reference Smart Account / DEFAULT\n\
             (export authorization keys are not supported by this manager: serve --no-export-keys)\n\
             Feature\tTotal\tIn Use\n{FEATURE}\t1\t0\n"
        ),
        "",
    );
    let (cli, options) = registered_remotely(&served);
    let mut args: Vec<&str> = options.iter().map(String::as_str).collect();
    args.extend(["license", "smart", "export", "request", "local", FEATURE]);
    cli.license(t0(), &args).expect(
        2,
        &format!("Export authorization key for {FEATURE} refused: {NOT_SUPPORTED}\n"),
        &format!("{NOT_SUPPORTED}\n"),
    );
    // Nothing was granted.
    let list = served.admin(&["export-key", "list"]);
    assert!(
        list.ok().ends_with(&format!("{FEATURE}\t1\t0\n")),
        "{}",
        list.stdout
    );
}
