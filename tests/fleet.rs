//! The fleet simulation (`examples/fleet`, issue 14 item 2), run as the built example binary:
//! the same seed gives the same digest with no violation, and a deliberately broken invariant
//! makes the run fail with the line that replays it.
#![cfg(feature = "manager")]

mod cli;

use std::process::{Command, Output};

fn fleet(args: &[&str]) -> std::process::Child {
    Command::new(cli::example("fleet"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the fleet example starts")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn line<'a>(stdout: &'a str, prefix: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{stdout}"))
}

#[test]
fn the_same_seed_gives_the_same_digest_and_no_violation() {
    let args = ["--agents", "300", "--years", "1", "--seed", "7"];
    // Both runs at once: they share nothing but the binary.
    let first = fleet(&args);
    let second = fleet(&args);
    let outputs = [first, second].map(|c| c.wait_with_output().expect("the run ends"));
    let mut digests = Vec::new();
    for out in &outputs {
        let (stdout, stderr) = text(out);
        assert!(out.status.success(), "the run failed:\n{stdout}\n{stderr}");
        assert_eq!(line(&stdout, "violations:"), "violations: 0");
        // The checks really ran, and the faults really happened.
        for check in [
            "manager consumption = usage last acknowledged",
            "every instance held is accounted for",
            "no AUTHORIZED past the deadline",
            "evaluation never extended",
            "license report = reference allocation",
            "every reservation held is installed",
            "converged to the expected state",
            "rejected answer left the licensing part byte-identical",
        ] {
            let row = stdout
                .lines()
                .find(|l| l.contains(check))
                .unwrap_or_else(|| panic!("check {check:?} not reported:\n{stdout}"));
            let count: u64 = row.split_whitespace().next().unwrap().parse().unwrap();
            assert!(count > 0, "check {check:?} never ran:\n{stdout}");
        }
        let faults = line(&stdout, "faults:");
        assert!(!faults.contains("crashes 0 "), "{faults}");
        assert!(!faults.contains("back 0;"), "{faults}");
        let reservations = line(&stdout, "reservations:");
        assert!(!reservations.contains("installed 0,"), "{reservations}");
        digests.push(line(&stdout, "digest:").to_string());
    }
    assert_eq!(digests[0], digests[1]);
}

#[test]
fn a_broken_invariant_fails_the_run_with_the_replay_line() {
    let child = fleet(&[
        "--agents",
        "40",
        "--years",
        "1",
        "--seed",
        "3",
        "--break-invariant",
        "evaluation",
    ]);
    let out = child.wait_with_output().expect("the run ends");
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("evaluation grew"), "{stderr}");
    let replay = stderr
        .lines()
        .find(|l| l.starts_with("replay: "))
        .unwrap_or_else(|| panic!("no replay line:\n{stderr}"));
    assert!(
        replay.contains("--agents 40 --years 1 --seed 3 --break-invariant evaluation")
            && replay.contains("first violation: agent "),
        "{replay}"
    );
}
