//! A manager's state directory: its durable state, keys, certificates and clock, shared by
//! the HTTPS server and administration commands of other processes.
//!
//! | file | what |
//! |---|---|
//! | `state` | the manager's database (SQLite in WAL mode, with `state-wal` and `state-shm` beside it; format version [`STATE_VERSION`](super::STATE_VERSION)) |
//! | `state.v1` | a version 1 state file as it was before its import (kept as a backup; never read again) |
//! | `serve.lock` | locked by the server serving the directory, as long as it runs |
//! | `manager-key.pk8`, `manager-key.pub.pem` | the current signing key (PKCS#8) and its public key (SPKI PEM, what agents trust) |
//! | `ca.pem`, `ca-key.pem` | the test CA clients trust for TLS, and its key |
//! | `server.pem`, `server-key.pem`, `server-names` | the server certificate, its key, the names it carries |
//! | `clock` | present for a virtual clock: "now", RFC 3339 |
//! | `lock` | locked exclusively by an administration call, an embedded manager or a server starting |
//!
//! The database is the truth, keys included (the key files are written from it), and SQLite
//! arbitrates between the processes using it: a server's requests and the administration
//! calls of other processes ([`StateDir::update`], [`StateDir::read`]) are transactions of
//! their own, so `pool add` or `token create` work while a server runs. The directory's
//! `lock` ([`std::fs::File::lock`]) is taken only for a short call or by an embedded manager
//! for the whole of its work, never by a server across requests; `serve.lock` keeps a
//! second server off a directory already served. Files other than the database are replaced
//! atomically and durably ([`AtomicFile`]). Private keys and the state are created readable
//! by the owner only (Unix).
//!
//! A directory whose `state` is a version 1 file (the first release's format) is imported on
//! first open: the new database is written beside it and renamed over it, and the version 1
//! bytes stay in `state.v1`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::db::{Db, Durability, SQLITE_MAGIC};
use super::state_file::{import_v1, StateError, STATE_MAGIC};
use super::tls;
use super::{Manager, ManagerError};
use crate::crypto::{Environment, ManagerSigningKey, SystemRandom};
use crate::store::{AtomicFile, FileSystem, RealFs};

const STATE: &str = "state";
const STATE_V1: &str = "state.v1";
const STATE_NEW: &str = "state.new";
const SERVE_LOCK: &str = "serve.lock";
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
    /// Another server is serving the directory.
    #[error("{0}: another server is already serving this state directory (its serve.lock is held); stop it first")]
    AlreadyServed(PathBuf),
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
        let manager =
            load(&path, Import::OnDisk)?.ok_or_else(|| DirError::NotInitialized(path.clone()))?;
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
        Self::open_or_create_with(path.into(), environment, None, Import::OnDisk)
            .map(|(dir, _)| dir)
    }

    /// [`StateDir::open_or_create`], keeping the lock it took (waiting at most `wait` for it),
    /// for a caller that works on the directory for a while (the CLI's embedded manager).
    pub fn open_or_create_locked(
        path: impl Into<PathBuf>,
        environment: Option<Environment>,
        wait: std::time::Duration,
    ) -> Result<(StateDir, DirLock), DirError> {
        // The caller stores what it wants kept: a version 1 state stays as it is until then.
        Self::open_or_create_with(path.into(), environment, Some(wait), Import::InMemory)
    }

    fn open_or_create_with(
        path: PathBuf,
        environment: Option<Environment>,
        wait: Option<std::time::Duration>,
        import: Import,
    ) -> Result<(StateDir, DirLock), DirError> {
        create_private_dir(&path)?;
        let lock = lock_at(&path, wait)?;
        let manager = match load(&path, import)? {
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
        dir.publish_key(manager.signing_key())?;
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

    /// Runs an administration call on the manager, with "now", in one transaction: stored
    /// if `f` succeeds, nothing stored if it fails. Takes the directory's lock for the call
    /// (waiting for an embedded manager's work to end); a running server does not hold it.
    pub fn update<T>(
        &self,
        f: impl FnOnce(&mut Manager, DateTime<Utc>) -> Result<T, ManagerError>,
    ) -> Result<T, DirError> {
        let _lock = self.lock()?;
        let mut manager = self.open_manager()?;
        manager
            .db()
            .begin_outer(std::time::Duration::from_secs(30))
            .map_err(|e| self.db_error(e))?;
        let out = f(&mut manager, self.now()?)?;
        manager.db().commit_outer().map_err(|e| self.db_error(e))?;
        Ok(out)
    }

    /// Reads the manager, with "now".
    pub fn read<T>(&self, f: impl FnOnce(&Manager, DateTime<Utc>) -> T) -> Result<T, DirError> {
        let _lock = self.lock()?;
        let manager = self.open_manager()?;
        Ok(f(&manager, self.now()?))
    }

    /// The manager for a caller holding `lock` for longer than one call, e.g. an embedded
    /// manager that answers at its own virtual times and is stored only if the caller's
    /// whole operation succeeds ([`StateDir::store`]): an in-memory copy of the directory's
    /// database, so that nothing reaches the directory unless it is stored.
    pub fn load(&self, lock: &DirLock) -> Result<Manager, DirError> {
        self.check_lock(lock)?;
        let path = self.state_path();
        let at = |error| DirError::State {
            path: path.clone(),
            error,
        };
        let db = match kind_of(&path)? {
            Kind::V1 => {
                let bytes = fs::read(&path).map_err(io_error(&path))?;
                let db = Db::memory().map_err(|e| DirError::Manager(ManagerError::from(e)))?;
                import_v1(&bytes, &db).map_err(at)?;
                db
            }
            Kind::Missing => return Err(DirError::NotInitialized(self.path.clone())),
            Kind::Foreign => return Err(at(StateError::WrongMagic)),
            Kind::Database => Db::copy_of_file(&path).map_err(at)?,
        };
        Manager::from_db(db, Box::new(SystemRandom::new())).map_err(at)
    }

    /// Stores `manager` (one [`StateDir::load`] gave, or any other) under the same `lock`:
    /// its [`Manager::save_state`] bytes become the `state` file, replaced atomically and
    /// durably. For a caller that owns the directory (an embedded manager): a server on it
    /// at the same time would lose what it wrote.
    pub fn store(&self, lock: &DirLock, manager: &Manager) -> Result<(), DirError> {
        self.check_lock(lock)?;
        let bytes = manager.save_state();
        if bytes.is_empty() {
            return Err(DirError::Manager(ManagerError::Storage(
                "the state could not be copied".into(),
            )));
        }
        let path = self.state_path();
        // A version 1 state is kept as it was, beside its successor.
        let backup = self.path.join(STATE_V1);
        if kind_of(&path)? == Kind::V1 && !backup.exists() {
            let v1 = fs::read(&path).map_err(io_error(&path))?;
            write_private(&backup, &v1)?;
        }
        // No other connection is open: a leftover WAL would be read into the new file.
        for suffix in ["-wal", "-shm"] {
            remove_if_present(&self.path.join(format!("{STATE}{suffix}")))?;
        }
        write_private(&path, &bytes)
    }

    /// The manager on this directory's database (a version 1 state imported first). The
    /// caller holds the lock.
    pub(crate) fn open_manager(&self) -> Result<Manager, DirError> {
        if kind_of(&self.state_path())? == Kind::V1 {
            migrate_v1(&self.path)?;
        }
        Manager::open_file(
            &self.state_path(),
            Durability::Full,
            Box::new(SystemRandom::new()),
        )
        .map_err(|error| DirError::State {
            path: self.state_path(),
            error,
        })
    }

    fn db_error(&self, e: super::db::DbError) -> DirError {
        DirError::Manager(ManagerError::from(e))
    }

    /// Takes the directory's `serve.lock` for a server, without waiting.
    pub(crate) fn serve_lock(&self) -> Result<DirLock, DirError> {
        let path = self.path.join(SERVE_LOCK);
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_error(&path))?;
        match file.try_lock() {
            Ok(()) => Ok(DirLock {
                _file: file,
                dir: self.path.clone(),
            }),
            Err(fs::TryLockError::WouldBlock) => Err(DirError::AlreadyServed(self.path.clone())),
            Err(fs::TryLockError::Error(e)) => Err(io_error(&path)(e)),
        }
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

/// Where a version 1 state is imported when a directory is opened.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Import {
    /// Into the directory's database, at once (servers, administration calls).
    OnDisk,
    /// Into memory only: the file stays as it is until [`StateDir::store`] (an embedded
    /// manager, whose refused commands write nothing).
    InMemory,
}

/// What a `state` file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Missing,
    V1,
    Database,
    Foreign,
}

fn kind_of(path: &Path) -> Result<Kind, DirError> {
    let mut head = [0u8; 16];
    let read = match fs::File::open(path) {
        Ok(mut file) => read_head(&mut file, &mut head).map_err(io_error(path))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Kind::Missing),
        Err(e) => return Err(io_error(path)(e)),
    };
    let head = &head[..read];
    Ok(if head.starts_with(STATE_MAGIC) {
        Kind::V1
    } else if head.starts_with(SQLITE_MAGIC) {
        Kind::Database
    } else {
        Kind::Foreign
    })
}

/// The manager stored in `dir`, `None` if there is no state file; a version 1 state file is
/// imported as `import` says. The caller holds the lock.
fn load(dir: &Path, import: Import) -> Result<Option<Manager>, DirError> {
    let path = dir.join(STATE);
    match kind_of(&path)? {
        Kind::Missing => return Ok(None),
        Kind::Foreign => {
            return Err(DirError::State {
                path,
                error: StateError::WrongMagic,
            })
        }
        Kind::V1 if import == Import::InMemory => {
            let bytes = fs::read(&path).map_err(io_error(&path))?;
            return Manager::load_state(&bytes, Box::new(SystemRandom::new()))
                .map(Some)
                .map_err(|error| DirError::State { path, error });
        }
        Kind::V1 => migrate_v1(dir)?,
        Kind::Database => {}
    }
    let manager = Manager::open_file(&path, Durability::Full, Box::new(SystemRandom::new()))
        .map_err(|error| DirError::State {
            path: path.clone(),
            error,
        })?;
    // Structural damage anywhere is found now rather than by the request that reads it.
    match manager.db().quick_check() {
        Ok(ok) if ok == "ok" => Ok(Some(manager)),
        Ok(damage) => Err(DirError::State {
            path,
            error: StateError::Corrupt(format!("integrity check failed: {damage}")),
        }),
        Err(e) => Err(DirError::State {
            path,
            error: StateError::Corrupt(format!("integrity check failed: {e}")),
        }),
    }
}

/// Reads up to `buf.len()` bytes.
fn read_head(file: &mut fs::File, buf: &mut [u8]) -> io::Result<usize> {
    use std::io::Read as _;
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Imports the version 1 `state` file into a new database written as `state.new`, keeps the
/// version 1 bytes as `state.v1`, then renames the database over `state`: a crash at any
/// point leaves either the version 1 file (imported again next time) or the database.
fn migrate_v1(dir: &Path) -> Result<(), DirError> {
    let path = dir.join(STATE);
    let bytes = fs::read(&path).map_err(io_error(&path))?;
    let fresh = dir.join(STATE_NEW);
    remove_if_present(&fresh)?;
    for suffix in ["-journal", "-wal", "-shm"] {
        remove_if_present(&dir.join(format!("{STATE_NEW}{suffix}")))?;
    }
    let as_dir_error = |e: super::db::DbError| DirError::Manager(ManagerError::from(e));
    {
        let db = Db::create_file(&fresh).map_err(as_dir_error)?;
        make_private(&fresh)?;
        import_v1(&bytes, &db).map_err(|error| DirError::State {
            path: path.clone(),
            error,
        })?;
    }
    sync_file(&fresh)?;
    write_private(&dir.join(STATE_V1), &bytes)?;
    fs::rename(&fresh, &path).map_err(io_error(&path))?;
    sync_dir(dir)
}

fn remove_if_present(path: &Path) -> Result<(), DirError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_error(path)(e)),
        _ => Ok(()),
    }
}

fn sync_file(path: &Path) -> Result<(), DirError> {
    fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io_error(path))
}

fn sync_dir(dir: &Path) -> Result<(), DirError> {
    #[cfg(unix)]
    fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io_error(dir))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

fn make_private(path: &Path) -> Result<(), DirError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(io_error(path))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Makes everything a new directory holds; the database last, so that a directory is
/// complete once it has one (an interrupted start leaves none, and the next start begins
/// again). The caller holds the lock.
fn initialize(dir: &Path, environment: Environment) -> Result<Manager, DirError> {
    let ca = tls::new_ca().map_err(DirError::Certificate)?;
    write_private(&dir.join(CA_KEY), ca.key_pem.as_bytes())?;
    write_public(&dir.join(CA_CERT), ca.cert_pem.as_bytes())?;
    // The server certificate is issued on the server's first start, for its host names.
    for stale in [SERVER_CERT, SERVER_KEY, SERVER_NAMES] {
        remove_if_present(&dir.join(stale))?;
    }
    let key = ManagerSigningKey::generate().map_err(|_| ManagerError::Random)?;
    let fresh = dir.join(STATE_NEW);
    remove_if_present(&fresh)?;
    remove_if_present(&dir.join(format!("{STATE_NEW}-journal")))?;
    Manager::create_file(&fresh, environment, &key)
        .map_err(|e| DirError::Manager(ManagerError::from(e)))?;
    make_private(&fresh)?;
    sync_file(&fresh)?;
    let path = dir.join(STATE);
    fs::rename(&fresh, &path).map_err(io_error(&path))?;
    sync_dir(dir)?;
    Manager::open_file(&path, Durability::Full, Box::new(SystemRandom::new()))
        .map_err(|error| DirError::State { path, error })
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
