//! A manager's state directory: its durable state, keys, certificates and clock, shared by
//! the HTTPS server and administration commands of other processes.
//!
//! | file | what |
//! |---|---|
//! | `state` | the manager's state ([`Manager::save_state`]) |
//! | `manager-key.pk8`, `manager-key.pub.pem` | the current signing key (PKCS#8) and its public key (SPKI PEM, what agents trust) |
//! | `ca.pem`, `ca-key.pem` | the test CA clients trust for TLS, and its key |
//! | `server.pem`, `server-key.pem`, `server-names` | the server certificate, its key, the names it carries |
//! | `clock` | present for a virtual clock: "now", RFC 3339 |
//! | `lock` | locked exclusively by whoever reads or changes the rest |
//!
//! Every access holds an exclusive lock of `lock` ([`std::fs::File::lock`]), so a server and
//! commands of other processes take turns; every write replaces its file atomically and
//! durably ([`AtomicFile`]). The `state` file is the truth for keys too: the key files are
//! written from it. Private keys and the state are created readable by the owner only (Unix).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::state_file::StateError;
use super::tls;
use super::{Manager, ManagerError};
use crate::crypto::{Environment, ManagerSigningKey, SystemRandom};
use crate::store::{AtomicFile, FileSystem, RealFs};

const STATE: &str = "state";
const LOCK: &str = "lock";
const CLOCK: &str = "clock";
const CA_CERT: &str = "ca.pem";
const CA_KEY: &str = "ca-key.pem";
const SERVER_CERT: &str = "server.pem";
const SERVER_KEY: &str = "server-key.pem";
const SERVER_NAMES: &str = "server-names";
const MANAGER_KEY: &str = "manager-key.pk8";
const MANAGER_PUBLIC_KEY: &str = "manager-key.pub.pem";

/// Why a state directory could not be used; each names the path concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DirError {
    /// The directory does not exist (or is not a directory).
    #[error("{0}: no such directory")]
    NoDirectory(PathBuf),
    /// The directory exists but holds no manager state.
    #[error("{0}: not a manager state directory (no state file; `serve` creates one)")]
    NotInitialized(PathBuf),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The state file does not load.
    #[error("{path}: {error}")]
    State {
        /// The state file.
        path: PathBuf,
        /// Why.
        error: StateError,
    },
    /// The directory signs for another environment than the one asked for.
    #[error("{path}: the manager signs for the {existing} environment, not {requested}")]
    EnvironmentMismatch {
        /// The directory.
        path: PathBuf,
        /// What the state says.
        existing: Environment,
        /// What was asked for.
        requested: Environment,
    },
    /// The clock file does not hold an RFC 3339 time.
    #[error("{path}: not an RFC 3339 time: {text:?}")]
    BadClock {
        /// The clock file.
        path: PathBuf,
        /// Its content (trimmed, at most 64 characters).
        text: String,
    },
    /// A host name for the server certificate is not a DNS name or an IP address.
    #[error("invalid host name {0:?} (a DNS name or an IP address)")]
    BadHost(String),
    /// Making a certificate or a key failed.
    #[error("{0}")]
    Certificate(String),
    /// The manager refused an administration call.
    #[error(transparent)]
    Manager(#[from] ManagerError),
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> DirError + '_ {
    move |source| DirError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The exclusive lock of a state directory, held until dropped.
#[derive(Debug)]
pub struct DirLock {
    _file: fs::File,
    dir: PathBuf,
}

/// A manager state directory (see the [module docs](self)).
#[derive(Clone, Debug)]
pub struct StateDir {
    path: PathBuf,
    environment: Environment,
}

impl StateDir {
    /// Opens the existing state directory at `path`.
    pub fn open(path: impl Into<PathBuf>) -> Result<StateDir, DirError> {
        let path = path.into();
        if !path.is_dir() {
            return Err(DirError::NoDirectory(path));
        }
        let _lock = lock_at(&path, None)?;
        let manager = load(&path)?.ok_or_else(|| DirError::NotInitialized(path.clone()))?;
        Ok(StateDir {
            environment: manager.environment(),
            path,
        })
    }

    /// Opens the state directory at `path`, creating the directory and its content if there
    /// is no state yet: a manager signing for `environment` (development if `None`) with a
    /// fresh key, a fresh CA and a server certificate for the default names. An existing
    /// directory must sign for `environment` if one is given; its key files are rewritten
    /// from the state if they differ.
    pub fn open_or_create(
        path: impl Into<PathBuf>,
        environment: Option<Environment>,
    ) -> Result<StateDir, DirError> {
        Self::open_or_create_with(path.into(), environment, None).map(|(dir, _)| dir)
    }

    /// [`StateDir::open_or_create`], keeping the lock it took (waiting at most `wait` for it),
    /// for a caller that works on the directory for a while (the CLI's embedded manager).
    pub fn open_or_create_locked(
        path: impl Into<PathBuf>,
        environment: Option<Environment>,
        wait: std::time::Duration,
    ) -> Result<(StateDir, DirLock), DirError> {
        Self::open_or_create_with(path.into(), environment, Some(wait))
    }

    fn open_or_create_with(
        path: PathBuf,
        environment: Option<Environment>,
        wait: Option<std::time::Duration>,
    ) -> Result<(StateDir, DirLock), DirError> {
        create_private_dir(&path)?;
        let lock = lock_at(&path, wait)?;
        let manager = match load(&path)? {
            Some(existing) => {
                if let Some(requested) = environment.filter(|e| *e != existing.environment()) {
                    return Err(DirError::EnvironmentMismatch {
                        path,
                        existing: existing.environment(),
                        requested,
                    });
                }
                existing
            }
            None => initialize(&path, environment.unwrap_or(Environment::Development))?,
        };
        let dir = StateDir {
            environment: manager.environment(),
            path,
        };
        dir.publish_key(&manager.key)?;
        Ok((dir, lock))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The environment the manager signs for.
    pub fn environment(&self) -> Environment {
        self.environment
    }

    /// The CA certificate (PEM) that TLS clients must trust.
    pub fn ca_cert_path(&self) -> PathBuf {
        self.path.join(CA_CERT)
    }

    /// The manager's current signing public key (SPKI PEM), what agents trust.
    pub fn manager_public_key_path(&self) -> PathBuf {
        self.path.join(MANAGER_PUBLIC_KEY)
    }

    /// The manager's current signing key (PKCS#8 DER).
    pub fn manager_key_path(&self) -> PathBuf {
        self.path.join(MANAGER_KEY)
    }

    /// The state file.
    pub fn state_path(&self) -> PathBuf {
        self.path.join(STATE)
    }

    /// The clock file, present when the directory has a virtual clock.
    pub fn clock_path(&self) -> PathBuf {
        self.path.join(CLOCK)
    }

    /// Waits for and takes the directory's exclusive lock.
    pub fn lock(&self) -> Result<DirLock, DirError> {
        lock_at(&self.path, None)
    }

    /// Whether "now" comes from the clock file rather than the system clock.
    pub fn has_virtual_clock(&self) -> bool {
        self.clock_path().exists()
    }

    /// "Now" for this directory: the time in the clock file if there is one, else the system
    /// clock.
    pub fn now(&self) -> Result<DateTime<Utc>, DirError> {
        let path = self.clock_path();
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(system_now()),
            Err(e) => return Err(io_error(&path)(e)),
        };
        let text = text.trim();
        crate::time::parse(text).ok_or_else(|| DirError::BadClock {
            path,
            text: text.chars().take(64).collect(),
        })
    }

    /// Sets the virtual clock to `now` (creating it: from then on the directory has a
    /// virtual clock).
    pub fn set_clock(&self, now: DateTime<Utc>) -> Result<(), DirError> {
        let lock = self.lock()?;
        self.set_clock_locked(&lock, now)
    }

    /// [`StateDir::set_clock`] for a caller that already holds `lock`.
    pub fn set_clock_locked(&self, lock: &DirLock, now: DateTime<Utc>) -> Result<(), DirError> {
        self.check_lock(lock)?;
        self.write_clock(now)
    }

    /// Gives the directory a virtual clock at the system time unless it has one.
    pub fn ensure_virtual_clock(&self) -> Result<(), DirError> {
        let _lock = self.lock()?;
        if self.has_virtual_clock() {
            return Ok(());
        }
        self.write_clock(system_now())
    }

    fn write_clock(&self, now: DateTime<Utc>) -> Result<(), DirError> {
        let text = format!("{}\n", crate::time::format(now));
        let path = self.clock_path();
        AtomicFile::new(&path)
            .store(text.as_bytes())
            .map_err(io_error(&path))
    }

    /// Runs an administration call on the manager under the lock, with "now", and stores the
    /// state if it changed. Nothing is stored if `f` fails.
    pub fn update<T>(
        &self,
        f: impl FnOnce(&mut Manager, DateTime<Utc>) -> Result<T, ManagerError>,
    ) -> Result<T, DirError> {
        let _lock = self.lock()?;
        let (mut manager, before) = self.load_locked()?;
        let out = f(&mut manager, self.now()?)?;
        let after = manager.save_state();
        if after != before {
            self.store_state(&after)?;
        }
        Ok(out)
    }

    /// Reads the manager under the lock, with "now".
    pub fn read<T>(&self, f: impl FnOnce(&Manager, DateTime<Utc>) -> T) -> Result<T, DirError> {
        let _lock = self.lock()?;
        let (manager, _) = self.load_locked()?;
        Ok(f(&manager, self.now()?))
    }

    /// Loads the manager for a caller holding `lock` for longer than one call, e.g. an
    /// embedded manager that answers at its own virtual times and is stored only if the
    /// caller's whole operation succeeds ([`StateDir::store`]).
    pub fn load(&self, lock: &DirLock) -> Result<Manager, DirError> {
        self.check_lock(lock)?;
        self.load_locked().map(|(manager, _)| manager)
    }

    /// Stores a manager loaded with [`StateDir::load`] under the same `lock`.
    pub fn store(&self, lock: &DirLock, manager: &Manager) -> Result<(), DirError> {
        self.check_lock(lock)?;
        self.store_state(&manager.save_state())
    }

    /// A lock of another directory protects nothing here.
    fn check_lock(&self, lock: &DirLock) -> Result<(), DirError> {
        if lock.dir == self.path {
            Ok(())
        } else {
            Err(DirError::Io {
                path: self.path.join(LOCK),
                source: io::Error::other(format!(
                    "the lock held is {}'s",
                    lock.dir.join(LOCK).display()
                )),
            })
        }
    }

    /// The manager and the bytes it was loaded from; the caller holds the lock.
    fn load_locked(&self) -> Result<(Manager, Vec<u8>), DirError> {
        let bytes = self.state_bytes()?;
        let manager = self.decode(&bytes)?;
        Ok((manager, bytes))
    }

    /// The state file's bytes; the caller holds the lock.
    pub(crate) fn state_bytes(&self) -> Result<Vec<u8>, DirError> {
        let path = self.state_path();
        AtomicFile::new(&path)
            .load()
            .map_err(io_error(&path))?
            .ok_or_else(|| DirError::NotInitialized(self.path.clone()))
    }

    /// The manager in `bytes` (read from the state file).
    pub(crate) fn decode(&self, bytes: &[u8]) -> Result<Manager, DirError> {
        Manager::load_state(bytes, Box::new(SystemRandom::new())).map_err(|error| DirError::State {
            path: self.state_path(),
            error,
        })
    }

    /// Replaces the state file, durably; the caller holds the lock.
    pub(crate) fn store_state(&self, bytes: &[u8]) -> Result<(), DirError> {
        write_private(&self.state_path(), bytes)
    }

    /// Writes the key files for `key` where they differ.
    fn publish_key(&self, key: &ManagerSigningKey) -> Result<(), DirError> {
        let public = key.public_key().to_spki_pem();
        write_if_changed(&self.manager_key_path(), key.pkcs8(), true)?;
        write_if_changed(&self.manager_public_key_path(), public.as_bytes(), false)
    }

    /// Makes sure the server certificate carries exactly the default names and `hosts`,
    /// issuing a new one from the directory's CA if not. Returns the certificate chain and
    /// key (PEM).
    pub(crate) fn server_certificate(
        &self,
        hosts: &[String],
    ) -> Result<(Vec<u8>, Vec<u8>), DirError> {
        let mut names: Vec<String> = tls::DEFAULT_SERVER_NAMES
            .iter()
            .map(|s| s.to_string())
            .collect();
        for host in hosts {
            if !tls::valid_host(host) {
                return Err(DirError::BadHost(host.clone()));
            }
            if !names.contains(host) {
                names.push(host.clone());
            }
        }
        let _lock = self.lock()?;
        let names_path = self.path.join(SERVER_NAMES);
        let listed = names.join("\n") + "\n";
        let current = read_optional(&names_path)?;
        let cert_path = self.path.join(SERVER_CERT);
        let key_path = self.path.join(SERVER_KEY);
        if current.as_deref() != Some(listed.as_bytes()) || !cert_path.exists() {
            let ca_key_path = self.path.join(CA_KEY);
            let ca_key = fs::read_to_string(&ca_key_path).map_err(io_error(&ca_key_path))?;
            let issued = tls::issue_server(&ca_key, &names).map_err(DirError::Certificate)?;
            // The names file goes first and comes back last: a crash between writing the key
            // and the certificate leaves no names file, so the next start issues a matching
            // pair again instead of failing on a mismatched one forever.
            match fs::remove_file(&names_path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(io_error(&names_path)(e));
                }
                _ => {}
            }
            write_private(&key_path, issued.key_pem.as_bytes())?;
            write_public(&cert_path, issued.cert_pem.as_bytes())?;
            write_public(&names_path, listed.as_bytes())?;
        }
        let cert = fs::read(&cert_path).map_err(io_error(&cert_path))?;
        let key = fs::read(&key_path).map_err(io_error(&key_path))?;
        Ok((cert, key))
    }
}

/// The system clock (chrono's `clock` feature is not enabled: the core never reads a clock).
fn system_now() -> DateTime<Utc> {
    DateTime::<Utc>::from(std::time::SystemTime::now())
}

fn create_private_dir(path: &Path) -> Result<(), DirError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path).map_err(io_error(path))
}

fn lock_at(dir: &Path, wait: Option<std::time::Duration>) -> Result<DirLock, DirError> {
    let path = dir.join(LOCK);
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_error(&path))?;
    match wait {
        None => file.lock().map_err(io_error(&path))?,
        Some(wait) => {
            let deadline = std::time::Instant::now() + wait;
            loop {
                match file.try_lock() {
                    Ok(()) => break,
                    Err(fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                        std::thread::sleep(std::time::Duration::from_millis(50));
                    }
                    Err(fs::TryLockError::WouldBlock) => {
                        return Err(io_error(&path)(io::Error::other(
                            "locked by another process",
                        )))
                    }
                    Err(fs::TryLockError::Error(e)) => return Err(io_error(&path)(e)),
                }
            }
        }
    }
    Ok(DirLock {
        _file: file,
        dir: dir.to_path_buf(),
    })
}

/// The manager stored in `dir`, `None` if there is no state file; the caller holds the lock.
fn load(dir: &Path) -> Result<Option<Manager>, DirError> {
    let path = dir.join(STATE);
    let Some(bytes) = read_optional(&path)? else {
        return Ok(None);
    };
    Manager::load_state(&bytes, Box::new(SystemRandom::new()))
        .map(Some)
        .map_err(|error| DirError::State { path, error })
}

/// Makes everything a new directory holds; the state file last, so that a directory is
/// complete once it has one (an interrupted start leaves none, and the next start begins
/// again). The caller holds the lock.
fn initialize(dir: &Path, environment: Environment) -> Result<Manager, DirError> {
    let ca = tls::new_ca().map_err(DirError::Certificate)?;
    write_private(&dir.join(CA_KEY), ca.key_pem.as_bytes())?;
    write_public(&dir.join(CA_CERT), ca.cert_pem.as_bytes())?;
    // The server certificate is issued on the server's first start, for its host names.
    for stale in [SERVER_CERT, SERVER_KEY, SERVER_NAMES] {
        match fs::remove_file(dir.join(stale)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(io_error(&dir.join(stale))(e))
            }
            _ => {}
        }
    }
    let key = ManagerSigningKey::generate().map_err(|_| ManagerError::Random)?;
    let manager = Manager::with_signing_key(environment, Box::new(SystemRandom::new()), key)?;
    write_private(&dir.join(STATE), &manager.save_state())?;
    Ok(manager)
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, DirError> {
    RealFs::default().read(path).map_err(io_error(path))
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), DirError> {
    AtomicFile::new(path).store(bytes).map_err(io_error(path))
}

fn write_public(path: &Path, bytes: &[u8]) -> Result<(), DirError> {
    AtomicFile::with_fs(path, RealFs::public())
        .store(bytes)
        .map_err(io_error(path))
}

fn write_if_changed(path: &Path, bytes: &[u8], private: bool) -> Result<(), DirError> {
    if read_optional(path)?.as_deref() == Some(bytes) {
        return Ok(());
    }
    if private {
        write_private(path, bytes)
    } else {
        write_public(path, bytes)
    }
}
