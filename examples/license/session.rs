//! One invocation's view of the state directory: locked for the whole invocation, loaded into
//! memory, caught up to `--now`, and written back only if the command was accepted.
//!
//! ```text
//! DIR/lock            exclusive lock (std::fs::File::lock)
//! DIR/udi             the instance's UDI (long form)
//! DIR/agent.snapshot  the agent's snapshot (atomic replace)
//! DIR/events.log      the event and alarm log, one line per event
//! DIR/manager/        the embedded reference manager (a manager state directory)
//! DIR/manager-offline present while `manager offline`
//! ```

use std::fs::{self, File, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use smart_agent::driver::{Clock, Driver, DriverError, ManualClock, MemoryStore, SnapshotStore};
use smart_agent::manager::{DirLock, Manager, StateDir};
use smart_agent::store::AtomicFile;
use smart_agent::transport::{HttpsTransport, Transport, TransportConfig};
use smart_agent::{
    Agent, Config, Environment, Event, ManagerPublicKey, Random, SendError, Status, SystemRandom,
    TransportSettings, TrustAnchor, Udi, Uuid,
};

use crate::show::Style;

/// Where the manager is.
pub enum ManagerChoice {
    /// In-process, state under `DIR/manager`.
    Embedded,
    /// Over HTTPS.
    Remote {
        url: String,
        ca: Option<PathBuf>,
        key: PathBuf,
        environment: Environment,
    },
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

/// Why an invocation cannot even start (exit 3): `<path>: <error>`.
pub struct Unusable(pub String);

/// Exit 3 for an error that names its own path (the manager directory's errors do).
fn unusable_error(e: impl std::fmt::Display) -> Outcome {
    Outcome::unusable(Unusable(e.to_string()))
}

fn unusable(path: &Path, e: impl std::fmt::Display) -> Unusable {
    Unusable(format!("{}: {e}", path.display()))
}

/// The embedded manager, shared with its loopback transport.
pub struct Embedded {
    dir: StateDir,
    lock: DirLock,
    pub manager: Arc<Mutex<Manager>>,
    pub offline: Arc<AtomicBool>,
}

/// The reference manager in-process: requests are answered at the session's clock (virtual
/// time during a catch-up); while offline, like a refused connection.
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

pub struct Session {
    pub now: DateTime<Utc>,
    pub style: Style,
    pub driver: Driver,
    pub embedded: Option<Embedded>,
    /// For `diagnose`: what the HTTPS transport would use.
    pub transport_config: TransportConfig,
    events: Arc<Mutex<Vec<Event>>>,
    /// Events before this index came from the catch-up.
    mark: usize,
    /// Where this invocation works: the state directory, or its staging directory.
    dir: PathBuf,
    /// For a fresh state directory: the private staging directory renamed into place by an
    /// accepted command, so that a refused one leaves nothing behind.
    staging: Option<(PathBuf, PathBuf)>,
    udi: Udi,
    _lock: File,
}

/// How a commit ended.
pub enum Committed {
    Done,
    /// Another invocation created the state directory first: run again against it.
    Raced,
}

fn lock(dir: &Path, wait: Duration) -> Result<File, Unusable> {
    let path = dir.join("lock");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| unusable(&path, e))?;
    let deadline = Instant::now() + wait;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(unusable(
                    &path,
                    "locked by another invocation (retry, or wait longer with --lock-wait SECONDS)",
                ))
            }
            Err(TryLockError::Error(e)) => return Err(unusable(&path, e)),
        }
    }
}

/// A UDI like the products': `PID:UCM,SN:<8 hex>,UUID:<32 hex>`.
fn generated_udi(pid: &str) -> Result<Udi, Unusable> {
    let mut random = SystemRandom::new();
    let mut bytes = [0u8; 20];
    random
        .fill(&mut bytes)
        .map_err(|e| Unusable(format!("random: {e}")))?;
    let serial: String = bytes[..4].iter().map(|b| format!("{b:02X}")).collect();
    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(&bytes[4..]);
    Udi::new(pid)
        .and_then(|u| u.with_serial(&serial))
        .map(|u| u.with_uuid(Uuid(uuid)))
        .map_err(|e| Unusable(format!("UDI: {e}")))
}

impl Session {
    /// Locks and loads the state directory and catches up to `now`. Nothing is written to
    /// the state directory here; a fresh one is prepared in a private staging directory.
    pub fn open(g: &Globals, pid: &str) -> Result<Session, Outcome> {
        let target = g.state.clone();
        if target.exists() {
            return Session::open_in(g, pid, target, None);
        }
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "state".into());
        fs::create_dir_all(&parent).map_err(|e| Outcome::unusable(unusable(&parent, e)))?;
        let staging = parent.join(format!(".{name}.{}.staging", std::process::id()));
        // A leftover from a crashed invocation of the same pid would only hold a stale start.
        let _ = fs::remove_dir_all(&staging);
        fs::create_dir(&staging).map_err(|e| Outcome::unusable(unusable(&staging, e)))?;
        let opened = Session::open_in(g, pid, staging.clone(), Some((staging.clone(), target)));
        if opened.is_err() {
            let _ = fs::remove_dir_all(&staging);
        }
        opened
    }

    fn open_in(
        g: &Globals,
        pid: &str,
        dir: PathBuf,
        staging: Option<(PathBuf, PathBuf)>,
    ) -> Result<Session, Outcome> {
        let lock_file = lock(&dir, g.lock_wait).map_err(Outcome::unusable)?;
        let now = g
            .now
            .unwrap_or_else(|| smart_agent::driver::SystemClock.now());
        let udi_path = dir.join("udi");
        let stored_udi = match fs::read_to_string(&udi_path) {
            Ok(text) => Some(
                text.trim()
                    .parse::<Udi>()
                    .map_err(|e| Outcome::unusable(unusable(&udi_path, e)))?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Outcome::unusable(unusable(&udi_path, e))),
        };
        let udi = match (&g.udi, stored_udi) {
            (Some(given), _) => given.clone(),
            (None, Some(stored)) => stored,
            (None, None) => generated_udi(pid).map_err(Outcome::unusable)?,
        };
        let snapshot_path = dir.join("agent.snapshot");
        let snapshot = AtomicFile::new(&snapshot_path)
            .load()
            .map_err(|e| Outcome::unusable(unusable(&snapshot_path, e)))?;
        let clock = ManualClock::new(now);
        let mut transport_config = TransportConfig::new();
        let (transport, anchors, environment, embedded): (Box<dyn Transport>, _, _, _) = match &g
            .manager
        {
            ManagerChoice::Embedded => {
                let path = dir.join("manager");
                let (state, dir_lock) = StateDir::open_or_create_locked(&path, None, g.lock_wait)
                    .map_err(unusable_error)?;
                let manager = state.load(&dir_lock).map_err(unusable_error)?;
                let anchors = manager.trust_anchors();
                let environment = manager.environment();
                let manager = Arc::new(Mutex::new(manager));
                let offline = Arc::new(AtomicBool::new(dir.join("manager-offline").exists()));
                let transport = Loopback {
                    manager: manager.clone(),
                    offline: offline.clone(),
                    clock: clock.clone(),
                };
                let embedded = Embedded {
                    dir: state,
                    lock: dir_lock,
                    manager,
                    offline,
                };
                (Box::new(transport), anchors, environment, Some(embedded))
            }
            ManagerChoice::Remote {
                url,
                ca,
                key,
                environment,
            } => {
                let pem = fs::read_to_string(key)
                    .map_err(|e| Outcome::refused(format!("{}: {e}", key.display())))?;
                let key = ManagerPublicKey::from_spki_pem(&pem)
                    .map_err(|e| Outcome::refused(format!("{}: {e}", key.display())))?;
                transport_config = transport_config.with_direct_url(url.clone());
                if let Some(ca) = ca {
                    let bytes = fs::read(ca)
                        .map_err(|e| Outcome::apply_failed(format!("{}: {e}", ca.display())))?;
                    transport_config
                        .add_ca_pem(&bytes)
                        .map_err(|e| Outcome::apply_failed(format!("{}: {e}", ca.display())))?;
                }
                let transport = HttpsTransport::new(transport_config.clone())
                    .map_err(|e| Outcome::apply_failed(e.to_string()))?;
                let anchors = vec![TrustAnchor::new(key, *environment)];
                (Box::new(transport), anchors, *environment, None)
            }
        };
        let config = Config::new(udi.clone(), environment, anchors);
        let store = MemoryStore::default();
        if let Some(bytes) = &snapshot {
            let mut s = store.clone();
            s.save(bytes)
                .map_err(|e| Outcome::unusable(unusable(&snapshot_path, e)))?;
        }
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        let driver = match Driver::open(config, transport, clock, store) {
            Ok(driver) => {
                driver.on_event(move |e| sink.lock().unwrap_or_else(|p| p.into_inner()).push(e))
            }
            Err(DriverError::Restore(e)) => {
                return Err(Outcome::unusable(unusable(&snapshot_path, e)))
            }
            Err(e) => return Err(unusable_error(e)),
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
            events,
            mark: 0,
            dir,
            staging,
            udi,
            _lock: lock_file,
        };
        // Every deadline that fell due since the last run, each at its own time.
        session.driver.advance_to(now).map_err(unusable_error)?;
        session.mark = session.all_events().len();
        Ok(session)
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

    fn all_events(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Events the catch-up raised.
    pub fn catch_up_events(&self) -> Vec<Event> {
        self.all_events()[..self.mark].to_vec()
    }

    /// Events the command raised.
    pub fn command_events(&self) -> Vec<Event> {
        self.all_events()[self.mark..].to_vec()
    }

    /// The event log as stored, oldest first, followed by this invocation's events.
    pub fn log(&self) -> Result<Vec<String>, Outcome> {
        let path = self.dir.join("events.log");
        let mut lines = match fs::read_to_string(&path) {
            Ok(text) => text.lines().map(str::to_string).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Outcome::unusable(unusable(&path, e))),
        };
        lines.extend(self.all_events().iter().map(log_line));
        Ok(lines)
    }

    /// Forgets the invocation: nothing was written to the state directory; a staging
    /// directory is removed.
    pub fn abandon(self) {
        if let Some((staging, _)) = &self.staging {
            let _ = fs::remove_dir_all(staging);
        }
    }

    /// Writes everything back, atomically file by file: manager, then agent, then the log; a
    /// staging directory then becomes the state directory in one rename.
    pub fn commit(self) -> Result<Committed, Outcome> {
        let staging = self.staging.clone();
        self.write()?;
        let Some((staging, target)) = staging else {
            return Ok(Committed::Done);
        };
        match fs::rename(&staging, &target) {
            Ok(()) => Ok(Committed::Done),
            Err(_) if target.exists() => {
                let _ = fs::remove_dir_all(&staging);
                Ok(Committed::Raced)
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&staging);
                Err(Outcome::unusable(unusable(&target, e)))
            }
        }
    }

    fn write(self) -> Result<(), Outcome> {
        let fail = |path: &Path, e: &dyn std::fmt::Display| Outcome::unusable(unusable(path, e));
        if let Some(embedded) = &self.embedded {
            let manager = embedded.manager.lock().unwrap_or_else(|p| p.into_inner());
            embedded
                .dir
                .store(&embedded.lock, &manager)
                .map_err(unusable_error)?;
            // Admin commands between invocations act at the harness's time.
            embedded
                .dir
                .set_clock_locked(&embedded.lock, self.now)
                .map_err(unusable_error)?;
            let flag = self.dir.join("manager-offline");
            if embedded.offline.load(Ordering::SeqCst) {
                AtomicFile::new(&flag)
                    .store(b"")
                    .map_err(|e| fail(&flag, &e))?;
            } else if flag.exists() {
                fs::remove_file(&flag).map_err(|e| fail(&flag, &e))?;
            }
        }
        let udi_path = self.dir.join("udi");
        AtomicFile::new(&udi_path)
            .store(format!("{}\n", self.udi).as_bytes())
            .map_err(|e| fail(&udi_path, &e))?;
        let snapshot_path = self.dir.join("agent.snapshot");
        AtomicFile::new(&snapshot_path)
            .store(&self.driver.agent().snapshot())
            .map_err(|e| fail(&snapshot_path, &e))?;
        let log_path = self.dir.join("events.log");
        let mut text = self.log()?.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        AtomicFile::new(&log_path)
            .store(text.as_bytes())
            .map_err(|e| fail(&log_path, &e))?;
        Ok(())
    }
}

/// `<RFC 3339>\t<message>\t<alarm>`: the stored form of one event.
fn log_line(e: &Event) -> String {
    format!(
        "{}\t{}\t{}",
        e.at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        e.kind,
        e.alarm().map(|a| a.name()).unwrap_or("")
    )
}

/// What an invocation prints and how it exits (SPEC-exact messages on stderr).
pub struct Outcome {
    pub exit: u8,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    pub fn ok(stdout: impl Into<String>) -> Outcome {
        Outcome {
            exit: 0,
            stdout: stdout.into(),
            stderr: String::new(),
        }
    }

    /// Refused before sending: exit 1, nothing written.
    pub fn refused(message: impl Into<String>) -> Outcome {
        Outcome {
            exit: 1,
            stdout: String::new(),
            stderr: message.into() + "\n",
        }
    }

    /// The transport settings cannot be applied: the 500 of seed 000:1531, then why.
    pub fn apply_failed(why: impl std::fmt::Display) -> Outcome {
        Outcome::refused(format!(
            "{}\n  ({why})",
            smart_agent::Error::TransportApplyFailed
        ))
    }

    /// Accepted, but the manager or the network said no, or a retry is pending: exit 2.
    pub fn declined(stdout: impl Into<String>, message: impl Into<String>) -> Outcome {
        Outcome {
            exit: 2,
            stdout: stdout.into(),
            stderr: message.into() + "\n",
        }
    }

    /// The state directory is unusable: exit 3, nothing written.
    pub fn unusable(u: Unusable) -> Outcome {
        Outcome {
            exit: 3,
            stdout: String::new(),
            stderr: u.0 + "\n",
        }
    }
}
