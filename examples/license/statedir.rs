//! The state directory on disk: how an invocation tells a state directory from a place to make
//! one, a damaged one or something else entirely; how it reads every file (checked, capped)
//! before anything is written.
//!
//! ```text
//! DIR/lock            exclusive lock (std::fs::File::lock), held for the whole invocation
//! DIR/settings        the record: CLI state version, UDI, the manager (crate::record; v2)
//! DIR/udi             version 1's record: the UDI alone (removed when upgraded to v2)
//! DIR/agent.snapshot  the agent's snapshot (versioned by the crate)
//! DIR/events.log      the event and alarm log (crate::eventlog; v1 and v2)
//! DIR/manager/        the embedded reference manager (a manager state directory)
//! DIR/manager-offline present while `manager offline`
//! DIR/export-limit    Expressway's export-limit governor (crate::governor); absent: defaults
//! DIR/commit          present only while a commit is written (crate::journal)
//! ```
//!
//! Every file must be a regular file reached without a symbolic link, no larger than any
//! genuine one ([`smart_agent::store::read_regular`]). A directory with any of the harness's
//! own files is a state directory, and then every file it must have is there: a missing one is
//! damage (exit 3), never a reason to start a new instance.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use smart_agent::store::{open_or_create_regular, read_regular, UnsafeFile};

use crate::eventlog::Log;
use crate::journal::Journal;
use crate::outcome::Outcome;
use crate::record::{self, Record};
use smart_agent::Udi;

pub const LOCK: &str = "lock";
pub const SETTINGS: &str = "settings";
pub const UDI: &str = "udi";
pub const SNAPSHOT: &str = "agent.snapshot";
pub const EVENTS: &str = "events.log";
pub const MANAGER: &str = "manager";
pub const OFFLINE: &str = "manager-offline";
pub const EXPORT_LIMIT: &str = "export-limit";
/// The embedded manager's state file (see `smart_agent::manager::state_dir`).
pub const MANAGER_STATE: &str = "state";

/// The harness's own files (besides `lock` and `manager/`).
const OWN_FILES: [&str; 7] = [
    SETTINGS,
    UDI,
    SNAPSHOT,
    EVENTS,
    OFFLINE,
    EXPORT_LIMIT,
    crate::journal::FILE,
];
/// The files a commit journal may write or remove.
pub const JOURNALED: [&str; 6] = [SNAPSHOT, SETTINGS, OFFLINE, EXPORT_LIMIT, EVENTS, UDI];

/// Size limits no genuine file reaches.
const UDI_LIMIT: u64 = 4 << 10;
const SETTINGS_LIMIT: u64 = 1 << 20;
const SNAPSHOT_LIMIT: u64 = 4 << 20;
const EVENTS_LIMIT: u64 = 64 << 20;
const FLAG_LIMIT: u64 = 4 << 10;

/// What is at the `--state` path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    /// Nothing: the first accepted command makes the directory (staged, then renamed).
    Missing,
    /// An empty directory: replaced by the staged one in one rename.
    Empty,
    /// A directory holding only a `lock` and perhaps an embedded manager that `manager` made
    /// before the first `license` command: the harness's files are added in place.
    InPlace,
    /// A state directory.
    State,
}

/// Exit 1: the path is not a state directory and cannot become one.
fn not_a_state_dir(root: &Path, why: &str) -> Outcome {
    Outcome::refused(format!(
        "{}: not a state directory ({why}); give --state a new or empty directory, or one this harness made",
        root.display()
    ))
}

/// Exit 3 for a file of a state directory that is not there.
fn missing(path: &Path) -> Outcome {
    Outcome::unusable_at(
        path,
        "missing while the rest of the state directory is there (restore it from a backup; \
         remove the whole directory only to start over as a new instance)",
    )
}

/// Looks at `root` without changing anything.
pub fn inspect(root: &Path) -> Result<Found, Outcome> {
    if root.as_os_str().is_empty() {
        return Err(Outcome::refused(
            "--state: an empty path is not a state directory",
        ));
    }
    let meta = match fs::metadata(root) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if fs::symlink_metadata(root).is_ok() {
                return Err(not_a_state_dir(root, "a symbolic link to nothing"));
            }
            return Ok(Found::Missing);
        }
        Err(e) => return Err(Outcome::unusable_at(root, e)),
    };
    if !meta.is_dir() {
        let what = if meta.is_file() {
            "a regular file"
        } else {
            "not a directory"
        };
        return Err(not_a_state_dir(root, what));
    }
    let mut names = Vec::new();
    for entry in fs::read_dir(root).map_err(|e| Outcome::unusable_at(root, e))? {
        let entry = entry.map_err(|e| Outcome::unusable_at(root, e))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    let known = |n: &str| {
        n == LOCK
            || n == MANAGER
            || OWN_FILES.contains(&n)
            || OWN_FILES.iter().any(|f| n.strip_suffix(".tmp") == Some(*f))
    };
    if names.iter().any(|n| OWN_FILES.contains(&n.as_str())) {
        return Ok(Found::State);
    }
    let mut others: Vec<&String> = names.iter().filter(|n| !known(n)).collect();
    if !others.is_empty() {
        others.sort();
        let listed: Vec<String> = others
            .iter()
            .take(3)
            .map(|n| crate::text::shown(n).into_owned())
            .collect();
        let more = if others.len() > 3 { ", …" } else { "" };
        return Err(not_a_state_dir(
            root,
            &format!("it holds other files: {}{more}", listed.join(", ")),
        ));
    }
    if names.is_empty() {
        Ok(Found::Empty)
    } else {
        Ok(Found::InPlace)
    }
}

/// Everything an invocation needs from the directory, read and checked before anything is
/// written.
#[derive(Default)]
pub struct Contents {
    /// The version-2 record, if the directory has one.
    pub record: Option<Record>,
    /// The version-1 UDI file's UDI (a leftover beside a record: an interrupted upgrade).
    pub v1_udi: Option<Udi>,
    pub snapshot: Option<Vec<u8>>,
    /// The event log, and its text as stored (to write it only if it changed).
    pub log: Log,
    pub log_text: Option<String>,
    pub offline: bool,
    /// `export-limit`'s text, if the governor was used.
    pub export_limit: Option<String>,
    /// `manager/` is there (with its state file, for a state directory).
    pub manager_dir: bool,
}

impl Contents {
    /// The instance's UDI, from the record or version 1's file.
    pub fn udi(&self) -> Option<&Udi> {
        self.record
            .as_ref()
            .map(|r| &r.udi)
            .or(self.v1_udi.as_ref())
    }
}

/// Reads one of the directory's files: `<path>: <why>` (exit 3) if it is not a regular file
/// reached without a link or larger than `limit`.
pub fn read(path: &Path, limit: u64) -> Result<Option<Vec<u8>>, Outcome> {
    read_regular(path, limit).map_err(|e| Outcome::unusable_at(path, e))
}

fn required(path: &Path, limit: u64) -> Result<Vec<u8>, Outcome> {
    read(path, limit)?.ok_or_else(|| missing(path))
}

fn text(path: &Path, bytes: Vec<u8>) -> Result<String, Outcome> {
    String::from_utf8(bytes).map_err(|_| Outcome::unusable_at(path, "not UTF-8 text"))
}

/// Reads the directory `found` described (the caller holds its lock; a journal was finished).
pub fn read_contents(root: &Path, found: Found) -> Result<Contents, Outcome> {
    let mut contents = Contents::default();
    let manager = root.join(MANAGER);
    contents.manager_dir = match fs::symlink_metadata(&manager) {
        Ok(meta) if meta.is_dir() => true,
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(Outcome::unusable_at(&manager, UnsafeFile::SymbolicLink))
        }
        Ok(_) => return Err(Outcome::unusable_at(&manager, "not a directory")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(Outcome::unusable_at(&manager, e)),
    };
    let flag = root.join(OFFLINE);
    contents.offline = read(&flag, FLAG_LIMIT)?.is_some();
    if found != Found::State {
        if contents.manager_dir {
            check_manager_dir(&manager, false)?;
        }
        return Ok(contents);
    }
    let settings = root.join(SETTINGS);
    if let Some(bytes) = read(&settings, SETTINGS_LIMIT)? {
        let record = Record::parse(&text(&settings, bytes)?)
            .map_err(|e| Outcome::unusable_at(&settings, e))?;
        contents.record = Some(record);
    }
    let udi = root.join(UDI);
    match read(&udi, UDI_LIMIT)? {
        Some(bytes) => {
            let line = text(&udi, bytes)?;
            contents.v1_udi = Some(
                line.trim()
                    .parse()
                    .map_err(|e| Outcome::unusable_at(&udi, e))?,
            );
        }
        // Version 2 keeps the UDI in the record; version 1 must have the file. Which one is
        // missing: the event log's version says.
        None if contents.record.is_none() => {
            let log = read(&root.join(EVENTS), EVENTS_LIMIT)?.unwrap_or_default();
            let v2 = log.starts_with(b"smart-agent events ");
            return Err(missing(&if v2 { settings } else { udi }));
        }
        None => {}
    }
    let embedded = match &contents.record {
        Some(r) => r.manager == record::Manager::Embedded,
        None => contents.manager_dir,
    };
    if contents.manager_dir {
        check_manager_dir(&manager, embedded)?;
    } else if embedded {
        return Err(missing(&manager.join(MANAGER_STATE)));
    }
    let path = root.join(SNAPSHOT);
    contents.snapshot = Some(required(&path, SNAPSHOT_LIMIT)?);
    let path = root.join(EVENTS);
    let log = text(&path, required(&path, EVENTS_LIMIT)?)?;
    contents.log = Log::parse(&log).map_err(|e| Outcome::unusable_at(&path, e))?;
    contents.log_text = Some(log);
    let path = root.join(EXPORT_LIMIT);
    if let Some(bytes) = read(&path, FLAG_LIMIT)? {
        let text = text(&path, bytes)?;
        crate::governor::Stored::parse(&text).map_err(|e| Outcome::unusable_at(&path, e))?;
        contents.export_limit = Some(text);
    }
    Ok(contents)
}

/// The unfinished commit's journal, if a crash left one.
pub fn journal(root: &Path) -> Result<Option<Journal>, Outcome> {
    let path = root.join(crate::journal::FILE);
    match read(&path, crate::journal::LIMIT)? {
        None => Ok(None),
        Some(bytes) => Journal::decode(&bytes)
            .map(Some)
            .map_err(|e| Outcome::unusable_at(&path, format!("unfinished commit: {e}"))),
    }
}

/// Every entry of the embedded manager's directory must be a regular file (no link, FIFO or
/// subdirectory); a state directory's must have its state file.
fn check_manager_dir(dir: &Path, needs_state: bool) -> Result<(), Outcome> {
    for entry in fs::read_dir(dir).map_err(|e| Outcome::unusable_at(dir, e))? {
        let entry = entry.map_err(|e| Outcome::unusable_at(dir, e))?;
        let path = entry.path();
        let meta = fs::symlink_metadata(&path).map_err(|e| Outcome::unusable_at(&path, e))?;
        if meta.file_type().is_symlink() {
            return Err(Outcome::unusable_at(&path, UnsafeFile::SymbolicLink));
        }
        if !meta.is_file() {
            return Err(Outcome::unusable_at(&path, "not a regular file (refused)"));
        }
    }
    let state = dir.join(MANAGER_STATE);
    if needs_state && !state.exists() {
        return Err(missing(&state));
    }
    Ok(())
}

/// Opens (creating if needed) `dir/lock`, never through a link.
pub fn lock_file(dir: &Path) -> Result<fs::File, Outcome> {
    let path = dir.join(LOCK);
    open_or_create_regular(&path, 0o644).map_err(|e| Outcome::unusable_at(&path, e))
}

/// Where a fresh state directory is prepared: `.<name>.<pid>.staging` beside it.
pub fn staging_path(target: &Path) -> (PathBuf, PathBuf) {
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state".into());
    let staging = parent.join(format!(".{name}.{}.staging", std::process::id()));
    (parent, staging)
}

/// Removes staging directories of `target` whose invocation is gone (their lock is free): a
/// crash while preparing a fresh directory leaves one behind.
pub fn remove_stale_staging(target: &Path) {
    let (parent, _) = staging_path(target);
    let Some(name) = target.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return;
    };
    let prefix = format!(".{name}.");
    let Ok(entries) = fs::read_dir(&parent) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = file
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".staging"))
        else {
            continue;
        };
        if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        // A live invocation may not have locked its staging directory yet: where processes
        // can be looked up, one that still runs keeps its directory.
        let proc = Path::new("/proc");
        if proc.is_dir() && proc.join(pid).exists() {
            continue;
        }
        let dir = entry.path();
        let Ok(Some(lock)) = smart_agent::store::open_regular(
            &dir.join(LOCK),
            fs::OpenOptions::new().read(true).write(true),
        ) else {
            continue;
        };
        if lock.try_lock().is_ok() {
            let _ = fs::remove_dir_all(&dir);
        }
    }
}

/// Counts the durable writes of a commit; with `SMART_AGENT_CRASH_AFTER_WRITE=<n>` in the
/// environment (a test hook), the process aborts right after the n-th, as a crash there would.
pub struct Writes {
    done: u32,
    crash_after: Option<u32>,
}

impl Writes {
    pub fn new() -> Writes {
        Writes {
            done: 0,
            crash_after: std::env::var("SMART_AGENT_CRASH_AFTER_WRITE")
                .ok()
                .and_then(|v| v.parse().ok()),
        }
    }

    /// Before the first write: a crash there leaves nothing written.
    pub fn starting(&mut self) {
        if self.crash_after == Some(0) {
            std::process::abort();
        }
    }

    /// One write is durable.
    pub fn wrote(&mut self) {
        self.done += 1;
        if self.crash_after == Some(self.done) {
            std::process::abort();
        }
    }
}
