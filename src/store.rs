//! Atomic, durable replacement of a small file: the Driver's snapshot store, the CLI's state
//! and the reference manager's state all go through it.
//!
//! `store` writes `<file>.tmp`, fsyncs it, renames it over `<file>` and fsyncs the directory.
//! A crash at any point leaves either the old or the new content under `<file>`, never a mix;
//! `load` ignores a leftover temporary file. The file system is a trait so that tests can fail
//! each step on purpose.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The file operations [`AtomicFile`] needs; [`RealFs`] does them for real, tests inject
/// failures.
pub trait FileSystem: Send {
    /// Creates or truncates `path`, writes `bytes` and fsyncs the file.
    fn write_synced(&mut self, path: &Path, bytes: &[u8]) -> io::Result<()>;
    /// Renames `from` to `to`, replacing `to`.
    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()>;
    /// Fsyncs a directory so that a rename in it is durable.
    fn sync_dir(&mut self, dir: &Path) -> io::Result<()>;
    /// Reads a whole file; `Ok(None)` if it does not exist.
    fn read(&mut self, path: &Path) -> io::Result<Option<Vec<u8>>>;
}

/// The real file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealFs;

impl FileSystem for RealFs {
    fn write_synced(&mut self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut f = fs::File::create(path)?;
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
    /// The file at `path` on the real file system.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        AtomicFile::with_fs(path, RealFs)
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
            RealFs.write_synced(path, bytes)?;
            self.fail("after temp write and fsync")
        }
        fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
            RealFs.rename(from, to)
        }
        fn sync_dir(&mut self, dir: &Path) -> io::Result<()> {
            self.fail("after rename, before the directory fsync")?;
            RealFs.sync_dir(dir)
        }
        fn read(&mut self, path: &Path) -> io::Result<Option<Vec<u8>>> {
            RealFs.read(path)
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
}
