//! Single-use device keys as an agent and the CLI see them (SPEC §9's row "manager refused a
//! request signed by a superseded or deregistered device key", §12): an agent restored from
//! a backup older than its re-registration or deregistration is told so, with the row's
//! message and detail, and retries as for any other refusal; the CLI's catch-up against a
//! served manager, replayed after a refused command, still converges.
#![cfg(feature = "manager")]

mod cli;
mod common;

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use cli::Now as _;
use common::*;
use smart_agent::{Agent, EventKind, Force, RegistrationState, TimerReason};

const UNKNOWN: &str = "The requested operation was not successful due to an unknown error";
const DETAIL: &str = "this registration was replaced or removed on the manager";

/// Renews the authorization of an agent restored from `backup` and returns the failure it
/// reports, checking the retry.
fn renewal_of_a_restored_backup(sim: &mut Sim, backup: &[u8]) {
    let piids_before = sim.manager.instances();
    sim.agent =
        Agent::restore(backup, config(UDI, sim.manager.trust_anchors(), 9), sim.now).unwrap();
    sim.take_events();
    sim.agent.renew_auth(sim.now).unwrap();
    sim.pump();
    let events = sim.take_events();
    let (failure, next) = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::AuthorizationFailed {
                failure,
                next_attempt,
            } => Some((failure.clone(), *next_attempt)),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no authorization failure in {events:?}"));
    assert_eq!(failure.message(), UNKNOWN);
    assert_eq!(failure.detail().as_deref(), Some(DETAIL));
    assert!(failure.is_retried());
    // Retried like any other refusal: the renewal backoff's first step, 15 minutes.
    assert_eq!(next, Some(sim.now + minutes(15)));
    assert_eq!(
        sim.agent.poll_timeout(),
        Some((sim.now + minutes(15), TimerReason::AuthorizationRenewal))
    );
    let status = sim.status();
    assert_eq!(
        status.authorization.last_communication.map(|a| a.outcome),
        Some(smart_agent::status::Outcome::Failed {
            reason: UNKNOWN.to_string()
        })
    );
    // The manager changed nothing.
    assert_eq!(sim.manager.instances(), piids_before);
}

#[test]
fn an_agent_restored_from_before_its_force_reregistration_is_told_it_was_replaced() {
    let mut sim = registered();
    let backup = sim.agent.snapshot();
    let token = sim.token();
    sim.now += hours(1);
    sim.agent.register(&token, Force::Yes, sim.now).unwrap();
    sim.pump();
    assert_eq!(
        sim.status().registration.state,
        RegistrationState::Registered
    );
    assert_eq!(sim.manager.instances().len(), 1);
    sim.now += hours(1);
    renewal_of_a_restored_backup(&mut sim, &backup);
}

#[test]
fn an_agent_restored_from_before_its_deregistration_is_told_it_was_removed() {
    let mut sim = registered();
    let backup = sim.agent.snapshot();
    sim.now += hours(1);
    sim.agent.deregister(sim.now).unwrap();
    sim.pump();
    assert!(sim.manager.instances().is_empty());
    sim.now += hours(1);
    renewal_of_a_restored_backup(&mut sim, &backup);
    assert!(sim.manager.instances().is_empty());
}

#[test]
fn a_deregister_resent_after_a_crash_raises_no_alarm() {
    let mut sim = registered();
    // The deregister reaches the manager, the answer is lost, the agent resends it.
    sim.link = Link::LoseAnswer;
    sim.agent.deregister(sim.now).unwrap();
    sim.pump();
    assert!(sim.manager.instances().is_empty());
    let received = sim.received.last().unwrap().clone();
    sim.link = Link::Up;
    let answer = sim.manager.handle(&received, sim.now + minutes(1));
    let parsed = smart_agent::wire::decode_response(&answer, 1 << 20).unwrap();
    assert_eq!(
        parsed.response.status,
        smart_agent::wire::ResponseStatus::Ok
    );
    assert!(sim.manager.instances().is_empty());
}

// ---------------------------------------------------------------------------------------------
// The CLI against a served manager
// ---------------------------------------------------------------------------------------------

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
        let mut child = Command::new(cli::example("manager"))
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
        let addr = loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 {
                let _ = child.kill();
                panic!("serve exited early");
            }
            if let Some(addr) = line.trim_end().strip_prefix("listening: ") {
                break addr.to_string();
            }
        };
        Served {
            child,
            state,
            addr,
            _dir: dir,
        }
    }

    fn admin(&self, args: &[&str]) -> cli::Run {
        let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        all.extend(["--state".to_string(), self.state.display().to_string()]);
        cli::start(&cli::example("manager"), &all, self.state.parent().unwrap()).finish()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_cli_catch_up_replayed_after_a_refused_command_still_converges() {
    let served = Served::start();
    served.admin(&["clock", "set", &cli::t0().rfc3339()]).ok();
    served.admin(&["pool", "add", ENHANCED, "10"]).ok();
    let token = served.admin(&["token", "create"]).last_line().to_string();
    let options = [
        "--manager-url".to_string(),
        format!("https://{}/SmartTransport", served.addr),
        "--ca".to_string(),
        served.state.join("ca.pem").display().to_string(),
        "--manager-key".to_string(),
        served
            .state
            .join("manager-key.pub.pem")
            .display()
            .to_string(),
    ];
    let options: Vec<&str> = options.iter().map(String::as_str).collect();
    let cli = cli::Cli::new().with(&options);
    cli.declare(cli::t0(), &[ENHANCED]);
    cli.license(cli::t0(), &["usage", ENHANCED, "1"]).ok();
    cli.license(
        cli::t0(),
        &["license", "smart", "register", "idtoken", &token],
    )
    .ok();
    // 181 days on: the identity renewal and an authorization renewal fall due. The catch-up
    // sends them to the served manager, which applies them; then the command is refused, so
    // the CLI keeps nothing of it.
    let later = cli::t0() + cli::days(181);
    served.admin(&["clock", "set", &later.rfc3339()]).ok();
    cli.unchanged(|| cli.license(later, &["license", "smart", "register", "idtoken", &token]))
        .fails(1, &format!("{}\n", cli::ALREADY_REGISTERED));
    // The manager did apply them: the instance was last heard from at `later`.
    let instances = served.admin(&["instances"]);
    assert!(
        instances.ok().contains(&format!("\t{}\t", later.rfc3339())),
        "{}",
        instances.stdout
    );
    // The next command replays the same requests with their original times: the manager
    // answers them (a repeated usage report is a repeat), and the CLI converges.
    let status = cli.license(later, &["show", "license", "status"]);
    let out = status.ok();
    assert!(out.contains("  Status: REGISTERED\n"), "{out}");
    assert!(out.contains("  Status: AUTHORIZED on "), "{out}");
    let instances = served.admin(&["instances"]);
    let lines: Vec<&str> = instances.ok().lines().collect();
    assert_eq!(lines.len(), 2, "{}", instances.stdout);
    assert!(lines[1].ends_with(&format!("{ENHANCED}=1")), "{}", lines[1]);
}
