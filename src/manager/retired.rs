//! Retired device keys (SPEC §12: device keys are single-use): the key of a registration that
//! a newer registration of the same UDI superseded, or that a deregistration removed, is kept
//! as a tombstone so that a request it signed — a captured request replayed later, or an agent
//! restored from an old backup — changes nothing.

use chrono::{DateTime, Utc};

use super::db::{array_at, time_at, time_cols, Db, DbResult};
use super::instances::Instance;
use crate::udi::{Udi, Uuid};

/// Why a key was retired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Retirement {
    /// A newer registration of the same UDI replaced its registration.
    Superseded,
    /// Its registration was deregistered.
    Deregistered,
}

/// What the manager keeps about a retired key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Tombstone {
    pub key: [u8; 32],
    /// The piid of the registration it belonged to.
    pub piid: Uuid,
    pub udi: Udi,
    pub retirement: Retirement,
    pub at: DateTime<Utc>,
}

fn retirement_code(r: Retirement) -> i64 {
    match r {
        Retirement::Superseded => 0,
        Retirement::Deregistered => 1,
    }
}

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Tombstone> {
    let udi: String = r.get(2)?;
    Ok(Tombstone {
        key: array_at(r, 0)?,
        piid: Uuid(array_at(r, 1)?),
        udi: Udi::parse_long_form(&udi).map_err(|_| {
            rusqlite::Error::FromSqlConversionFailure(
                2,
                rusqlite::types::Type::Text,
                "a bad UDI".into(),
            )
        })?,
        retirement: match r.get::<_, i64>(3)? {
            0 => Retirement::Superseded,
            _ => Retirement::Deregistered,
        },
        at: time_at(r, 4)?,
    })
}

const COLUMNS: &str = "public_key, piid, udi, retirement, at_s, at_ns";

pub(crate) fn by_key(db: &Db, key: &[u8; 32]) -> DbResult<Option<Tombstone>> {
    db.optional(
        &format!("SELECT {COLUMNS} FROM retired_keys WHERE public_key = ?1"),
        [key.as_slice()],
        from_row,
    )
}

pub(crate) fn by_piid(db: &Db, piid: &Uuid) -> DbResult<Option<Tombstone>> {
    db.optional(
        &format!("SELECT {COLUMNS} FROM retired_keys WHERE piid = ?1"),
        [piid.0.as_slice()],
        from_row,
    )
}

/// Retires the key of `instance` (which is going away).
pub(crate) fn retire(
    db: &Db,
    instance: &Instance,
    retirement: Retirement,
    at: DateTime<Utc>,
) -> DbResult<()> {
    insert(
        db,
        &Tombstone {
            key: instance.public_key,
            piid: instance.piid,
            udi: instance.udi.clone(),
            retirement,
            at,
        },
    )
}

/// Stores a tombstone as it is.
pub(crate) fn insert(db: &Db, t: &Tombstone) -> DbResult<()> {
    let (s, ns) = time_cols(t.at);
    db.run(
        "INSERT OR REPLACE INTO retired_keys (public_key, piid, udi, retirement, at_s, at_ns)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        rusqlite::params![
            t.key.as_slice(),
            t.piid.0.as_slice(),
            t.udi.long_form(),
            retirement_code(t.retirement),
            s,
            ns
        ],
    )?;
    Ok(())
}
