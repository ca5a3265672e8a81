//! `license --manager-url URL --ca PEM --manager-key PEM [--manager-env …]` against the
//! reference manager served over real HTTPS (`manager serve`, the transports issue's), with
//! its admin commands run alongside; the SPEC §9 messages for a wrong environment, an
//! untrusted CA and a stopped manager.
#![cfg(all(feature = "manager", feature = "transport"))]

mod cli;

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
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("ssm");
        let mut child = Command::new(example("manager"))
            .arg("serve")
            .arg("--state")
            .arg(&state)
            .args(["--listen", "127.0.0.1:0", "--virtual-clock"])
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
        .expect(0, "", "");
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
            &format!("{unknown}\n"),
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
