//! Atomic, durable replacement of a small file: the Driver's snapshot store, the CLI's state
//! and the reference manager's state all go through it.
//!
//! Reads refuse what a state file never is ([`UnsafeFile`]): `load` takes
//! `symlink_metadata` first, so a symbolic link (even a dangling one) or a FIFO, socket, device
//! or directory in the file's place is refused before `open` could follow or block; it then
//! checks that the opened handle is a regular file with the same device and inode, and reads at
//! most [`AtomicFile::with_limit`] bytes (64 MiB unless told otherwise), so an oversized file
//! costs neither time nor memory. The remaining race: a file swapped for a FIFO between the
//! `symlink_metadata` and the `open` can still make the `open` wait for a writer (std has no
//! portable `O_NONBLOCK | O_NOFOLLOW`); the swap is then detected after the `open` returns.
//! [`open_regular`] and [`open_or_create_regular`] apply the same checks to files a caller
//! opens itself (a lock file).
//!
//! `store` writes `<file>.tmp` (removing a leftover one from a crash, then creating it
//! exclusively, so a planted symlink is never followed), fsyncs it, renames it over `<file>`
//! and fsyncs the directory. One writer at a time: callers that share a file lock it (the CLI
//! and the manager lock their directories; a Driver is the only writer of its snapshot). A crash at any point leaves
//! either the old or the new content under `<file>`, never a mix; `load` never reads a
//! temporary file. Files are private to their owner (0600 on Unix) unless made with
//! [`RealFs::public`]: a snapshot holds key seeds. The file system is a trait so that tests can
//! fail each step on purpose.

use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The largest file [`AtomicFile::load`] reads unless given another limit: 64 MiB.
pub const DEFAULT_READ_LIMIT: u64 = 64 << 20;

/// Why a file in a state directory was refused without being read; carried inside the
/// [`io::Error`] (kind `InvalidData`) the read returns, so callers can tell it apart with
/// [`UnsafeFile::of`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnsafeFile {
    /// A symbolic link (perhaps dangling) where a regular file belongs.
    SymbolicLink,
    /// Something else that is not a regular file: a directory, FIFO, socket or device.
    NotRegular(&'static str),
    /// Larger than any genuine file of its kind.
    TooLarge {
        /// Its size in bytes (at least).
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Replaced by another file between the check and the open.
    Replaced,
}

impl fmt::Display for UnsafeFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnsafeFile::SymbolicLink => {
                f.write_str("a symbolic link, not a regular file (refused, not followed)")
            }
            UnsafeFile::NotRegular(what) => write!(f, "a {what}, not a regular file (refused)"),
            UnsafeFile::TooLarge { size, limit } => write!(
                f,
                "{size} bytes, larger than any genuine file of its kind (at most {limit}; refused)"
            ),
            UnsafeFile::Replaced => f.write_str("replaced while being opened (refused)"),
        }
    }
}

impl std::error::Error for UnsafeFile {}

impl UnsafeFile {
    /// The refusal inside `e`, if `e` is one.
    pub fn of(e: &io::Error) -> Option<&UnsafeFile> {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<UnsafeFile>())
    }

    fn error(self) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, self)
    }
}

/// Refuses anything but a regular file (`meta` from `symlink_metadata` or an open handle).
fn check_regular(meta: &fs::Metadata) -> io::Result<()> {
    let kind = meta.file_type();
    if kind.is_file() {
        return Ok(());
    }
    if kind.is_symlink() {
        return Err(UnsafeFile::SymbolicLink.error());
    }
    let what = if kind.is_dir() {
        "directory"
    } else {
        special_kind(&kind)
    };
    Err(UnsafeFile::NotRegular(what).error())
}

#[cfg(unix)]
fn special_kind(kind: &fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_fifo() {
        "FIFO"
    } else if kind.is_socket() {
        "socket"
    } else if kind.is_block_device() || kind.is_char_device() {
        "device"
    } else {
        "special file"
    }
}

#[cfg(not(unix))]
fn special_kind(_: &fs::FileType) -> &'static str {
    "special file"
}

/// Whether two metadata name the same file (device and inode on Unix).
#[cfg(unix)]
fn same_file(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_file(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    a.file_type() == b.file_type()
}

/// Opens the existing regular file at `path` with `options` (which must not create), reached
/// without a symbolic link; `Ok(None)` if nothing is there. A symlink, FIFO, socket, device or
/// directory is refused before it is opened; the opened handle is checked again (see the
/// [module docs](self) for the race that remains).
pub fn open_regular(path: &Path, options: &fs::OpenOptions) -> io::Result<Option<fs::File>> {
    let before = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    check_regular(&before)?;
    let file = match options.open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(UnsafeFile::Replaced.error()),
        Err(e) => return Err(e),
    };
    let after = file.metadata()?;
    check_regular(&after)?;
    if !same_file(&before, &after) {
        return Err(UnsafeFile::Replaced.error());
    }
    Ok(Some(file))
}

/// Opens the regular file at `path` for writing, creating it (empty, mode `mode` on Unix) if
/// it does not exist, never through a symbolic link: e.g. a lock file. Creating uses
/// `create_new`, which does not follow a link planted in its place.
pub fn open_or_create_regular(path: &Path, mode: u32) -> io::Result<fs::File> {
    // A few rounds: a file created or removed by someone else between our steps is seen again.
    for _ in 0..4 {
        if let Some(file) = open_regular(path, fs::OpenOptions::new().read(true).write(true))? {
            return Ok(file);
        }
        let mut options = fs::OpenOptions::new();
        options.read(true).write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
        #[cfg(not(unix))]
        let _ = mode;
        match options.open(path) {
            Ok(file) => return Ok(file),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                // A symlink planted there makes `create_new` fail too: the next round says so.
                if let Ok(meta) = fs::symlink_metadata(path) {
                    check_regular(&meta)?;
                }
            }
            Err(e) => return Err(e),
        }
    }
    Err(UnsafeFile::Replaced.error())
}

/// Reads the regular file at `path` (see [`open_regular`]), refusing one larger than `limit`
/// bytes without reading it; `Ok(None)` if it does not exist.
pub fn read_regular(path: &Path, limit: u64) -> io::Result<Option<Vec<u8>>> {
    let Some(file) = open_regular(path, fs::OpenOptions::new().read(true))? else {
        return Ok(None);
    };
    let size = file.metadata()?.len();
    if size > limit {
        return Err(UnsafeFile::TooLarge { size, limit }.error());
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    // A file that grows after the check is still read only up to the limit.
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    let read = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if read > limit {
        return Err(UnsafeFile::TooLarge { size: read, limit }.error());
    }
    Ok(Some(bytes))
}

/// The file operations [`AtomicFile`] needs; [`RealFs`] does them for real, tests inject
/// failures.
pub trait FileSystem: Send {
    /// Creates `path` anew (removing a leftover file of that name first, never following a
    /// symlink), writes `bytes` and fsyncs the file.
    fn write_synced(&mut self, path: &Path, bytes: &[u8]) -> io::Result<()>;
    /// Renames `from` to `to`, replacing `to`.
    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()>;
    /// Fsyncs a directory so that a rename in it is durable.
    fn sync_dir(&mut self, dir: &Path) -> io::Result<()>;
    /// Reads a whole file; `Ok(None)` if it does not exist.
    fn read(&mut self, path: &Path) -> io::Result<Option<Vec<u8>>>;
    /// Reads a whole file of at most `limit` bytes; `Ok(None)` if it does not exist. The
    /// default reads it with [`FileSystem::read`] and refuses it afterwards if larger;
    /// [`RealFs`] refuses without reading (and refuses anything but a regular file).
    fn read_limited(&mut self, path: &Path, limit: u64) -> io::Result<Option<Vec<u8>>> {
        let bytes = self.read(path)?;
        if let Some(b) = &bytes {
            let size = u64::try_from(b.len()).unwrap_or(u64::MAX);
            if size > limit {
                return Err(UnsafeFile::TooLarge { size, limit }.error());
            }
        }
        Ok(bytes)
    }
}

/// The real file system; new files are readable by their owner only unless
/// [`RealFs::public`].
#[derive(Clone, Copy, Debug, Default)]
pub struct RealFs {
    public: bool,
}

impl RealFs {
    /// Files readable by everyone (0644 less the umask): certificates, public keys.
    pub fn public() -> Self {
        RealFs { public: true }
    }
}

impl FileSystem for RealFs {
    fn write_synced(&mut self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(
            &mut options,
            if self.public { 0o644 } else { 0o600 },
        );
        let mut f = options.open(path)?;
        f.write_all(bytes)?;
        f.sync_all()
    }

    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn sync_dir(&mut self, dir: &Path) -> io::Result<()> {
        // Opening a directory read-only and fsyncing it is how POSIX makes a rename durable.
        fs::File::open(dir)?.sync_all()
    }

    fn read(&mut self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        read_regular(path, DEFAULT_READ_LIMIT)
    }

    fn read_limited(&mut self, path: &Path, limit: u64) -> io::Result<Option<Vec<u8>>> {
        read_regular(path, limit)
    }
}

/// One file replaced atomically and durably.
///
/// ```
/// use smart_agent::store::AtomicFile;
/// let dir = tempfile::tempdir().unwrap();
/// let mut file = AtomicFile::new(dir.path().join("snapshot"));
/// assert_eq!(file.load().unwrap(), None);
/// file.store(b"one").unwrap();
/// file.store(b"two").unwrap();
/// assert_eq!(file.load().unwrap().as_deref(), Some(&b"two"[..]));
/// ```
#[derive(Debug)]
pub struct AtomicFile<F: FileSystem = RealFs> {
    path: PathBuf,
    fs: F,
    limit: u64,
}

impl AtomicFile<RealFs> {
    /// The file at `path` on the real file system, private to its owner.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        AtomicFile::with_fs(path, RealFs::default())
    }
}

impl<F: FileSystem> AtomicFile<F> {
    /// The file at `path` on `fs`.
    pub fn with_fs(path: impl Into<PathBuf>, fs: F) -> Self {
        AtomicFile {
            path: path.into(),
            fs,
            limit: DEFAULT_READ_LIMIT,
        }
    }

    /// The largest content [`AtomicFile::load`] accepts (default [`DEFAULT_READ_LIMIT`]): a
    /// larger file is refused without being read.
    pub fn with_limit(mut self, bytes: u64) -> Self {
        self.limit = bytes;
        self
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn temp_path(&self) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(".tmp");
        self.path.with_file_name(name)
    }

    /// The current content, `None` if the file was never stored. Anything but a regular file
    /// reached without a symbolic link, or a file over the limit, is an error carrying an
    /// [`UnsafeFile`].
    pub fn load(&mut self) -> io::Result<Option<Vec<u8>>> {
        self.fs.read_limited(&self.path, self.limit)
    }

    /// Replaces the content: on success it is durable; on error the file holds the old or the
    /// new content.
    pub fn store(&mut self, bytes: &[u8]) -> io::Result<()> {
        let temp = self.temp_path();
        self.fs.write_synced(&temp, bytes)?;
        self.fs.rename(&temp, &self.path)?;
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        self.fs.sync_dir(&dir)
    }

    /// The file system, e.g. to re-arm an injected failure.
    pub fn fs_mut(&mut self) -> &mut F {
        &mut self.fs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails at one step, like a crash there.
    struct FailAt {
        step: &'static str,
    }

    impl FileSystem for FailAt {
        fn write_synced(&mut self, path: &Path, bytes: &[u8]) -> io::Result<()> {
            RealFs::default().write_synced(path, bytes)?;
            self.fail("after temp write and fsync")
        }
        fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
            RealFs::default().rename(from, to)
        }
        fn sync_dir(&mut self, dir: &Path) -> io::Result<()> {
            self.fail("after rename, before the directory fsync")?;
            RealFs::default().sync_dir(dir)
        }
        fn read(&mut self, path: &Path) -> io::Result<Option<Vec<u8>>> {
            RealFs::default().read(path)
        }
    }

    impl FailAt {
        fn fail(&self, step: &str) -> io::Result<()> {
            if self.step == step {
                Err(io::Error::other(format!("injected failure {step}")))
            } else {
                Ok(())
            }
        }
    }

    #[test]
    fn a_failure_at_any_step_leaves_the_old_or_the_new_content() {
        for (step, expected) in [
            ("after temp write and fsync", &b"old"[..]),
            ("after rename, before the directory fsync", &b"new"[..]),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("state");
            AtomicFile::new(&path).store(b"old").unwrap();
            let mut faulty = AtomicFile::with_fs(&path, FailAt { step });
            assert!(faulty.store(b"new").is_err());
            // Reopened as after a crash.
            let reopened = AtomicFile::new(&path).load().unwrap();
            assert_eq!(reopened.as_deref(), Some(expected), "{step}");
        }
    }

    #[test]
    fn a_leftover_temp_file_from_a_crash_does_not_block_the_next_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        fs::write(dir.path().join("state.tmp"), b"half written").unwrap();
        let mut file = AtomicFile::new(&path);
        file.store(b"whole").unwrap();
        assert_eq!(file.load().unwrap().as_deref(), Some(&b"whole"[..]));
    }

    #[cfg(unix)]
    #[test]
    fn a_symbolic_link_is_refused_and_not_followed_even_when_dangling() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::write(&outside, b"secret").unwrap();
        let path = dir.path().join("snapshot");
        std::os::unix::fs::symlink(&outside, &path).unwrap();
        let e = AtomicFile::new(&path).load().unwrap_err();
        assert_eq!(UnsafeFile::of(&e), Some(&UnsafeFile::SymbolicLink), "{e}");
        fs::remove_file(&outside).unwrap();
        let e = AtomicFile::new(&path).load().unwrap_err();
        assert_eq!(UnsafeFile::of(&e), Some(&UnsafeFile::SymbolicLink), "{e}");
        // Creating a lock file through it creates nothing outside.
        let e = open_or_create_regular(&path, 0o600).unwrap_err();
        assert_eq!(UnsafeFile::of(&e), Some(&UnsafeFile::SymbolicLink), "{e}");
        assert!(!outside.exists());
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_refused_before_it_is_opened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        let made = std::process::Command::new("mkfifo").arg(&path).status();
        if !made.map(|s| s.success()).unwrap_or(false) {
            eprintln!("SKIP: no mkfifo");
            return;
        }
        // Opening a FIFO for reading would wait for a writer for ever.
        let e = AtomicFile::new(&path).load().unwrap_err();
        assert_eq!(
            UnsafeFile::of(&e),
            Some(&UnsafeFile::NotRegular("FIFO")),
            "{e}"
        );
        let e = open_or_create_regular(&path, 0o600).unwrap_err();
        assert_eq!(
            UnsafeFile::of(&e),
            Some(&UnsafeFile::NotRegular("FIFO")),
            "{e}"
        );
    }

    #[test]
    fn a_file_over_the_limit_is_refused_without_being_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snapshot");
        // Sparse: 3 GiB on paper, nothing on disk; reading it would take seconds and gigabytes.
        fs::File::create(&path).unwrap().set_len(3 << 30).unwrap();
        let started = std::time::Instant::now();
        let e = AtomicFile::new(&path).load().unwrap_err();
        assert_eq!(
            UnsafeFile::of(&e),
            Some(&UnsafeFile::TooLarge {
                size: 3 << 30,
                limit: DEFAULT_READ_LIMIT
            }),
            "{e}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        fs::write(&path, [7u8; 11]).unwrap();
        let e = AtomicFile::new(&path).with_limit(10).load().unwrap_err();
        assert_eq!(
            UnsafeFile::of(&e),
            Some(&UnsafeFile::TooLarge {
                size: 11,
                limit: 10
            })
        );
        assert_eq!(
            AtomicFile::new(&path).with_limit(11).load().unwrap(),
            Some(vec![7u8; 11])
        );
    }

    #[test]
    fn a_directory_in_the_files_place_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snapshot");
        fs::create_dir(&path).unwrap();
        let e = AtomicFile::new(&path).load().unwrap_err();
        assert_eq!(
            UnsafeFile::of(&e),
            Some(&UnsafeFile::NotRegular("directory"))
        );
    }

    #[test]
    fn a_lock_file_is_created_once_and_then_opened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let first = open_or_create_regular(&path, 0o644).unwrap();
        drop(first);
        fs::write(&path, b"kept").unwrap();
        open_or_create_regular(&path, 0o644).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"kept");
    }

    #[cfg(unix)]
    #[test]
    fn stored_files_are_private_unless_public() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("snapshot");
        AtomicFile::new(&private).store(b"seeds").unwrap();
        let mode = fs::metadata(&private).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // Public files are created 0644 (less the umask), so they differ from private ones
        // wherever the umask lets group or others read.
        let public = dir.path().join("ca.pem");
        AtomicFile::with_fs(&public, RealFs::public())
            .store(b"cert")
            .unwrap();
        let mode = fs::metadata(&public).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o600, 0o600);
        assert_eq!(mode & 0o133, 0);
    }
}

/// Where a loop (the Driver, the CLI, a simulation) keeps an agent's snapshot.
pub trait SnapshotStore: Send {
    /// The stored snapshot, `None` before the first save.
    fn load(&mut self) -> io::Result<Option<Vec<u8>>>;
    /// Replaces the stored snapshot durably.
    fn save(&mut self, snapshot: &[u8]) -> io::Result<()>;
}

impl<F: FileSystem> SnapshotStore for AtomicFile<F> {
    fn load(&mut self) -> io::Result<Option<Vec<u8>>> {
        AtomicFile::load(self)
    }
    fn save(&mut self, snapshot: &[u8]) -> io::Result<()> {
        self.store(snapshot)
    }
}

/// A snapshot kept in memory (clones share it): for tests, and for callers that persist the
/// bytes themselves.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore(Arc<Mutex<Option<Vec<u8>>>>);

impl MemoryStore {
    /// The stored bytes.
    pub fn get(&self) -> Option<Vec<u8>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl SnapshotStore for MemoryStore {
    fn load(&mut self) -> io::Result<Option<Vec<u8>>> {
        Ok(self.get())
    }
    fn save(&mut self, snapshot: &[u8]) -> io::Result<()> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(snapshot.to_vec());
        Ok(())
    }
}
