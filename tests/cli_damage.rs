//! A damaged state directory is never a fresh instance, hostile files are refused without
//! being followed, opened or read whole, and a path that is not a state directory is refused
//! (issue 9 items 2 and 3, and the not-a-state-directory part of item 1). In every case the
//! directory, and anything outside it, is byte-identical afterwards.
#![cfg(feature = "manager")]

mod cli;

use std::fs;
use std::path::Path;
use std::time::Duration;

use cli::*;

/// Registered at t0 with one Enhanced license in use.
fn registered() -> Cli {
    let cli = Cli::new();
    cli.registered_with(t0(), ENHANCED, 1);
    cli
}

/// The commands every refusal is checked with: a display, a local change, a request, the
/// catch-up alone, the log.
const COMMANDS: [&[&str]; 6] = [
    &["show", "license", "status"],
    &["declare", BASIC],
    &["license", "smart", "renew", "auth"],
    &["tick"],
    &["manager", "offline"],
    &["events"],
];

/// Every command: exit `code`, nothing on stdout, one stderr line starting with `prefix`,
/// nothing changed in the directory.
#[track_caller]
fn assert_refused_everywhere(cli: &Cli, code: i32, prefix: &str) {
    for args in COMMANDS {
        let run = cli.unchanged(|| cli.license(t0() + days(40), args));
        assert_eq!((run.code, run.stdout.as_str()), (code, ""), "{}", run.line);
        assert!(
            run.stderr.starts_with(prefix) && run.stderr.lines().count() == 1,
            "{}\nexpected {prefix:?}…, got {:?}",
            run.line,
            run.stderr
        );
    }
}

/// A file outside the state directory, with its content, to check it is never read or
/// touched.
fn outside(cli: &Cli, name: &str, content: &str) -> std::path::PathBuf {
    let path = cli.sandbox().join(name);
    fs::write(&path, content).unwrap();
    path
}

fn symlink(target: &Path, link: &Path) {
    std::os::unix::fs::symlink(target, link).unwrap();
}

fn mkfifo(path: &Path) -> bool {
    std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

const MISSING: &str = "missing while the rest of the state directory is there";

// ---------------------------------------------------------------------------------------------
// Item 2: a damaged directory is never a fresh instance
// ---------------------------------------------------------------------------------------------

#[test]
fn a_missing_snapshot_with_the_rest_there_is_exit_3_naming_it_not_a_new_evaluation() {
    let cli = registered();
    fs::remove_file(cli.path("agent.snapshot")).unwrap();
    let prefix = format!("{}: {MISSING}", cli.path("agent.snapshot").display());
    assert_refused_everywhere(&cli, 3, &prefix);
}

#[test]
fn a_dangling_symlink_in_place_of_the_snapshot_is_exit_3_naming_it() {
    let cli = registered();
    fs::remove_file(cli.path("agent.snapshot")).unwrap();
    symlink(&cli.sandbox().join("nowhere"), &cli.path("agent.snapshot"));
    let prefix = format!(
        "{}: a symbolic link, not a regular file",
        cli.path("agent.snapshot").display()
    );
    assert_refused_everywhere(&cli, 3, &prefix);
    assert!(!cli.sandbox().join("nowhere").exists());
}

#[test]
fn a_missing_embedded_manager_state_is_exit_3_not_a_new_manager() {
    let cli = registered();
    fs::remove_file(cli.path("manager/state")).unwrap();
    let prefix = format!("{}: {MISSING}", cli.path("manager/state").display());
    assert_refused_everywhere(&cli, 3, &prefix);
    // The manager command does not make a new one there either.
    let run = cli.unchanged(|| cli.manager(&["instances"]));
    assert_eq!(run.code, 1, "{run:?}");
}

#[test]
fn a_missing_record_or_event_log_is_exit_3_naming_it() {
    for name in ["settings", "events.log"] {
        let cli = registered();
        fs::remove_file(cli.path(name)).unwrap();
        let prefix = format!("{}: {MISSING}", cli.path(name).display());
        assert_refused_everywhere(&cli, 3, &prefix);
    }
}

// ---------------------------------------------------------------------------------------------
// Item 3: hostile files
// ---------------------------------------------------------------------------------------------

#[test]
fn a_symlinked_lock_is_refused_and_nothing_is_created_outside() {
    let cli = registered();
    let target = cli.sandbox().join("created-outside");
    fs::remove_file(cli.path("lock")).unwrap();
    symlink(&target, &cli.path("lock"));
    let prefix = format!(
        "{}: a symbolic link, not a regular file",
        cli.path("lock").display()
    );
    assert_refused_everywhere(&cli, 3, &prefix);
    assert!(!target.exists(), "the lock was created through the link");
}

#[test]
fn a_symlinked_event_log_is_refused_and_its_target_never_shown() {
    let cli = registered();
    let secret = outside(&cli, "passwd", "root:x:0:0:secret\n");
    fs::remove_file(cli.path("events.log")).unwrap();
    symlink(&secret, &cli.path("events.log"));
    let prefix = format!(
        "{}: a symbolic link, not a regular file",
        cli.path("events.log").display()
    );
    assert_refused_everywhere(&cli, 3, &prefix);
    assert_eq!(fs::read_to_string(&secret).unwrap(), "root:x:0:0:secret\n");
}

#[test]
fn a_symlinked_snapshot_is_refused_even_when_it_points_at_a_good_one() {
    let cli = registered();
    let copy = cli.sandbox().join("snapshot-copy");
    fs::copy(cli.path("agent.snapshot"), &copy).unwrap();
    fs::remove_file(cli.path("agent.snapshot")).unwrap();
    symlink(&copy, &cli.path("agent.snapshot"));
    let prefix = format!(
        "{}: a symbolic link, not a regular file",
        cli.path("agent.snapshot").display()
    );
    assert_refused_everywhere(&cli, 3, &prefix);
}

#[test]
fn symlinks_inside_the_embedded_manager_are_refused() {
    for name in ["manager/lock", "manager/state", "manager/clock"] {
        let cli = registered();
        let copy = cli.sandbox().join("copy");
        fs::copy(cli.path(name), &copy).unwrap();
        fs::remove_file(cli.path(name)).unwrap();
        symlink(&copy, &cli.path(name));
        let prefix = format!(
            "{}: a symbolic link, not a regular file",
            cli.path(name).display()
        );
        assert_refused_everywhere(&cli, 3, &prefix);
    }
}

#[test]
fn a_fifo_in_place_of_a_state_file_is_refused_at_once_not_waited_on() {
    for name in [
        "events.log",
        "agent.snapshot",
        "settings",
        "lock",
        "manager-offline",
    ] {
        let cli = registered();
        let _ = fs::remove_file(cli.path(name));
        if !mkfifo(&cli.path(name)) {
            eprintln!("SKIP: mkfifo is not available");
            return;
        }
        let prefix = format!("{}: a FIFO, not a regular file", cli.path(name).display());
        let run = cli.unchanged(|| cli.license(t0() + days(1), &["show", "license", "status"]));
        assert_eq!((run.code, run.stdout.as_str()), (3, ""), "{}", run.line);
        assert!(run.stderr.starts_with(&prefix), "{name}: {}", run.stderr);
        assert!(run.elapsed < Duration::from_secs(10), "{:?}", run.elapsed);
    }
}

#[test]
fn an_oversized_snapshot_or_log_is_refused_in_bounded_time_and_memory() {
    for name in ["agent.snapshot", "events.log", "settings"] {
        let cli = registered();
        // 3 GiB on paper (sparse): read whole it took 21 s and 9.4 GB of memory.
        fs::OpenOptions::new()
            .write(true)
            .open(cli.path(name))
            .unwrap()
            .set_len(3 << 30)
            .unwrap();
        // With less address space than the file's size, reading it whole would fail.
        let run = cli.unchanged(|| {
            cli.license_limited(t0() + days(1), &["show", "license", "status"], 2 << 20)
        });
        assert_eq!((run.code, run.stdout.as_str()), (3, ""), "{}", run.line);
        assert!(
            run.stderr.starts_with(&format!(
                "{}: 3221225472 bytes, larger than any genuine file of its kind",
                cli.path(name).display()
            )),
            "{name}: {}",
            run.stderr
        );
        assert!(run.elapsed < Duration::from_secs(10), "{:?}", run.elapsed);
    }
}

#[test]
fn a_symlinked_embedded_manager_directory_is_refused() {
    let cli = registered();
    let moved = cli.sandbox().join("manager-elsewhere");
    fs::rename(cli.path("manager"), &moved).unwrap();
    symlink(&moved, &cli.path("manager"));
    let prefix = format!(
        "{}: a symbolic link, not a regular file",
        cli.path("manager").display()
    );
    assert_refused_everywhere(&cli, 3, &prefix);
}

// ---------------------------------------------------------------------------------------------
// Item 1: a path that is not a state directory
// ---------------------------------------------------------------------------------------------

#[test]
fn a_regular_file_as_the_state_directory_is_refused_with_exit_1() {
    let cli = Cli::new();
    let file = outside(&cli, "notes.txt", "my notes\n");
    let run = cli.license_raw(&[
        "--state",
        file.to_str().unwrap(),
        "--now",
        "2027-01-04T10:00:00Z",
        "declare",
        ENHANCED,
    ]);
    run.expect(
        1,
        "",
        &format!(
            "{}: not a state directory (a regular file); give --state a new or empty directory, or one this harness made\n",
            file.display()
        ),
    );
    assert_eq!(fs::read_to_string(&file).unwrap(), "my notes\n");
}

#[test]
fn an_empty_state_path_is_refused_with_exit_1() {
    let cli = Cli::new();
    let run = cli.license_raw(&["--state", "", "--now", "2027-01-04T10:00:00Z", "tick"]);
    run.expect(1, "", "--state: an empty path is not a state directory\n");
    assert_eq!(fs::read_dir(cli.sandbox()).unwrap().count(), 0);
}

#[test]
fn a_directory_holding_other_files_is_refused_with_exit_1_and_left_alone() {
    let cli = Cli::new();
    let dir = cli.sandbox().join("project");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("Cargo.toml"), "[package]\n").unwrap();
    fs::create_dir(dir.join("src")).unwrap();
    for args in COMMANDS {
        let mut all = vec![
            "--state",
            dir.to_str().unwrap(),
            "--now",
            "2027-01-04T10:00:00Z",
        ];
        all.extend_from_slice(args);
        cli.license_raw(&all).expect(
            1,
            "",
            &format!(
                "{}: not a state directory (it holds other files: Cargo.toml, src); give --state a new or empty directory, or one this harness made\n",
                dir.display()
            ),
        );
    }
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["Cargo.toml", "src"]);
}

#[test]
fn an_empty_directory_becomes_the_state_directory() {
    let cli = Cli::new();
    fs::create_dir(cli.dir()).unwrap();
    // Refused: it stays empty.
    cli.license(t0(), &["license", "smart", "renew", "auth"])
        .expect(1, "", &format!("{RENEW_AUTH_NOT_ALLOWED}\n"));
    assert_eq!(fs::read_dir(cli.dir()).unwrap().count(), 0);
    cli.license(t0(), &["declare", ENHANCED])
        .expect(0, &declared_line(ENHANCED), "");
    assert!(cli.path("agent.snapshot").is_file());
}

#[test]
fn a_crash_while_preparing_a_fresh_directory_leaves_nothing_in_the_way() {
    let cli = Cli::new();
    // The crash comes after the first write into the private staging directory.
    let run = cli.license_env(
        t0(),
        &["declare", ENHANCED],
        &[("SMART_AGENT_CRASH_AFTER_WRITE", "1")],
    );
    assert_ne!(run.code, 0, "{run:?}");
    assert!(!cli.dir().exists());
    cli.license(t0(), &["declare", ENHANCED])
        .expect(0, &declared_line(ENHANCED), "");
    // The crashed invocation's staging directory was removed by the next one.
    let left: Vec<String> = fs::read_dir(cli.sandbox())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["state"]);
}
