//! `DIR/commit`: the commit journal, so that a crash at any point of a commit leaves the
//! directory as it was before the command or as it is after it, never in between.
//!
//! A commit first writes the journal — every file it is about to write (or remove), the
//! embedded manager's new state with a hash of the state it replaces, and the manager's new
//! clock — atomically; that write is the commit point. Then it writes the files in order
//! (manager state, manager clock, agent snapshot, record, `export-limit`, `manager-offline`,
//! event log, then removes what the record replaces) and removes the journal. An invocation
//! that finds a journal (a crash after the commit point) finishes it before anything else; one
//! that finds none sees the old directory, the requests its crashed predecessor made in memory
//! lost like answers that never came back (nothing of them reached a file).
//!
//! Layout (the crate's big-endian codec): `SMAGCLIJ`, version `u16` (1), the manager state
//! (optional: SHA-256 of the state it replaces, new state bytes), the manager clock (optional
//! time), the files (count; each a name and optional bytes, absent = remove), then SHA-256 of
//! everything before it.

use std::fs;
use std::path::Path;

use chrono::{DateTime, Utc};
use ring::digest::{digest, SHA256};
use smart_agent::codec::{CodecError, Reader, Writer};

pub const FILE: &str = "commit";
const MAGIC: &[u8; 8] = b"SMAGCLIJ";
const VERSION: u16 = 1;
/// Larger than any genuine journal (the manager state and the agent's files).
pub const LIMIT: u64 = 256 << 20;

/// The embedded manager's part of a commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManagerWrite {
    /// SHA-256 of the state file it replaces.
    pub before: Vec<u8>,
    pub after: Vec<u8>,
}

/// Everything one commit writes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Journal {
    pub manager: Option<ManagerWrite>,
    pub clock: Option<DateTime<Utc>>,
    /// Files of the state directory, in the order written: content, or `None` to remove.
    pub files: Vec<(String, Option<Vec<u8>>)>,
}

/// SHA-256 of `bytes`.
pub fn hash(bytes: &[u8]) -> Vec<u8> {
    digest(&SHA256, bytes).as_ref().to_vec()
}

impl Journal {
    pub fn is_empty(&self) -> bool {
        self.manager.is_none() && self.clock.is_none() && self.files.is_empty()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.bytes(MAGIC);
        w.u16(VERSION);
        w.opt(self.manager.as_ref(), |w, m| {
            w.bytes(&m.before);
            w.bytes(&m.after);
        });
        w.opt(self.clock, |w, t| w.time(t));
        w.count(self.files.len());
        for (name, content) in &self.files {
            w.str(name);
            w.opt(content.as_deref(), |w, b| w.bytes(b));
        }
        let mut bytes = w.finish();
        let sum = hash(&bytes);
        bytes.extend_from_slice(&sum);
        bytes
    }

    pub fn decode(bytes: &[u8]) -> Result<Journal, String> {
        let split = bytes
            .len()
            .checked_sub(32)
            .ok_or_else(|| "truncated".to_string())?;
        let (body, sum) = bytes.split_at(split);
        if hash(body) != sum {
            return Err("corrupt (checksum)".into());
        }
        let codec = |e: CodecError| e.to_string();
        let mut r = Reader::new(body);
        if r.bytes().map_err(codec)? != MAGIC {
            return Err("not a commit journal".into());
        }
        let version = r.u16().map_err(codec)?;
        if version != VERSION {
            return Err(format!(
                "journal version {version} is not one this harness reads"
            ));
        }
        let manager = r.opt(|r| {
            Ok::<_, CodecError>(ManagerWrite {
                before: r.bytes()?.to_vec(),
                after: r.bytes()?.to_vec(),
            })
        });
        let manager = manager.map_err(codec)?;
        let clock = r.opt(|r| r.time()).map_err(codec)?;
        let n = r.count().map_err(codec)?;
        let mut files = Vec::with_capacity(n);
        for _ in 0..n {
            let name = r.string().map_err(codec)?;
            if !crate::statedir::JOURNALED.contains(&name.as_str()) {
                return Err(format!("names a file it may not write: {name}"));
            }
            let content = r.opt(|r| r.bytes().map(<[u8]>::to_vec)).map_err(codec)?;
            files.push((name, content));
        }
        r.end().map_err(codec)?;
        Ok(Journal {
            manager,
            clock,
            files,
        })
    }
}

/// Removes `path`; already gone is fine.
pub fn remove(path: &Path) -> std::io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
