//! The manager's state in SQLite (format version 2; version 1 was the whole-file state of
//! `state_file.rs`, imported on first open).
//!
//! One database holds everything a request or an administration call may change, one table
//! per kind of record, each request writing only the rows it changes in one transaction
//! (DESIGN "Reference manager"). The schema is versioned with `PRAGMA user_version`: a new
//! database is created at [`SCHEMA_VERSION`]; an older one is migrated forward in one
//! transaction per step ([`MIGRATIONS`]); a newer one is refused
//! ([`StateError::UnsupportedVersion`]). `PRAGMA application_id` marks the file as ours.
//!
//! ```text
//! meta            environment, max protocol version, default Virtual Account, next registration order
//! signing_keys    seq → PKCS#8 (the highest seq signs; the others are retired, oldest first)
//! smart_accounts  name
//! virtual_accounts id, smart account, name
//! pools           (Virtual Account, tag) → purchased, display name, description
//! tokens          text → Virtual Account, expiry, use limit, uses, export flag, revoked
//! instances       registration order (rowid) → piid, UDI, device key, Virtual Account, export
//!                 flag, host name, IP, registered, identity verbatim, its expiry, last contact,
//!                 last usage sequence, reports counted
//! usage           (instance, tag) → count                      (count-0 tags are not kept)
//! demand          (Virtual Account, tag) → total of its instances' usage  (maintained, SPEC §4)
//! retired_keys    device key → piid, UDI, why, when            (SPEC §12 single-use keys)
//! reservations    piid → UDI, Virtual Account, SLR|PLR, reservation key, latest code and its
//!                 time, expected confirmation, update in transit, export flag   (SPEC §6)
//! reserved        (reservation, tag) → held (max of old and new while in transit), granted,
//!                 TERM dates
//! retired_reservation_keys  reservation key → piid, when (a return code is accepted once)
//! export_key_pools (Virtual Account, feature) → keys bought                      (SPEC §7)
//! export_keys     key id → instance, Virtual Account, feature, issued
//! ```
//! Smart Accounts carry their reservation entitlement and export restriction; `meta` whether
//! export authorization keys are granted at all.
//! Times are two integers (seconds since the epoch, nanoseconds), so that every time chrono
//! represents round-trips; 64-bit unsigned counters are stored with their bit pattern.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::state_file::StateError;

/// The schema version this crate writes (`PRAGMA user_version`); also the manager state's
/// format version ([`super::STATE_VERSION`]).
pub const SCHEMA_VERSION: u16 = 2;

/// `PRAGMA application_id` of a manager database: "SMAG".
const APPLICATION_ID: i32 = 0x534D_4147;

/// The first 16 bytes of every SQLite database file.
pub(crate) const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Version 2, the first SQLite schema.
const SCHEMA_V2: &str = "
CREATE TABLE meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    environment INTEGER NOT NULL CHECK (environment IN (0, 1)),
    max_protocol_version INTEGER NOT NULL,
    default_va INTEGER NOT NULL REFERENCES virtual_accounts (id),
    next_order INTEGER NOT NULL,
    export_keys INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE signing_keys (
    seq INTEGER PRIMARY KEY,
    pkcs8 BLOB NOT NULL
);
CREATE TABLE smart_accounts (
    name TEXT PRIMARY KEY,
    reservation INTEGER NOT NULL DEFAULT 0,
    export_restricted INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE virtual_accounts (
    id INTEGER PRIMARY KEY,
    smart TEXT NOT NULL REFERENCES smart_accounts (name),
    name TEXT NOT NULL,
    UNIQUE (smart, name)
);
CREATE TABLE pools (
    va INTEGER NOT NULL REFERENCES virtual_accounts (id),
    tag TEXT NOT NULL,
    purchased INTEGER NOT NULL,
    display_name TEXT,
    description TEXT,
    PRIMARY KEY (va, tag)
) WITHOUT ROWID;
CREATE TABLE tokens (
    text TEXT PRIMARY KEY,
    va INTEGER NOT NULL REFERENCES virtual_accounts (id),
    expires_s INTEGER NOT NULL,
    expires_ns INTEGER NOT NULL,
    max_uses INTEGER,
    uses INTEGER NOT NULL,
    export_controlled INTEGER NOT NULL,
    revoked INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE instances (
    ord INTEGER PRIMARY KEY,
    piid BLOB NOT NULL UNIQUE,
    udi TEXT NOT NULL UNIQUE,
    public_key BLOB NOT NULL UNIQUE,
    va INTEGER NOT NULL REFERENCES virtual_accounts (id),
    export_controlled INTEGER NOT NULL,
    hostname TEXT,
    ip TEXT,
    registered_s INTEGER NOT NULL,
    registered_ns INTEGER NOT NULL,
    identity BLOB NOT NULL,
    not_after_s INTEGER NOT NULL,
    not_after_ns INTEGER NOT NULL,
    contact_s INTEGER NOT NULL,
    contact_ns INTEGER NOT NULL,
    last_sequence INTEGER,
    reports_counted INTEGER NOT NULL
);
CREATE INDEX instances_by_account ON instances (va, ord);
CREATE TABLE usage (
    instance INTEGER NOT NULL REFERENCES instances (ord) ON DELETE CASCADE,
    tag TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (instance, tag)
) WITHOUT ROWID;
CREATE TABLE demand (
    va INTEGER NOT NULL REFERENCES virtual_accounts (id),
    tag TEXT NOT NULL,
    total INTEGER NOT NULL,
    PRIMARY KEY (va, tag)
) WITHOUT ROWID;
CREATE TABLE retired_keys (
    public_key BLOB PRIMARY KEY,
    piid BLOB NOT NULL UNIQUE,
    udi TEXT NOT NULL,
    retirement INTEGER NOT NULL,
    at_s INTEGER NOT NULL,
    at_ns INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE reservations (
    piid BLOB PRIMARY KEY,
    udi TEXT NOT NULL UNIQUE,
    va INTEGER NOT NULL REFERENCES virtual_accounts (id),
    kind INTEGER NOT NULL CHECK (kind IN (0, 1)),
    reservation_key BLOB NOT NULL UNIQUE,
    code TEXT NOT NULL,
    issued_ms INTEGER NOT NULL,
    confirmation INTEGER,
    in_transit INTEGER NOT NULL,
    export_controlled INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE reserved (
    piid BLOB NOT NULL REFERENCES reservations (piid) ON DELETE CASCADE,
    tag TEXT NOT NULL,
    held INTEGER NOT NULL,
    granted INTEGER NOT NULL,
    start_date TEXT,
    end_date TEXT,
    PRIMARY KEY (piid, tag)
) WITHOUT ROWID;
CREATE TABLE retired_reservation_keys (
    reservation_key BLOB PRIMARY KEY,
    piid BLOB NOT NULL,
    at_s INTEGER NOT NULL,
    at_ns INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE export_key_pools (
    va INTEGER NOT NULL REFERENCES virtual_accounts (id),
    feature TEXT NOT NULL,
    total INTEGER NOT NULL,
    PRIMARY KEY (va, feature)
) WITHOUT ROWID;
CREATE TABLE export_keys (
    key_id BLOB PRIMARY KEY,
    instance INTEGER NOT NULL REFERENCES instances (ord) ON DELETE CASCADE,
    va INTEGER NOT NULL REFERENCES virtual_accounts (id),
    feature TEXT NOT NULL,
    issued_s INTEGER NOT NULL,
    issued_ns INTEGER NOT NULL,
    UNIQUE (instance, feature)
) WITHOUT ROWID;
";

/// How to reach each schema version from the one before: (version, SQL). A database at
/// `user_version` 0 is new and gets the first entry; each later entry migrates one step.
pub(crate) const MIGRATIONS: &[(u16, &str)] = &[(2, SCHEMA_V2)];

/// Why the database could not be used: what the server answers 503 (busy) or 500 for.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DbError {
    /// Another connection held the write lock past the request's deadline.
    #[error("the manager's database is busy")]
    Busy,
    /// Anything else SQLite reported (I/O error, full disk, damage, …).
    #[error("the manager's database failed: {0}")]
    Failed(String),
}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                DbError::Busy
            }
            _ => DbError::Failed(e.to_string()),
        }
    }
}

pub(crate) type DbResult<T> = Result<T, DbError>;

/// How durably a file database commits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Durability {
    /// Every commit is on disk before it returns (`synchronous = FULL`): the served manager.
    Full,
}

/// One connection to a manager database.
pub(crate) struct Db {
    conn: Connection,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").finish_non_exhaustive()
    }
}

/// Turns a database failure while opening or importing into a typed state error.
pub(crate) fn state_error(e: DbError) -> StateError {
    StateError::Corrupt(e.to_string())
}

/// A SQLite error while opening: damage says "integrity check failed" like a version 1 file's
/// digest mismatch did.
fn open_error(e: rusqlite::Error) -> StateError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase) => {
            StateError::Corrupt(format!("integrity check failed: {e}"))
        }
        _ => StateError::Corrupt(e.to_string()),
    }
}

impl Db {
    /// A new, empty in-memory database with the current schema.
    pub fn memory() -> DbResult<Db> {
        let conn = Connection::open_in_memory()?;
        let db = Db { conn };
        db.configure()?;
        db.create()?;
        Ok(db)
    }

    /// Opens the database file at `path` (which must exist and be ours), migrating it to the
    /// current schema, in WAL mode.
    pub fn open(path: &Path, durability: Durability) -> Result<Db, StateError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(open_error)?;
        let db = Db { conn };
        db.configure().map_err(state_error)?;
        db.conn
            .busy_timeout(Duration::from_secs(30))
            .map_err(open_error)?;
        db.check_identity()?;
        db.migrate()?;
        // WAL: readers never wait for the writer, and a commit is one append.
        let mode: String = db
            .conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(open_error)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StateError::Corrupt(format!(
                "the database cannot use WAL mode ({mode})"
            )));
        }
        let sync = match durability {
            Durability::Full => "PRAGMA synchronous = FULL",
        };
        // Reads of a large state by memory map and a larger cache (8 MiB a connection),
        // rather than by a system call per page.
        db.conn
            .execute_batch("PRAGMA cache_size = -8192; PRAGMA mmap_size = 268435456;")
            .map_err(open_error)?;
        db.conn.execute_batch(sync).map_err(open_error)?;
        Ok(db)
    }

    /// Creates a new database file at `path` (which must not exist) with the current
    /// schema, in rollback-journal mode (one file, renamed into place by the caller).
    pub fn create_file(path: &Path) -> DbResult<Db> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)?;
        let db = Db { conn };
        db.configure()?;
        db.conn.execute_batch("PRAGMA synchronous = FULL")?;
        db.create()?;
        Ok(db)
    }

    fn configure(&self) -> DbResult<()> {
        self.conn.execute_batch("PRAGMA foreign_keys = ON")?;
        // The query planner stability guarantee: plans do not depend on the values bound to
        // a statement, so a cached statement is not prepared again each time a new value is
        // bound to a parameter the planner looked at (twice an authorize, with STAT4).
        self.conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )?;
        self.conn.set_prepared_statement_cache_capacity(64);
        Ok(())
    }

    fn create(&self) -> DbResult<()> {
        self.conn.execute_batch(&format!(
            "BEGIN; {SCHEMA_V2} PRAGMA application_id = {APPLICATION_ID}; \
             PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
        ))?;
        Ok(())
    }

    fn check_identity(&self) -> Result<(), StateError> {
        let id: i32 = self
            .conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .map_err(open_error)?;
        if id != APPLICATION_ID {
            return Err(StateError::WrongMagic);
        }
        Ok(())
    }

    /// The database's schema version.
    pub fn user_version(&self) -> rusqlite::Result<i64> {
        self.conn.query_row("PRAGMA user_version", [], |r| r.get(0))
    }

    /// Brings the schema to [`SCHEMA_VERSION`], one transaction per step.
    fn migrate(&self) -> Result<(), StateError> {
        let version = self.user_version().map_err(open_error)?;
        let current = i64::from(SCHEMA_VERSION);
        if version > current {
            return Err(StateError::UnsupportedVersion(
                u16::try_from(version).unwrap_or(u16::MAX),
            ));
        }
        let first = i64::from(MIGRATIONS[0].0);
        if version < first {
            return Err(StateError::Corrupt(format!(
                "schema version {version} was never written"
            )));
        }
        for (to, sql) in MIGRATIONS.iter().filter(|(to, _)| i64::from(*to) > version) {
            self.conn
                .execute_batch(&format!(
                    "BEGIN IMMEDIATE; {sql} PRAGMA user_version = {to}; COMMIT;"
                ))
                .map_err(|e| match open_error(e) {
                    StateError::Corrupt(why) => {
                        StateError::Corrupt(format!("migration to version {to}: {why}"))
                    }
                    other => other,
                })?;
        }
        Ok(())
    }

    /// The connection, for the record modules' statements.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Starts the transaction of one request or administration call: `BEGIN IMMEDIATE`
    /// (waiting for the write lock at most until `deadline`), or a savepoint when the caller
    /// already holds a transaction (an embedded manager, [`super::StateDir::load`]).
    pub fn begin(&self, deadline: Option<Instant>) -> DbResult<Txn<'_>> {
        if !self.conn.is_autocommit() {
            self.conn.execute_batch("SAVEPOINT request")?;
            return Ok(Txn {
                db: self,
                nested: true,
                open: true,
            });
        }
        let wait = match deadline {
            Some(at) => at.saturating_duration_since(Instant::now()),
            None => Duration::from_secs(30),
        };
        if wait.is_zero() {
            return Err(DbError::Busy);
        }
        self.conn.busy_timeout(wait)?;
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        Ok(Txn {
            db: self,
            nested: false,
            open: true,
        })
    }

    /// Starts a transaction that lasts until [`Db::commit_outer`] or the connection closes
    /// (which rolls it back).
    pub fn begin_outer(&self, wait: Duration) -> DbResult<()> {
        self.conn.busy_timeout(wait)?;
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        Ok(())
    }

    /// Commits what [`Db::begin_outer`] started.
    pub fn commit_outer(&self) -> DbResult<()> {
        if !self.conn.is_autocommit() {
            self.conn.execute_batch("COMMIT")?;
        }
        Ok(())
    }

    /// The whole database as the bytes of a SQLite file in WAL mode (without a WAL): what a
    /// state directory's `state` file holds once every connection is closed, so that these
    /// bytes can be written as that file and opened as they are.
    pub fn image(&self) -> DbResult<Vec<u8>> {
        // A copy first: serializing needs the connection to itself.
        let mut copy = Connection::open_in_memory()?;
        {
            let backup = rusqlite::backup::Backup::new(&self.conn, &mut copy)?;
            backup.run_to_completion(1024, Duration::ZERO, None)?;
        }
        let data = copy.serialize(rusqlite::MAIN_DB)?;
        let mut bytes = data.to_vec();
        // The file format's read and write versions: 2 is WAL mode.
        if bytes.len() >= 20 {
            bytes[18] = 2;
            bytes[19] = 2;
        }
        Ok(bytes)
    }

    /// Copies the database file `path` (WAL included) into a new in-memory database.
    pub fn copy_of_file(path: &Path) -> Result<Db, StateError> {
        let file = Db::open(path, Durability::Full)?;
        let mut conn = Connection::open_in_memory().map_err(open_error)?;
        {
            let backup =
                rusqlite::backup::Backup::new(&file.conn, &mut conn).map_err(open_error)?;
            backup
                .run_to_completion(1024, Duration::ZERO, None)
                .map_err(open_error)?;
        }
        let db = Db { conn };
        db.configure().map_err(state_error)?;
        Ok(db)
    }

    /// An in-memory database holding the SQLite file `bytes`, checked and migrated.
    pub fn from_image(bytes: &[u8]) -> Result<Db, StateError> {
        let corrupt = open_error;
        let mut conn = Connection::open_in_memory().map_err(corrupt)?;
        // In memory there is no WAL: read the image as a rollback-journal database.
        let mut bytes = bytes.to_vec();
        if bytes.len() >= 20 && bytes[18] == 2 && bytes[19] == 2 {
            bytes[18] = 1;
            bytes[19] = 1;
        }
        conn.deserialize_read_exact(rusqlite::MAIN_DB, &bytes[..], bytes.len(), false)
            .map_err(corrupt)?;
        let db = Db { conn };
        db.configure().map_err(state_error)?;
        db.check_identity()?;
        db.migrate()?;
        let ok: String = db
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(corrupt)?;
        if ok != "ok" {
            return Err(StateError::Corrupt(format!("integrity check failed: {ok}")));
        }
        Ok(db)
    }

    /// SQLite's own integrity check: `ok`, or what is wrong.
    pub fn integrity_check(&self) -> DbResult<String> {
        Ok(self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
    }

    /// SQLite's quick check (structure, not index contents): `ok`, or what is wrong.
    pub fn quick_check(&self) -> DbResult<String> {
        Ok(self
            .conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))?)
    }

    /// Runs `sql` expecting at most one row.
    pub fn optional<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> DbResult<Option<T>> {
        Ok(self
            .conn
            .prepare_cached(sql)?
            .query_row(params, f)
            .optional()?)
    }

    /// Runs a statement that changes rows.
    pub fn run(&self, sql: &str, params: impl rusqlite::Params) -> DbResult<usize> {
        Ok(self.conn.prepare_cached(sql)?.execute(params)?)
    }
}

#[cfg(test)]
impl Db {
    /// Every row of every table, as text, sorted: equal dumps are equal states.
    pub fn dump(&self) -> String {
        let tables = [
            "meta",
            "signing_keys",
            "smart_accounts",
            "virtual_accounts",
            "pools",
            "tokens",
            "instances",
            "usage",
            "demand",
            "retired_keys",
            "reservations",
            "reserved",
            "retired_reservation_keys",
            "export_key_pools",
            "export_keys",
        ];
        let mut out = String::new();
        for table in tables {
            let mut stmt = self
                .conn
                .prepare(&format!("SELECT * FROM {table}"))
                .unwrap();
            let columns = stmt.column_count();
            let mut rows: Vec<String> = stmt
                .query_map([], |r| {
                    let mut line = String::new();
                    for i in 0..columns {
                        let value: rusqlite::types::Value = r.get(i)?;
                        line.push_str(&format!("{value:?}|"));
                    }
                    Ok(line)
                })
                .unwrap()
                .map(Result::unwrap)
                .collect();
            rows.sort();
            out.push_str(&format!("[{table}]\n{}\n", rows.join("\n")));
        }
        out
    }
}

/// An open transaction (or savepoint): rolled back when dropped without [`Txn::commit`].
pub(crate) struct Txn<'a> {
    db: &'a Db,
    nested: bool,
    open: bool,
}

impl Txn<'_> {
    /// Commits (or releases the savepoint).
    pub fn commit(mut self) -> DbResult<()> {
        self.open = false;
        let sql = if self.nested {
            "RELEASE request"
        } else {
            "COMMIT"
        };
        if let Err(e) = self.db.conn.execute_batch(sql) {
            self.rollback_quietly();
            return Err(e.into());
        }
        Ok(())
    }

    fn rollback_quietly(&self) {
        let sql = if self.nested {
            "ROLLBACK TO request; RELEASE request"
        } else {
            "ROLLBACK"
        };
        // A failed commit may have ended the transaction already.
        if self.nested || !self.db.conn.is_autocommit() {
            let _ = self.db.conn.execute_batch(sql);
        }
    }
}

impl Drop for Txn<'_> {
    fn drop(&mut self) {
        if self.open {
            self.rollback_quietly();
        }
    }
}

/// A time as two columns: seconds since the epoch and nanoseconds.
pub(crate) fn time_cols(t: DateTime<Utc>) -> (i64, u32) {
    (t.timestamp(), t.timestamp_subsec_nanos())
}

/// The time stored as `secs` and `nanos`; a damaged pair is a conversion error.
pub(crate) fn time_from(secs: i64, nanos: u32) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::from_timestamp(secs, nanos).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Integer,
            "a time out of range".into(),
        )
    })
}

/// Reads the time in columns `at` and `at + 1` of `row`.
pub(crate) fn time_at(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<DateTime<Utc>> {
    time_from(row.get(at)?, row.get(at + 1)?)
}

/// A 64-bit unsigned counter as SQLite's signed integer (the same bits).
pub(crate) fn u64_col(n: u64) -> i64 {
    n as i64
}

/// The counter stored by [`u64_col`].
pub(crate) fn u64_from(n: i64) -> u64 {
    n as u64
}

/// Reads a fixed-size blob.
pub(crate) fn array_at<const N: usize>(
    row: &rusqlite::Row<'_>,
    at: usize,
) -> rusqlite::Result<[u8; N]> {
    let bytes: Vec<u8> = row.get(at)?;
    bytes.try_into().map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            at,
            rusqlite::types::Type::Blob,
            "a blob of the wrong length".into(),
        )
    })
}
