//! Atomic, durable replacement of a small file: the Driver's snapshot store, the CLI's state
//! and the reference manager's state all go through it.
//!
//! `store` writes `<file>.tmp` (removing a leftover one from a crash, then creating it
//! exclusively, so a planted symlink is never followed), fsyncs it, renames it over `<file>`
//! and fsyncs the directory. One writer at a time: callers that share a file lock it (the CLI
//! and the manager lock their directories; a Driver is the only writer of its snapshot). A crash at any point leaves
//! either the old or the new content under `<file>`, never a mix; `load` never reads a
//! temporary file. Files are private to their owner (0600 on Unix) unless made with
//! [`RealFs::public`]: a snapshot holds key seeds. The file system is a trait so that tests can
//! fail each step on purpose.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

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
        match fs::read(path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
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
        }
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

    /// The current content, `None` if the file was never stored.
    pub fn load(&mut self) -> io::Result<Option<Vec<u8>>> {
        self.fs.read(&self.path)
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
