//! Exit 3 means nothing was committed, and a crash at any point of a commit leaves the state
//! directory as it was before the command or as it is after it (issue 9 item 4): everything is
//! read and checked before anything is written, and the commit journal is the commit point.
#![cfg(feature = "manager")]

mod cli;

use std::fs;
use std::path::Path;

use cli::*;

const CRASH: &str = "SMART_AGENT_CRASH_AFTER_WRITE";

/// A sandbox whose state directory is a copy of `from`.
fn copy_of(from: &Cli) -> Cli {
    let cli = Cli::new();
    copy_tree(from.dir(), cli.dir());
    cli
}

/// Declared and in use, a pool and a one-use token on the embedded manager: ready to register.
fn ready_to_register() -> (Cli, String) {
    let cli = Cli::new();
    cli.declare(t0(), &[ENHANCED]);
    cli.license(t0(), &["usage", ENHANCED, "1"]).ok();
    cli.pool(ENHANCED, 10);
    let token = cli.token(&["--uses", "1"]);
    (cli, token)
}

// ---------------------------------------------------------------------------------------------
// Exit 3: nothing committed
// ---------------------------------------------------------------------------------------------

#[test]
fn register_with_an_unreadable_event_log_commits_nothing_neither_agent_nor_manager() {
    for damage in ["not UTF-8", "a directory"] {
        let (cli, token) = ready_to_register();
        let log = cli.path("events.log");
        match damage {
            "not UTF-8" => fs::write(&log, b"\xff\xfe not text\n").unwrap(),
            _ => {
                fs::remove_file(&log).unwrap();
                fs::create_dir(&log).unwrap();
            }
        }
        let run = cli.unchanged(|| {
            cli.license(
                t0() + minutes(5),
                &["license", "smart", "register", "idtoken", &token],
            )
        });
        assert_eq!(
            (run.code, run.stdout.as_str()),
            (3, ""),
            "{damage}: {run:?}"
        );
        assert!(
            run.stderr.starts_with(&format!("{}: ", log.display())),
            "{damage}: {}",
            run.stderr
        );
        // The manager holds no instance, and the one-use token is still unused.
        cli.manager(&["instances"])
            .expect(0, "no product instances\n", "");
    }
}

// ---------------------------------------------------------------------------------------------
// A crash between any two writes
// ---------------------------------------------------------------------------------------------

/// Runs `args` at `now` on a copy of `before` with a crash after each write in turn (0:
/// before the first); after each crash the directory must open and show either what
/// `before` shows or what an uncrashed run leaves, and the next command must see the same.
/// Returns how many writes the command makes.
fn crash_after_each_write(before: &Cli, now: &str, args: &[&str], look_at: &str) -> u32 {
    let look = |cli: &Cli| {
        cli.license(look_at, &["show", "license", "all"])
            .ok()
            .to_string()
    };
    let shown_before = look(&copy_of(before));
    let uncrashed = copy_of(before);
    let expected = uncrashed.license(now, args);
    assert_ne!(expected.code, 3, "{expected:?}");
    let shown_after = look(&uncrashed);
    let events_after = uncrashed.license(look_at, &["events"]).ok().to_string();
    let mut n = 0;
    loop {
        let cli = copy_of(before);
        let run = cli.license_env(now, args, &[(CRASH, &n.to_string())]);
        if run.code == expected.code && run.stdout == expected.stdout {
            // No crash: the command makes fewer writes than n.
            assert!(n > 1, "the command wrote nothing");
            return n - 1;
        }
        assert_eq!(run.code, -1, "crash after write {n}: {run:?}");
        let shown = look(&cli);
        let expected = if n == 0 { &shown_before } else { &shown_after };
        assert_eq!(&shown, expected, "after a crash after write {n}");
        assert!(!cli.path("commit").exists(), "the journal was not finished");
        if n > 0 {
            let events = cli.license(look_at, &["events"]).ok().to_string();
            assert_eq!(events, events_after, "after a crash after write {n}");
        }
        n += 1;
        assert!(n < 20, "no end to the writes");
    }
}

#[test]
fn a_crash_between_any_two_writes_of_a_registration_leaves_it_before_or_after() {
    let (before, token) = ready_to_register();
    let writes = crash_after_each_write(
        &before,
        "2027-01-04T10:05:00Z",
        &["license", "smart", "register", "idtoken", &token],
        "2027-01-04T10:06:00Z",
    );
    // Journal, manager state, manager clock, snapshot, log, journal removed.
    assert_eq!(writes, 6);
}

#[test]
fn a_crash_before_the_commit_point_leaves_the_token_unused() {
    let (cli, token) = ready_to_register();
    let register = ["license", "smart", "register", "idtoken", token.as_str()];
    let run = cli.license_env(t0() + minutes(5), &register, &[(CRASH, "0")]);
    assert_eq!(run.code, -1, "{run:?}");
    // The manager's answer was never kept: the one-use token registers now.
    let run = cli.license(t0() + minutes(6), &register);
    assert_eq!(run.code, 0, "{run:?}");
    // A header line, then the one instance (issue 11).
    assert_eq!(cli.manager(&["instances"]).ok().lines().count(), 2);
}

#[test]
fn a_crash_between_any_two_writes_of_a_catch_up_and_manager_offline_leaves_it_before_or_after() {
    let cli = Cli::new();
    cli.registered_with(t0(), ENHANCED, 1);
    // Thirty-one days later: the renewal is due (manager state, clock, snapshot, log), and the
    // command sets the flag.
    let writes = crash_after_each_write(
        &cli,
        "2027-02-04T10:00:00Z",
        &["manager", "offline"],
        "2027-02-04T10:00:00Z",
    );
    assert_eq!(writes, 7);
}

#[test]
fn a_crash_between_any_two_writes_of_the_upgrade_of_a_v1_directory_leaves_it_before_or_after() {
    let v1 = Cli::new();
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1/cli-state"),
        v1.dir(),
    );
    let writes = crash_after_each_write(
        &v1,
        "2026-07-20T09:00:00Z",
        &["license", "smart", "renew", "auth"],
        "2026-07-20T09:00:00Z",
    );
    // Journal, manager state, manager clock, snapshot, record, log, udi removed, journal
    // removed.
    assert_eq!(writes, 8);
}
