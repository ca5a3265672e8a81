//! The state directory: exit 3 for a corrupt or locked directory (`<path>: <error>` on
//! stderr, nothing written), the lock that keeps two invocations from interleaving, the
//! catch-up that is written only with an accepted command, and SPEC §12's other-UDI case.
#![cfg(feature = "manager")]

mod cli;

use std::fs;
use std::time::Duration;

use cli::*;

/// Registered at t0 with one Enhanced license in use.
fn registered() -> Cli {
    let cli = Cli::new();
    cli.registered_with(t0(), ENHANCED, 1);
    cli
}

/// Rewrites one byte of a file in the state directory.
fn poke(cli: &Cli, name: &str, edit: impl FnOnce(&mut Vec<u8>)) {
    let path = cli.path(name);
    let mut bytes = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    edit(&mut bytes);
    fs::write(&path, bytes).unwrap();
}

/// Every kind of command on an unusable directory: exit 3, stderr `<path>: <error>`, nothing
/// written, stdout empty.
#[track_caller]
fn assert_unusable(cli: &Cli, path: &str, error: &str) {
    let prefix = format!("{}: {error}", cli.path(path).display());
    for args in [
        &["show", "license", "status"][..],
        &["declare", BASIC],
        &["license", "smart", "renew", "auth"],
        &["license", "smart", "register", "idtoken", "AAAAtoken"],
        &["tick"],
        &["manager", "offline"],
    ] {
        let run = cli.unchanged(|| cli.license(t0() + days(40), args));
        assert_eq!((run.code, run.stdout.as_str()), (3, ""), "{}", run.line);
        assert!(
            run.stderr.starts_with(&prefix)
                && run.stderr.ends_with('\n')
                && run.stderr.lines().count() == 1,
            "{}\nexpected {prefix:?}…, got {:?}",
            run.line,
            run.stderr
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Exit 3: corrupt
// ---------------------------------------------------------------------------------------------

#[test]
fn corrupt_snapshot_is_exit_3_with_its_path_and_nothing_written() {
    let cli = registered();
    poke(&cli, "agent.snapshot", |b| {
        let middle = b.len() / 2;
        b[middle] ^= 0x01;
    });
    assert_unusable(&cli, "agent.snapshot", "corrupt snapshot: ");
}

#[test]
fn snapshot_with_a_flipped_last_byte_is_exit_3() {
    let cli = registered();
    poke(&cli, "agent.snapshot", |b| {
        let last = b.len() - 1;
        b[last] ^= 0x80;
    });
    assert_unusable(&cli, "agent.snapshot", "corrupt snapshot: ");
}

#[test]
fn truncated_snapshot_is_exit_3() {
    let cli = registered();
    poke(&cli, "agent.snapshot", |b| b.truncate(b.len() / 2));
    assert_unusable(&cli, "agent.snapshot", "");
}

#[test]
fn snapshot_with_the_wrong_magic_is_exit_3() {
    let cli = registered();
    poke(&cli, "agent.snapshot", |b| b[0] ^= 0x20);
    assert_unusable(
        &cli,
        "agent.snapshot",
        "not a smart-agent snapshot (wrong magic)",
    );
    // An empty file is not a snapshot either.
    poke(&cli, "agent.snapshot", Vec::clear);
    assert_unusable(
        &cli,
        "agent.snapshot",
        "not a smart-agent snapshot (wrong magic)",
    );
}

#[test]
fn snapshot_of_an_unsupported_version_is_exit_3() {
    let cli = registered();
    // `SMAGSNAP`, then the format version (big-endian u16): one newer than this crate writes.
    let newer = smart_agent::snapshot::VERSION + 1;
    poke(&cli, "agent.snapshot", |b| {
        assert_eq!(&b[..8], b"SMAGSNAP", "the snapshot header moved");
        assert_eq!(&b[8..10], smart_agent::snapshot::VERSION.to_be_bytes());
        b[8..10].copy_from_slice(&newer.to_be_bytes());
    });
    assert_unusable(
        &cli,
        "agent.snapshot",
        &format!("unsupported snapshot version {newer}"),
    );
}

#[test]
fn corrupt_udi_file_is_exit_3() {
    let cli = registered();
    fs::write(cli.path("udi"), "garbage\n").unwrap();
    assert_unusable(&cli, "udi", "");
}

#[test]
fn corrupt_embedded_manager_state_is_exit_3() {
    let cli = registered();
    // The state is a SQLite database (format version 2): damage to its structure is
    // detected (here the first page's b-tree header); a flipped bit inside a record is not.
    poke(&cli, "manager/state", |b| b[100] ^= 0x01);
    assert_unusable(&cli, "manager/state", "corrupt manager state: ");
}

#[test]
fn a_corrupt_snapshot_is_reported_the_same_after_any_number_of_attempts() {
    // Exit 3 writes nothing, so a later invocation sees exactly the same directory.
    let cli = registered();
    poke(&cli, "agent.snapshot", |b| b[20] ^= 0x01);
    let first = cli.license(t0() + days(1), &["show", "license", "udi"]);
    let second = cli.license(t0() + days(2), &["show", "license", "udi"]);
    assert_eq!(
        (first.code, &first.stderr),
        (second.code, &second.stderr),
        "{first:?}\n{second:?}"
    );
    assert_eq!(first.code, 3);
}

// ---------------------------------------------------------------------------------------------
// Exit 3: locked; the lock keeps invocations apart
// ---------------------------------------------------------------------------------------------

/// Takes the harness's lock the way it does (`std::fs::File::lock`).
fn hold_lock(cli: &Cli, name: &str) -> fs::File {
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(cli.path(name))
        .unwrap();
    file.lock().unwrap();
    file
}

#[test]
fn an_invocation_waits_for_the_lock_and_completes_once_it_is_released() {
    let cli = registered();
    let lock = hold_lock(&cli, "lock");
    let mut running = cli.start_license(t0() + days(31), &["tick"]);
    std::thread::sleep(Duration::from_millis(1000));
    assert!(
        !running.has_exited(),
        "the invocation did not wait for the lock"
    );
    lock.unlock().unwrap();
    drop(lock);
    let run = running.finish();
    run.expect(0, "Feb 3 10:00:00 2027 UTC  Authorization succeeded\n", "");
    assert!(
        run.elapsed >= Duration::from_millis(1000),
        "{:?}",
        run.elapsed
    );
}

#[test]
fn with_lock_wait_0_a_locked_directory_is_exit_3_and_nothing_written() {
    let cli = registered();
    let _lock = hold_lock(&cli, "lock");
    let run = cli.unchanged(|| {
        cli.license(
            t0() + days(31),
            &["--lock-wait", "0", "license", "smart", "renew", "auth"],
        )
    });
    let message = format!(
        "{}: locked by another invocation",
        cli.path("lock").display()
    );
    assert_eq!((run.code, run.stdout.as_str()), (3, ""), "{run:?}");
    assert!(
        run.stderr.starts_with(&message) && run.stderr.lines().count() == 1,
        "expected {message:?}…, got {:?}",
        run.stderr
    );
    assert!(run.elapsed < Duration::from_secs(3), "{:?}", run.elapsed);
}

#[test]
fn the_lock_wait_is_bounded_by_lock_wait_seconds() {
    let cli = registered();
    let _lock = hold_lock(&cli, "lock");
    let run =
        cli.unchanged(|| cli.license(t0(), &["--lock-wait", "1", "show", "license", "status"]));
    assert_eq!((run.code, run.stdout.as_str()), (3, ""), "{run:?}");
    assert!(
        run.stderr.starts_with(&format!(
            "{}: locked by another invocation",
            cli.path("lock").display()
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.elapsed >= Duration::from_millis(900) && run.elapsed < Duration::from_secs(4),
        "{:?}",
        run.elapsed
    );
}

#[test]
fn a_locked_embedded_manager_is_exit_3_after_the_lock_wait() {
    // E.g. a `manager` admin command or `manager serve` holding the embedded manager.
    let cli = registered();
    let _lock = hold_lock(&cli, "manager/lock");
    let run = cli.unchanged(|| cli.license(t0(), &["--lock-wait", "0", "show", "license", "udi"]));
    assert_eq!((run.code, run.stdout.as_str()), (3, ""), "{run:?}");
    assert!(
        run.stderr.starts_with(&format!(
            "{}: locked by another",
            cli.path("manager/lock").display()
        )),
        "{}",
        run.stderr
    );
}

#[test]
fn concurrent_invocations_never_lose_each_others_changes() {
    // Eight invocations at once, each declaring its own tag: a read-modify-write that
    // interleaved would lose some of them.
    let cli = Cli::new();
    cli.declare(t0(), &[ENHANCED]);
    let tags: Vec<String> = (0..8)
        .map(|i| {
            format!(
                "regid.2016-07.com.cisco.UCM_Test{i},12.0_00000000-0000-4000-8000-00000000000{i}"
            )
        })
        .collect();
    let running: Vec<(&String, Running)> = tags
        .iter()
        .map(|tag| {
            (
                tag,
                cli.start_license(t0(), &["--lock-wait", "30", "declare", tag]),
            )
        })
        .collect();
    for (tag, run) in running {
        run.finish().expect(0, &declared_line(tag), "");
    }
    let usage = cli.license(t0(), &["show", "license", "usage"]);
    for tag in &tags {
        assert!(
            usage.ok().contains(tag.as_str()),
            "{tag} lost:\n{}",
            usage.stdout
        );
    }
}

#[test]
fn a_refused_first_command_never_removes_what_a_concurrent_accepted_one_wrote() {
    // A refused first command removes the directory it had to create; an accepted command
    // started at the same moment on the same fresh directory must keep its effect (and its
    // exit 0 must mean it was written).
    for attempt in 0..12 {
        let cli = Cli::new();
        let refused = cli.start_license(t0(), &["license", "smart", "renew", "auth"]);
        let accepted = cli.start_license(t0(), &["declare", ENHANCED]);
        let refused = refused.finish();
        let accepted = accepted.finish();
        refused.expect(1, "", &format!("{RENEW_AUTH_NOT_ALLOWED}\n"));
        accepted.expect(0, &declared_line(ENHANCED), "");
        let usage = cli.license(t0(), &["show", "license", "usage"]);
        assert!(
            usage.ok().contains(ENHANCED),
            "attempt {attempt}: the accepted declare was lost:\n{}",
            usage.stdout
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The catch-up is written only with an accepted command
// ---------------------------------------------------------------------------------------------

#[test]
fn a_refused_command_writes_nothing_not_even_the_catch_up() {
    let cli = registered();
    let token = cli.token(&[]);
    let month = t0() + days(31);
    // The renewal that fell due at t0+30 d runs in memory (the embedded manager answers it),
    // then the command is refused: neither the agent nor the manager is written.
    cli.unchanged(|| cli.license(month, &["license", "smart", "register", "idtoken", &token]))
        .expect(1, "", &format!("{ALREADY_REGISTERED}\n"));
    // The next accepted command replays it at its own time.
    cli.license(month, &["tick"]).expect(
        0,
        "Feb 3 10:00:00 2027 UTC  Authorization succeeded\n",
        "",
    );
}

#[test]
fn a_declined_command_writes_its_catch_up_and_its_failure() {
    let cli = registered();
    cli.license(t0() + days(29), &["manager", "offline"])
        .expect(0, OFFLINE_LINE, "");
    let before = cli.tree();
    let run = cli.license(t0() + days(31), &["license", "smart", "renew", "auth"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert_ne!(before, cli.tree(), "exit 2 wrote nothing");
    let events = cli.license(t0() + days(31), &["events"]);
    assert!(
        events.ok().contains(
            "Feb 3 10:00:00 2027 UTC  Authorization failed: The requested operation was not successful due to communication send error"
        ),
        "{}",
        events.stdout
    );
}

// ---------------------------------------------------------------------------------------------
// The directory's UDI; another system's backup (SPEC §12)
// ---------------------------------------------------------------------------------------------

const OTHER_UDI: &str = "PID:UCM,SN:99999,UUID:0123456789abcdef0123456789abcdef";

#[test]
fn a_different_udi_on_an_existing_directory_is_refused_naming_the_stored_one() {
    // Changed on purpose (issue 9 item 1): `--udi` used to rewrite the directory's UDI and
    // drop its registration without an event.
    let cli = Cli::new();
    cli.license(t0(), &["--udi", SEED_UDI, "declare", ENHANCED])
        .expect(0, &declared_line(ENHANCED), "");
    cli.license(t0(), &["usage", ENHANCED, "1"]).ok();
    cli.pool(ENHANCED, 10);
    let token = cli.token(&[]);
    cli.license(t0(), &["license", "smart", "register", "idtoken", &token])
        .ok();
    for args in [
        &["show", "license", "status"][..],
        &["license", "smart", "renew", "auth"],
        &["tick"],
    ] {
        let mut all = vec!["--udi", OTHER_UDI];
        all.extend_from_slice(args);
        cli.unchanged(|| cli.license(t0() + days(1), &all)).expect(
            1,
            "",
            &format!(
                "--udi {OTHER_UDI}: this state directory belongs to the instance {SEED_UDI}; to bring a backup to another system, make a new directory with `license --state NEW restore-backup {}`\n",
                cli.dir().display()
            ),
        );
    }
    let out = cli
        .license(t0() + days(1), &["show", "license", "status"])
        .ok()
        .to_string();
    assert!(out.contains("  Status: REGISTERED\n"), "{out}");
}

#[test]
fn restore_backup_makes_a_new_instance_unregistered_with_the_evaluation_kept() {
    // SPEC §12: a snapshot restored on another system (another UDI) is unregistered with its
    // evaluation kept; its registration stays unused with the old UDI.
    let backup = Cli::new();
    backup
        .license(t0(), &["--udi", SEED_UDI, "declare", ENHANCED])
        .expect(0, &declared_line(ENHANCED), "");
    backup.license(t0(), &["usage", ENHANCED, "1"]).ok();
    backup.pool(ENHANCED, 10);
    let token = backup.token(&[]);
    // Ten days of evaluation, then registered: 80 days are left and kept.
    backup
        .license(
            t0() + days(10),
            &["license", "smart", "register", "idtoken", &token],
        )
        .ok();
    let later = t0() + days(20);
    let other = Cli::new().with(&["--udi", OTHER_UDI]);
    let backup_dir = backup.dir().to_str().unwrap().to_string();
    let before = backup.tree();
    other
        .license(later, &["restore-backup", &backup_dir])
        .expect(
            0,
            &format!("Restored a backup as a new instance: UDI {OTHER_UDI}. Its registration stays with the old system's UDI, unused; its evaluation is kept (80 days left). Register this instance with a token.\n"),
            "",
        );
    assert_eq!(before, backup.tree(), "the backup was changed");
    let out = other.license(later, &["show", "license", "all"]);
    let out = out.ok();
    assert!(
        out.contains(
            "Registration:\n  Status: UNREGISTERED\n  Export-Controlled Functionality: Not Allowed\n\n\
             License Authorization:\n  Status: EVAL MODE\n\n\
             Evaluation Period:\n  Evaluation Mode: In Use\n  \
             Evaluation Period Remaining: 80 days, 0 hours, 0 minutes, 0 seconds\n"
        ),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "Product Information\n===================\nUDI: {OTHER_UDI}\n"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            " ({ENHANCED})\n  Description: null\n  Count: 1\n  Version: 12.0\n  Status: EvalMode\n"
        )),
        "{out}"
    );
    // The evaluation goes on counting from there; the new UDI is the new directory's.
    let out = other
        .license(later + days(1), &["show", "license", "status"])
        .ok()
        .to_string();
    assert!(
        out.contains("  Evaluation Period Remaining: 79 days, 0 hours, 0 minutes, 0 seconds\n"),
        "{out}"
    );
    // The old system is still registered, and its manager (copied along) knows the old UDI.
    let old = backup
        .license(later, &["show", "license", "status"])
        .ok()
        .to_string();
    assert!(old.contains("  Status: REGISTERED\n"), "{old}");
    let instances = other.manager(&["instances"]);
    assert!(instances.ok().contains(SEED_UDI), "{}", instances.stdout);
}

#[test]
fn restore_backup_needs_a_new_directory_and_another_udi() {
    let backup = Cli::new().with(&["--udi", SEED_UDI]);
    backup.declare(t0(), &[ENHANCED]);
    let backup_dir = backup.dir().to_str().unwrap().to_string();
    // Into an existing state directory: refused.
    let existing = Cli::new();
    existing.declare(t0(), &[BASIC]);
    existing
        .unchanged(|| existing.license(t0(), &["restore-backup", &backup_dir]))
        .expect(
            1,
            "",
            &format!(
                "{}: restore-backup makes a new state directory, and this is not a new or empty one\n",
                existing.dir().display()
            ),
        );
    // Under the backup's own UDI: refused, nothing made.
    let same = Cli::new().with(&["--udi", SEED_UDI]);
    same.license(t0(), &["restore-backup", &backup_dir]).expect(
        1,
        "",
        &format!("--udi {SEED_UDI}: that is the backup's own UDI; restore-backup is for another system (give another --udi, or none for a new one)\n"),
    );
    assert!(!same.dir().exists());
    // From something that is not a state directory: refused.
    let nothing = Cli::new();
    let empty = nothing.sandbox().join("empty");
    fs::create_dir(&empty).unwrap();
    nothing
        .license(t0(), &["restore-backup", empty.to_str().unwrap()])
        .expect(
            1,
            "",
            &format!("{}: not a state directory to restore\n", empty.display()),
        );
}

#[test]
fn the_same_udi_given_again_changes_nothing() {
    let cli = Cli::new().with(&["--udi", SEED_UDI]);
    cli.registered_with(t0(), ENHANCED, 1);
    let out = cli
        .license(t0() + days(1), &["show", "license", "status"])
        .ok()
        .to_string();
    assert!(out.contains("  Status: REGISTERED\n"), "{out}");
}

#[test]
fn the_udi_is_fixed_on_first_use() {
    // Changed on purpose: the UDI is kept in the directory's record (`settings`, CLI state
    // version 2) instead of a file of its own.
    let cli = Cli::new();
    cli.declare(t0(), &[ENHANCED]);
    let first = cli
        .license(t0(), &["show", "license", "udi"])
        .ok()
        .to_string();
    let again = cli
        .license(t0() + days(1), &["show", "license", "udi"])
        .ok()
        .to_string();
    assert_eq!(first, again);
    let record = fs::read_to_string(cli.path("settings")).unwrap();
    assert_eq!(
        record,
        format!(
            "smart-agent CLI state 2\nudi {}manager embedded\n",
            first.trim_start_matches("UDI: ")
        )
    );
    assert!(!cli.path("udi").exists());
}

// ---------------------------------------------------------------------------------------------
// Versions of the state directory (issue 8 item 1): every released one is read, only the
// current one written, a newer one refused
// ---------------------------------------------------------------------------------------------

fn golden_v1() -> Cli {
    let cli = Cli::new();
    copy_tree(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1/cli-state"),
        cli.dir(),
    );
    cli
}

#[test]
fn the_v1_golden_directory_opens_as_its_readme_says_and_is_upgraded_by_its_first_accepted_command()
{
    let cli = golden_v1();
    let now = "2026-07-20T09:00:00Z";
    // A refused command leaves the version-1 files as they are.
    cli.unchanged(|| cli.license(now, &["license", "smart", "deregister", "extra"]))
        .usage_error(1, "unexpected argument 'extra' found");
    cli.unchanged(|| cli.license(now, &["usage", CUWL, "1"]))
        .expect(
            1,
            "",
            "The entitlement tag has not been declared by this product\n",
        );
    // The fixture README's expectations.
    let status = cli
        .license(now, &["show", "license", "status"])
        .ok()
        .to_string();
    for line in [
        "  Status: REGISTERED\n",
        "  Export-Controlled Functionality: Allowed\n",
        "  Status: AUTHORIZED on Jul 11 16:50:00 2026 UTC\n",
        "  Next Communication Attempt: Aug 10 16:50:00 2026 UTC\n",
        "  Communication Deadline: Oct 9 16:50:00 2026 UTC\n",
        "  Evaluation Period Remaining: 89 days, 23 hours, 55 minutes, 0 seconds\n",
    ] {
        assert!(status.contains(line), "missing {line:?} in:\n{status}");
    }
    // Upgraded: the record holds the UDI and the manager, the log has its header.
    assert!(!cli.path("udi").exists());
    assert_eq!(
        fs::read_to_string(cli.path("settings")).unwrap(),
        "smart-agent CLI state 2\nudi PID:UCM,SN:V1CLI001,UUID:5a1e0c5b3d2f4e6a8b7c1d0e2f3a4b06\nmanager embedded\n"
    );
    let log = fs::read_to_string(cli.path("events.log")).unwrap();
    assert!(log.starts_with("smart-agent events 2\n"), "{log}");
    let events = cli.license(now, &["events"]).ok().to_string();
    assert_eq!(events.lines().count(), 13, "{events}");
    cli.license(now, &["license", "smart", "renew", "auth"])
        .expect(0, "Authorization succeeded\n", "");
}

#[test]
fn a_newer_version_of_the_record_or_the_log_is_exit_3_naming_it() {
    let cli = registered();
    let record = fs::read_to_string(cli.path("settings")).unwrap();
    fs::write(
        cli.path("settings"),
        record.replace("smart-agent CLI state 2", "smart-agent CLI state 3"),
    )
    .unwrap();
    assert_unusable(
        &cli,
        "settings",
        "CLI state version 3 is newer than this harness reads (1 to 2): use a newer harness",
    );
    fs::write(cli.path("settings"), record).unwrap();
    let log = fs::read_to_string(cli.path("events.log")).unwrap();
    fs::write(
        cli.path("events.log"),
        log.replacen("smart-agent events 2", "smart-agent events 3", 1),
    )
    .unwrap();
    assert_unusable(
        &cli,
        "events.log",
        "event log version 3 is newer than this harness reads (1 to 2): use a newer harness",
    );
}
