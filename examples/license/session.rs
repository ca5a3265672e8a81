//! One invocation's view of the state directory ([`crate::statedir`]): locked for the whole
//! invocation, read and checked into memory, caught up to `--now`, and written back only if
//! the command was accepted — through the commit journal ([`crate::journal`]), so that a crash
//! at any point leaves it as it was before the command or as it is after, never in between.
//! Files that did not change are not written. A fresh directory is prepared privately and
//! appears in one rename.
//!
//! The directory remembers its manager ([`crate::record`]): later invocations need no manager
//! flags, flags that differ from the remembered ones are refused (exit 1), and only `manager
//! switch` changes it. `--udi` that differs from the directory's UDI is refused; a backup
//! restored on another system is `restore-backup`.

use std::fs::{self, File, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use smart_agent::driver::{Clock, Driver, DriverError, ManualClock, MemoryStore, SnapshotStore};
use smart_agent::manager::{DirLock, Manager, StateDir};
use smart_agent::store::AtomicFile;
use smart_agent::transport::{HttpsTransport, Transport, TransportConfig};
use smart_agent::{
    Agent, Config, Environment, Event, ManagerPublicKey, Random, SendError, Status, SystemRandom,
    TransportSettings, TrustAnchor, Udi, Uuid,
};

use crate::catchup::{self, Recording};
use crate::eventlog::Log;
use crate::governor::Governor;
use crate::journal::{self, Journal, ManagerWrite};
pub use crate::outcome::{Outcome, Unusable};
use crate::record::{self, Record, Remote};
use crate::show::Style;
use crate::statedir::{self, Contents, Found, Writes};

/// Where the manager is.
pub enum ManagerChoice {
    /// In-process, state under `DIR/manager`.
    Embedded,
    /// Over HTTPS.
    Remote {
        url: String,
        ca: Vec<PathBuf>,
        key: PathBuf,
        environment: Environment,
    },
}

/// What the command does to the directory's identity, decided before it is opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Any command: the remembered manager and UDI must match what is given.
    Normal,
    /// `manager switch`: the directory is pointed at the manager the flags name (none: the
    /// embedded one).
    Switch,
    /// `restore-backup DIR`: a fresh directory made from the backup's snapshot (and embedded
    /// manager), under a new UDI.
    RestoreBackup(PathBuf),
}

/// The options every command takes.
pub struct Globals {
    pub state: PathBuf,
    pub now: Option<DateTime<Utc>>,
    pub udi: Option<Udi>,
    pub style: Style,
    pub manager: ManagerChoice,
    pub lock_wait: Duration,
}

/// The embedded manager, shared with its loopback transport.
pub struct Embedded {
    dir: StateDir,
    lock: DirLock,
    /// The state file's bytes as read (what a commit replaces).
    file: Vec<u8>,
    /// The state as loaded, re-encoded: it is written back only if it changed.
    loaded: Vec<u8>,
    pub manager: Arc<Mutex<Manager>>,
    pub offline: Arc<AtomicBool>,
}

/// The reference manager in-process: requests are answered at the session's clock (virtual
/// time during a catch-up); while offline, like a refused connection.
#[derive(Clone)]
struct Loopback {
    manager: Arc<Mutex<Manager>>,
    offline: Arc<AtomicBool>,
    clock: ManualClock,
}

impl Transport for Loopback {
    fn send(&mut self, _: &TransportSettings, body: &[u8]) -> Result<Vec<u8>, SendError> {
        if self.offline.load(Ordering::SeqCst) {
            return Err(SendError::Send {
                detail: "connection refused (the embedded manager is offline)".into(),
            });
        }
        let mut manager = self.manager.lock().unwrap_or_else(|p| p.into_inner());
        Ok(manager.handle(body, self.clock.now()))
    }
}

/// What the agent is configured with, kept to configure a copy of it (the catch-up's probes).
#[derive(Clone)]
struct Trust {
    udi: Udi,
    environment: Environment,
    anchors: Vec<TrustAnchor>,
}

impl Trust {
    fn config(&self) -> Config {
        Config::new(self.udi.clone(), self.environment, self.anchors.clone())
    }
}

/// An event and how many occurrences it stands for (more than one after a collapsed run of
/// identical failures).
#[derive(Clone)]
pub struct Logged {
    pub event: Event,
    pub count: u64,
}

pub struct Session {
    pub now: DateTime<Utc>,
    pub style: Style,
    pub driver: Driver,
    pub embedded: Option<Embedded>,
    /// For `diagnose`: what the HTTPS transport would use.
    pub transport_config: TransportConfig,
    clock: ManualClock,
    trust: Trust,
    sends: Arc<Mutex<Vec<Option<SendError>>>>,
    events: Arc<Mutex<Vec<Event>>>,
    /// Events standing for more than one occurrence: (index into `events`, count).
    repeats: Vec<(usize, u64)>,
    /// Events before this index came from the catch-up.
    mark: usize,
    /// Where this invocation works: the state directory, or its staging directory.
    dir: PathBuf,
    /// For a fresh state directory: the private staging directory renamed into place by an
    /// accepted command, so that a refused one leaves nothing behind.
    staging: Option<(PathBuf, PathBuf)>,
    /// The directory's record as it will be written.
    pub record: Record,
    /// Expressway's export-limit governor, once used (`DIR/export-limit`).
    pub governor: Option<Governor>,
    /// Log entries that are not the agent's events (the governor's alarms), at `now`.
    extra_log: Vec<String>,
    /// The highest time the directory had seen before this invocation.
    seen_before: Option<DateTime<Utc>>,
    /// What the directory held.
    contents: Contents,
    _lock: File,
}

/// How a commit ended.
pub enum Committed {
    Done,
    /// Another invocation created the state directory first: run again against it.
    Raced,
}

fn lock(dir: &Path, wait: Duration) -> Result<File, Outcome> {
    let file = statedir::lock_file(dir)?;
    let path = dir.join(statedir::LOCK);
    // A wait too long to add to the clock is a wait without end.
    let deadline = Instant::now().checked_add(wait);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(TryLockError::WouldBlock) if deadline.is_none_or(|d| Instant::now() < d) => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(Outcome::unusable_at(
                    &path,
                    "locked by another invocation (retry, or wait longer with --lock-wait SECONDS)",
                ))
            }
            Err(TryLockError::Error(e)) => return Err(Outcome::unusable_at(&path, e)),
        }
    }
}

/// A UDI like the products': `PID:UCM,SN:<8 hex>,UUID:<32 hex>`.
fn generated_udi(pid: &str) -> Result<Udi, Outcome> {
    let mut random = SystemRandom::new();
    let mut bytes = [0u8; 20];
    random
        .fill(&mut bytes)
        .map_err(|e| Outcome::unusable(Unusable(format!("random: {e}"))))?;
    let serial: String = bytes[..4].iter().map(|b| format!("{b:02X}")).collect();
    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(&bytes[4..]);
    Udi::new(pid)
        .and_then(|u| u.with_serial(&serial))
        .map(|u| u.with_uuid(Uuid(uuid)))
        .map_err(|e| Outcome::unusable(Unusable(format!("UDI: {e}"))))
}

/// The embedded manager's lock wait: the manager adds it to the clock, so it is kept to what
/// the clock can hold (a century is a wait without end too).
fn manager_wait(wait: Duration) -> Duration {
    wait.min(Duration::from_secs(100 * 365 * 86_400))
}

/// The remote manager the flags name, read from their files.
fn remote_from_flags(choice: &ManagerChoice) -> Result<Option<Remote>, Outcome> {
    let ManagerChoice::Remote {
        url,
        ca,
        key,
        environment,
    } = choice
    else {
        return Ok(None);
    };
    let text = read_given(key).map_err(Outcome::refused)?;
    let anchor = record::pem_blocks(&text, "PUBLIC KEY")
        .map_err(|e| Outcome::refused(format!("{}: {e}", key.display())))?
        .remove(0);
    ManagerPublicKey::from_spki_der(&anchor)
        .map_err(|e| Outcome::refused(format!("{}: {e}", key.display())))?;
    let mut cas = Vec::new();
    for path in ca {
        let text = read_given(path).map_err(Outcome::apply_failed)?;
        let mut check = TransportConfig::new();
        check
            .add_ca_pem(text.as_bytes())
            .map_err(|e| Outcome::apply_failed(format!("{}: {e}", path.display())))?;
        for der in record::pem_blocks(&text, "CERTIFICATE")
            .map_err(|e| Outcome::apply_failed(format!("{}: {e}", path.display())))?
        {
            if !cas.contains(&der) {
                cas.push(der);
            }
        }
    }
    Ok(Some(Remote {
        url: url.clone(),
        environment: *environment,
        cas,
        anchors: vec![anchor],
    }))
}

/// A file named on the command line (outside the state directory): read whole, but no more
/// than any key or certificate file is, and never a FIFO.
fn read_given(path: &Path) -> Result<String, String> {
    let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    match fs::metadata(path) {
        Ok(m) if !m.is_file() => return Err(fail(&"not a regular file")),
        Ok(m) if m.len() > 1 << 20 => return Err(fail(&"larger than any key or certificate file")),
        Ok(_) => {}
        Err(e) => return Err(fail(&e)),
    }
    fs::read_to_string(path).map_err(|e| fail(&e))
}

/// How `given` differs from `remembered`, or `None` if they agree (the key given is one of
/// the remembered anchors).
fn differences(remembered: &Remote, given: &Remote) -> Option<String> {
    let mut what = Vec::new();
    if given.url != remembered.url {
        what.push("--manager-url");
    }
    if given.environment != remembered.environment {
        what.push("--manager-env");
    }
    let same_cas = given.cas.len() == remembered.cas.len()
        && given.cas.iter().all(|c| remembered.cas.contains(c));
    if !same_cas {
        what.push("--ca");
    }
    if !given.anchors.iter().all(|a| remembered.anchors.contains(a)) {
        what.push("--manager-key");
    }
    (!what.is_empty()).then(|| what.join(", "))
}

/// How to say a manager in messages.
pub fn describe(manager: &record::Manager) -> String {
    match manager {
        record::Manager::Embedded => "the embedded manager".to_string(),
        record::Manager::Remote(r) => format!("the manager at {}", r.describe()),
    }
}

/// The manager this invocation uses, from what the directory remembers and the flags.
fn resolve(
    dir: &Path,
    contents: &Contents,
    fresh: bool,
    given: Option<Remote>,
    mode: &Mode,
) -> Result<record::Manager, Outcome> {
    let remembered = match &contents.record {
        Some(r) => Some(r.manager.clone()),
        None if fresh => None,
        // Version 1 did not remember the manager: embedded if it made one here.
        None if contents.manager_dir => Some(record::Manager::Embedded),
        None => {
            return match given {
                Some(remote) => Ok(record::Manager::Remote(remote)),
                None => Err(Outcome::refused(format!(
                    "{}: this state directory was used with a manager over HTTPS, which the harness that made it did not remember: give --manager-url, --ca and --manager-key (and --manager-env) once; they are remembered from then on",
                    dir.display()
                ))),
            }
        }
    };
    let switch =
        "license manager switch remote --manager-url URL --ca CA.pem --manager-key KEY.pem";
    match (mode, remembered, given) {
        (Mode::Switch, _, Some(remote)) => Ok(record::Manager::Remote(remote)),
        (Mode::Switch, _, None) => Ok(record::Manager::Embedded),
        (_, None, Some(remote)) => Ok(record::Manager::Remote(remote)),
        (_, None, None) => Ok(record::Manager::Embedded),
        (_, Some(record::Manager::Embedded), None) => Ok(record::Manager::Embedded),
        (_, Some(record::Manager::Embedded), Some(_)) => Err(Outcome::refused(format!(
            "{}: this state directory uses the embedded manager; the --manager-* flags name another one, which would not trust its registration. Leave them out, or switch on purpose with `{switch}`",
            dir.display()
        ))),
        (_, Some(record::Manager::Remote(r)), None) => Ok(record::Manager::Remote(r)),
        (_, Some(record::Manager::Remote(r)), Some(given)) => match differences(&r, &given) {
            None => Ok(record::Manager::Remote(r)),
            Some(what) => Err(Outcome::refused(format!(
                "{}: this state directory remembers {}; the {what} given differ. Leave the --manager-* flags out, trust a rotated key with `license manager trust KEY.pem`, or switch on purpose with `{switch}`",
                dir.display(),
                describe(&record::Manager::Remote(r))
            ))),
        },
    }
}

impl Session {
    /// Locks and reads the state directory and catches up to `now`. Nothing is written to
    /// the state directory here (but to finish a crashed predecessor's commit); a fresh one is
    /// prepared in a private staging directory.
    pub fn open(g: &Globals, pid: &str, mode: &Mode) -> Result<Session, Outcome> {
        let target = g.state.clone();
        let found = statedir::inspect(&target)?;
        if let Mode::RestoreBackup(_) = mode {
            if !matches!(found, Found::Missing | Found::Empty) {
                return Err(Outcome::refused(format!(
                    "{}: restore-backup makes a new state directory, and this is not a new or empty one",
                    target.display()
                )));
            }
        }
        match found {
            Found::State | Found::InPlace => Session::open_in(g, pid, mode, target, None),
            Found::Missing | Found::Empty => {
                let (parent, staging) = statedir::staging_path(&target);
                fs::create_dir_all(&parent).map_err(|e| Outcome::unusable_at(&parent, e))?;
                statedir::remove_stale_staging(&target);
                // A leftover of an earlier invocation with the same process id.
                let _ = fs::remove_dir_all(&staging);
                fs::create_dir(&staging).map_err(|e| Outcome::unusable_at(&staging, e))?;
                let opened = Session::open_in(
                    g,
                    pid,
                    mode,
                    staging.clone(),
                    Some((staging.clone(), target)),
                );
                if opened.is_err() {
                    let _ = fs::remove_dir_all(&staging);
                }
                opened
            }
        }
    }

    fn open_in(
        g: &Globals,
        pid: &str,
        mode: &Mode,
        dir: PathBuf,
        staging: Option<(PathBuf, PathBuf)>,
    ) -> Result<Session, Outcome> {
        let lock_file = lock(&dir, g.lock_wait)?;
        // Looked at again under the lock: another invocation may have made it meanwhile.
        let mut found = match staging {
            Some(_) => Found::Empty,
            None => statedir::inspect(&dir)?,
        };
        if found == Found::State {
            if let Some(journal) = statedir::journal(&dir)? {
                finish(&dir, &journal, g.lock_wait)?;
                found = statedir::inspect(&dir)?;
            }
        }
        let fresh = found != Found::State;
        let mut contents = statedir::read_contents(&dir, found)?;
        let given = remote_from_flags(&g.manager)?;
        let (udi, manager) = match mode {
            Mode::RestoreBackup(backup) => {
                let (backup, manager) = read_backup(backup, given, g.lock_wait)?;
                let old = backup.udi().cloned();
                let udi = match &g.udi {
                    Some(u) if Some(u) == old.as_ref() => {
                        return Err(Outcome::refused(format!(
                            "--udi {u}: that is the backup's own UDI; restore-backup is for another system (give another --udi, or none for a new one)"
                        )))
                    }
                    Some(u) => u.clone(),
                    None => generated_udi(pid)?,
                };
                if manager == record::Manager::Embedded {
                    copy_embedded(&backup_dir(mode), &dir, g.lock_wait)?;
                }
                contents.snapshot = backup.snapshot.clone();
                contents.log = backup.log.clone();
                (udi, manager)
            }
            _ => {
                let manager = resolve(&g.state, &contents, fresh, given, mode)?;
                let udi = match (&g.udi, contents.udi()) {
                    (Some(given), Some(stored)) if given != stored => {
                        return Err(Outcome::refused(format!(
                            "--udi {given}: this state directory belongs to the instance {stored}; to bring a backup to another system, make a new directory with `license --state NEW restore-backup {}`",
                            g.state.display()
                        )))
                    }
                    (_, Some(stored)) => stored.clone(),
                    (Some(given), None) => given.clone(),
                    (None, None) => generated_udi(pid)?,
                };
                (udi, manager)
            }
        };
        let now = g
            .now
            .unwrap_or_else(|| smart_agent::driver::SystemClock.now());
        let clock = ManualClock::new(now);
        let mut transport_config = TransportConfig::new();
        let (transport, anchors, environment, embedded): (Box<dyn Transport>, _, _, _) =
            match &manager {
                record::Manager::Embedded => {
                    let embedded = open_embedded(&dir, g.lock_wait, contents.offline)?;
                    let (anchors, environment) = {
                        let m = embedded.manager.lock().unwrap_or_else(|p| p.into_inner());
                        (m.trust_anchors(), m.environment())
                    };
                    let transport = Loopback {
                        manager: embedded.manager.clone(),
                        offline: embedded.offline.clone(),
                        clock: clock.clone(),
                    };
                    (Box::new(transport), anchors, environment, Some(embedded))
                }
                record::Manager::Remote(remote) => {
                    transport_config = transport_config.with_direct_url(remote.url.clone());
                    if !remote.cas.is_empty() {
                        transport_config
                            .add_ca_pem(remote.ca_pem().as_bytes())
                            .map_err(Outcome::apply_failed)?;
                    }
                    let transport = HttpsTransport::new(transport_config.clone())
                        .map_err(|e| Outcome::apply_failed(e.to_string()))?;
                    let anchors = remote.trust_anchors().map_err(Outcome::refused)?;
                    (Box::new(transport), anchors, remote.environment, None)
                }
            };
        let trust = Trust {
            udi: udi.clone(),
            environment,
            anchors,
        };
        let store = MemoryStore::default();
        let snapshot_path = match mode {
            Mode::RestoreBackup(backup) => backup.join(statedir::SNAPSHOT),
            _ => dir.join(statedir::SNAPSHOT),
        };
        if let Some(bytes) = &contents.snapshot {
            let mut s = store.clone();
            s.save(bytes)
                .map_err(|e| Outcome::unusable_at(&snapshot_path, e))?;
        }
        let (transport, sends) = Recording::new(transport);
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        let driver = match Driver::open(trust.config(), transport, clock.clone(), store) {
            Ok(driver) => {
                driver.on_event(move |e| sink.lock().unwrap_or_else(|p| p.into_inner()).push(e))
            }
            Err(DriverError::Restore(e)) => return Err(Outcome::unusable_at(&snapshot_path, e)),
            Err(e) => return Err(Outcome::unusable(Unusable(e.to_string()))),
        };
        let seen_before = driver.agent().highest_seen();
        if let Mode::RestoreBackup(_) = mode {
            // The backup's history comes along; what is written is this directory's own.
            contents.log_text = None;
            contents.snapshot = None;
        }
        let governor = match &contents.export_limit {
            Some(text) => Some(
                Governor::load(text)
                    .map_err(|e| Outcome::unusable_at(&dir.join(statedir::EXPORT_LIMIT), e))?,
            ),
            None => None,
        };
        let mut session = Session {
            now,
            style: Style {
                vocabulary: g.style.vocabulary,
                zone: g.style.zone.clone(),
            },
            driver,
            embedded,
            transport_config,
            clock,
            trust,
            sends,
            events,
            repeats: Vec::new(),
            mark: 0,
            dir,
            staging,
            record: Record { udi, manager },
            governor,
            extra_log: Vec::new(),
            seen_before,
            contents,
            _lock: lock_file,
        };
        // Every deadline that fell due since the last run, each at its own time.
        session
            .catch_up(now)
            .map_err(|e| Outcome::unusable(Unusable(e.to_string())))?;
        session.mark = session.event_count();
        Ok(session)
    }

    /// SPEC §11's clock warning, when `now` is more than an hour before the latest time the
    /// directory has seen (`given`: from --now, else the system clock).
    pub fn clock_warning(&self, given: bool) -> Option<String> {
        let seen = self.seen_before?;
        let behind = seen - self.now;
        if behind <= chrono::TimeDelta::hours(1) {
            return None;
        }
        let secs = behind.num_seconds();
        let (d, h, m) = (secs / 86_400, secs % 86_400 / 3_600, secs % 3_600 / 60);
        Some(format!(
            "Warning: {} {} is {d} days, {h} hours, {m} minutes earlier than {}, the latest time this state directory has seen: deadlines and the evaluation go by the later time",
            if given { "--now" } else { "the system clock" },
            self.style.zone.date(self.now),
            self.style.zone.date(seen),
        ))
    }

    /// The manager the directory remembers (before this command changes it).
    pub fn remembered_manager(&self) -> Option<&record::Manager> {
        match &self.contents.record {
            Some(r) => Some(&r.manager),
            None if self.contents.manager_dir => Some(&record::Manager::Embedded),
            None => None,
        }
    }

    /// The state directory (as given).
    pub fn path(&self) -> &Path {
        match &self.staging {
            Some((_, target)) => target,
            None => &self.dir,
        }
    }

    fn catch_up(&mut self, until: DateTime<Utc>) -> Result<(), DriverError> {
        let trust = self.trust.clone();
        let config = move || trust.config();
        let mut parts = catchup::Parts {
            driver: &mut self.driver,
            clock: &self.clock,
            sends: &self.sends,
            events: &self.events,
            repeats: &mut self.repeats,
            config: &config,
        };
        catchup::run(&mut parts, until)
    }

    /// The agent, for a command at `self.now`.
    pub fn agent(&mut self) -> &mut Agent {
        self.driver.agent_mut()
    }

    /// Sends what the command queued and feeds the answers back (at `now`).
    pub fn exchange(&mut self) {
        // The in-memory store cannot fail.
        let _ = self.driver.advance_to(self.now);
    }

    pub fn status(&self) -> Status {
        self.driver.agent().status(self.now)
    }

    fn event_count(&self) -> usize {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn logged(&self, range: std::ops::Range<usize>) -> Vec<Logged> {
        let events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        let end = range.end.min(events.len());
        (range.start.min(end)..end)
            .map(|i| Logged {
                event: events[i].clone(),
                count: self
                    .repeats
                    .iter()
                    .find(|(at, _)| *at == i)
                    .map_or(1, |(_, n)| *n),
            })
            .collect()
    }

    /// Events the catch-up raised, each with the occurrences it stands for.
    pub fn catch_up_logged(&self) -> Vec<Logged> {
        self.logged(0..self.mark)
    }

    /// Events the catch-up raised.
    pub fn catch_up_events(&self) -> Vec<Event> {
        self.catch_up_logged()
            .into_iter()
            .map(|l| l.event)
            .collect()
    }

    /// Events the command raised.
    pub fn command_events(&self) -> Vec<Event> {
        self.logged(self.mark..usize::MAX)
            .into_iter()
            .map(|l| l.event)
            .collect()
    }

    /// The event log as it will be written: the stored one and this invocation's events.
    pub fn log(&self) -> Log {
        let mut log = self.contents.log.clone();
        for l in self.logged(0..usize::MAX) {
            log.push(
                l.event.at,
                &l.event.kind.to_string(),
                l.event.alarm().map(|a| a.name()),
                l.count,
            );
        }
        for message in &self.extra_log {
            log.push(self.now, message, None, 1);
        }
        log.bound();
        log
    }

    /// Logs a message that is not an agent event (a governor alarm) at `now`.
    pub fn log_extra(&mut self, message: String) {
        self.extra_log.push(message);
    }

    /// Forgets the invocation: nothing was written to the state directory; a staging
    /// directory is removed.
    pub fn abandon(self) {
        if let Some((staging, _)) = &self.staging {
            let _ = fs::remove_dir_all(staging);
        }
    }

    /// What a commit writes: every file that changed.
    fn journal(&self) -> Journal {
        let mut j = Journal::default();
        if let Some(embedded) = &self.embedded {
            let manager = embedded.manager.lock().unwrap_or_else(|p| p.into_inner());
            let state = manager.save_state();
            if state != embedded.loaded {
                j.manager = Some(ManagerWrite {
                    before: journal::hash(&embedded.file),
                    after: state,
                });
            }
            // Admin commands between invocations act at the harness's time.
            if embedded.dir.now().ok() != Some(self.now) {
                j.clock = Some(self.now);
            }
        }
        let snapshot = self.driver.agent().snapshot();
        if self.contents.snapshot.as_deref() != Some(&snapshot[..]) {
            j.files.push((statedir::SNAPSHOT.into(), Some(snapshot)));
        }
        if self.contents.record.as_ref() != Some(&self.record) {
            j.files.push((
                statedir::SETTINGS.into(),
                Some(self.record.format().into_bytes()),
            ));
        }
        if let Some(governor) = &self.governor {
            let text = governor.text();
            if governor.loaded.as_deref() != Some(text.as_str()) {
                j.files
                    .push((statedir::EXPORT_LIMIT.into(), Some(text.into_bytes())));
            }
        }
        if let Some(embedded) = &self.embedded {
            let offline = embedded.offline.load(Ordering::SeqCst);
            if offline != self.contents.offline {
                j.files
                    .push((statedir::OFFLINE.into(), offline.then(Vec::new)));
            }
        }
        let log = self.log().format();
        if self.contents.log_text.as_deref() != Some(log.as_str()) {
            j.files
                .push((statedir::EVENTS.into(), Some(log.into_bytes())));
        }
        if self.contents.v1_udi.is_some() {
            // Version 1's record: the UDI is in the version-2 record now.
            j.files.push((statedir::UDI.into(), None));
        }
        j
    }

    /// Writes everything back (see [`crate::journal`]); a staging directory then becomes the
    /// state directory in one rename.
    pub fn commit(self) -> Result<Committed, Outcome> {
        let mut writes = Writes::new();
        writes.starting();
        let journal = self.journal();
        let embedded = self.embedded.as_ref().map(|e| (&e.dir, &e.lock));
        match &self.staging {
            None => {
                if journal.is_empty() {
                    return Ok(Committed::Done);
                }
                let path = self.dir.join(journal::FILE);
                AtomicFile::new(&path)
                    .store(&journal.encode())
                    .map_err(|e| Outcome::unusable_at(&path, e))?;
                writes.wrote();
                apply(&self.dir, &journal, embedded, &mut writes)?;
                journal::remove(&path).map_err(|e| Outcome::unusable_at(&path, e))?;
                writes.wrote();
                Ok(Committed::Done)
            }
            Some((staging, target)) => {
                // Nothing is there until the rename: no journal needed.
                apply(staging, &journal, embedded, &mut writes)?;
                match fs::rename(staging, target) {
                    Ok(()) => {
                        writes.wrote();
                        Ok(Committed::Done)
                    }
                    Err(_) if matches!(statedir::inspect(target), Ok(f) if f != Found::Empty) => {
                        let _ = fs::remove_dir_all(staging);
                        Ok(Committed::Raced)
                    }
                    Err(e) => {
                        let _ = fs::remove_dir_all(staging);
                        Err(Outcome::unusable_at(target, e))
                    }
                }
            }
        }
    }
}

/// Writes what `journal` says, in its order: manager state, manager clock, then the files.
fn apply(
    dir: &Path,
    journal: &Journal,
    embedded: Option<(&StateDir, &DirLock)>,
    writes: &mut Writes,
) -> Result<(), Outcome> {
    let dir_error = |e: smart_agent::manager::DirError| Outcome::unusable(Unusable(e.to_string()));
    if let Some((state, lock)) = embedded {
        if let Some(m) = &journal.manager {
            let manager = Manager::load_state(&m.after, Box::new(SystemRandom::new()))
                .map_err(|e| Outcome::unusable_at(&state.state_path(), e))?;
            state.store(lock, &manager).map_err(dir_error)?;
            writes.wrote();
        }
        if let Some(t) = journal.clock {
            state.set_clock_locked(lock, t).map_err(dir_error)?;
            writes.wrote();
        }
    }
    for (name, content) in &journal.files {
        let path = dir.join(name);
        match content {
            Some(bytes) => AtomicFile::new(&path).store(bytes),
            None => journal::remove(&path),
        }
        .map_err(|e| Outcome::unusable_at(&path, e))?;
        writes.wrote();
    }
    Ok(())
}

/// Finishes the commit a crash interrupted (its journal is the commit point), before
/// anything else reads the directory.
fn finish(dir: &Path, journal: &Journal, wait: Duration) -> Result<(), Outcome> {
    let path = dir.join(journal::FILE);
    let mut writes = Writes::new();
    let embedded = match (&journal.manager, journal.clock) {
        (None, None) => None,
        _ => {
            // Finishing never makes a manager: its state must be there.
            let state_file = dir.join(statedir::MANAGER).join(statedir::MANAGER_STATE);
            if statedir::read(&state_file, journal::LIMIT)?.is_none() {
                return Err(Outcome::unusable_at(
                    &state_file,
                    "missing, and an unfinished commit names the embedded manager",
                ));
            }
            let (state, lock) = StateDir::open_or_create_locked(
                dir.join(statedir::MANAGER),
                None,
                manager_wait(wait),
            )
            .map_err(|e| Outcome::unusable(Unusable(e.to_string())))?;
            if let Some(m) = &journal.manager {
                let current = statedir::read(&state.state_path(), journal::LIMIT)?;
                let current = current.as_deref().map(journal::hash);
                if current.as_ref() != Some(&m.before)
                    && current.as_ref() != Some(&journal::hash(&m.after))
                {
                    return Err(Outcome::unusable_at(
                        &path,
                        "an interrupted commit cannot be finished: the embedded manager changed since (remove this file to keep the manager as it is and the agent as it was before that commit)",
                    ));
                }
            }
            Some((state, lock))
        }
    };
    apply(
        dir,
        journal,
        embedded.as_ref().map(|(s, l)| (s, l)),
        &mut writes,
    )?;
    journal::remove(&path).map_err(|e| Outcome::unusable_at(&path, e))
}

/// Opens (or makes) the embedded manager of `dir`, keeping its lock.
fn open_embedded(dir: &Path, wait: Duration, offline: bool) -> Result<Embedded, Outcome> {
    let path = dir.join(statedir::MANAGER);
    let (state, lock) = StateDir::open_or_create_locked(&path, None, manager_wait(wait))
        .map_err(|e| Outcome::unusable(Unusable(e.to_string())))?;
    let file = statedir::read(&state.state_path(), journal::LIMIT)?.unwrap_or_default();
    let manager = state
        .load(&lock)
        .map_err(|e| Outcome::unusable(Unusable(e.to_string())))?;
    Ok(Embedded {
        dir: state,
        lock,
        file,
        loaded: manager.save_state(),
        manager: Arc::new(Mutex::new(manager)),
        offline: Arc::new(AtomicBool::new(offline)),
    })
}

fn backup_dir(mode: &Mode) -> PathBuf {
    match mode {
        Mode::RestoreBackup(dir) => dir.clone(),
        _ => PathBuf::new(),
    }
}

/// What `restore-backup` takes from the backup directory (read only, under its lock): its
/// contents and the manager it remembers.
fn read_backup(
    backup: &Path,
    given: Option<Remote>,
    wait: Duration,
) -> Result<(Contents, record::Manager), Outcome> {
    if statedir::inspect(backup)? != Found::State {
        return Err(Outcome::refused(format!(
            "{}: not a state directory to restore",
            backup.display()
        )));
    }
    let _lock = lock(backup, wait)?;
    if statedir::journal(backup)?.is_some() {
        return Err(Outcome::refused(format!(
            "{}: has an unfinished commit; open it once with `license --state {} tick` to finish it, then restore it",
            backup.display(),
            backup.display()
        )));
    }
    let contents = statedir::read_contents(backup, Found::State)?;
    let manager = resolve(backup, &contents, false, given, &Mode::Normal)?;
    Ok((contents, manager))
}

/// Copies the backup's embedded manager into the new directory (under the backup manager's
/// lock): the new system talks to the manager the old one knew.
fn copy_embedded(backup: &Path, dir: &Path, wait: Duration) -> Result<(), Outcome> {
    let from = backup.join(statedir::MANAGER);
    let to = dir.join(statedir::MANAGER);
    let (_, _lock) = StateDir::open_or_create_locked(&from, None, manager_wait(wait))
        .map_err(|e| Outcome::unusable(Unusable(e.to_string())))?;
    fs::create_dir_all(&to).map_err(|e| Outcome::unusable_at(&to, e))?;
    for entry in fs::read_dir(&from).map_err(|e| Outcome::unusable_at(&from, e))? {
        let entry = entry.map_err(|e| Outcome::unusable_at(&from, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == statedir::LOCK || name.ends_with(".tmp") {
            continue;
        }
        let source = entry.path();
        let bytes = statedir::read(&source, journal::LIMIT)?.unwrap_or_default();
        AtomicFile::new(to.join(&name))
            .store(&bytes)
            .map_err(|e| Outcome::unusable_at(&to.join(&name), e))?;
    }
    Ok(())
}
