//! Export authorization keys on the manager's side (SPEC §7, 003:817-883): per Virtual
//! Account and feature, a pool of keys bought; a registered instance of a Smart Account under
//! export restrictions asks for one (`exportRequest`) and gets a signed key, gives it back
//! (`exportReturn`), or loses it with its registration (a deregistration or a replacing
//! registration frees its keys). A manager may be run without the capability: it then answers
//! every request `NOT_SUPPORTED`.

use chrono::{DateTime, Utc};

use super::accounts::{self, VirtualAccountId};
use super::db::{array_at, time_at, time_cols, u64_col, Db, DbError};
use super::error::ManagerError;
use super::instances::Instance;
use super::Manager;
use crate::codes::is_feature_name;
use crate::udi::Uuid;

/// A Virtual Account's keys for one feature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportKeyPool {
    /// The feature, e.g. `CUCM_Export_Restricted_Authorization_Key`.
    pub feature: String,
    /// Keys bought.
    pub total: u32,
    /// Keys held by product instances.
    pub in_use: u32,
}

/// A key a product instance holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HeldKey {
    pub key_id: Uuid,
    pub issued_at: DateTime<Utc>,
}

/// Whether export authorization keys are granted at all.
pub(crate) fn supported(db: &Db) -> Result<bool, DbError> {
    Ok(db
        .optional("SELECT export_keys FROM meta WHERE id = 1", [], |r| {
            r.get::<_, bool>(0)
        })?
        .unwrap_or(false))
}

/// The key `instance` holds for `feature`, if any.
pub(crate) fn held(
    db: &Db,
    instance: &Instance,
    feature: &str,
) -> Result<Option<HeldKey>, DbError> {
    db.optional(
        "SELECT key_id, issued_s, issued_ns FROM export_keys WHERE instance = ?1 AND feature = ?2",
        rusqlite::params![u64_col(instance.order), feature],
        |r| {
            Ok(HeldKey {
                key_id: Uuid(array_at(r, 0)?),
                issued_at: time_at(r, 1)?,
            })
        },
    )
}

/// Keys left for `feature` in Virtual Account row `va`: bought less held.
pub(crate) fn available(db: &Db, va: i64, feature: &str) -> Result<u32, DbError> {
    let total: i64 = db
        .optional(
            "SELECT total FROM export_key_pools WHERE va = ?1 AND feature = ?2",
            rusqlite::params![va, feature],
            |r| r.get(0),
        )?
        .unwrap_or(0);
    let used: i64 = db
        .optional(
            "SELECT COUNT(*) FROM export_keys WHERE va = ?1 AND feature = ?2",
            rusqlite::params![va, feature],
            |r| r.get(0),
        )?
        .unwrap_or(0);
    Ok(u32::try_from(total.saturating_sub(used).max(0)).unwrap_or(u32::MAX))
}

/// Records a key granted to `instance`.
pub(crate) fn grant(
    db: &Db,
    instance: &Instance,
    feature: &str,
    key_id: Uuid,
    at: DateTime<Utc>,
) -> Result<(), DbError> {
    let (s, ns) = time_cols(at);
    db.run(
        "INSERT INTO export_keys (key_id, instance, va, feature, issued_s, issued_ns)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        rusqlite::params![
            key_id.0.as_slice(),
            u64_col(instance.order),
            instance.va,
            feature,
            s,
            ns
        ],
    )?;
    Ok(())
}

/// Frees a key.
pub(crate) fn give_back(db: &Db, key_id: Uuid) -> Result<(), DbError> {
    db.run(
        "DELETE FROM export_keys WHERE key_id = ?1",
        [key_id.0.as_slice()],
    )?;
    Ok(())
}

/// A fresh key id (random, not in use).
pub(crate) fn fresh_id(
    db: &Db,
    rng: &mut dyn crate::crypto::Random,
) -> Result<Option<Uuid>, DbError> {
    for _ in 0..8 {
        let Ok(bytes) = crate::crypto::random_array::<16>(rng) else {
            return Ok(None);
        };
        let id = Uuid::from_random(bytes);
        let taken = db.optional(
            "SELECT 1 FROM export_keys WHERE key_id = ?1",
            [id.0.as_slice()],
            |_| Ok(()),
        )?;
        if taken.is_none() {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

impl Manager {
    /// Adds `count` export authorization keys for `feature` to Virtual Account `va`.
    pub fn add_export_keys(
        &mut self,
        va: &VirtualAccountId,
        feature: &str,
        count: u32,
    ) -> Result<(), ManagerError> {
        if !is_feature_name(feature) {
            return Err(ManagerError::InvalidFeature(
                feature.chars().take(64).collect(),
            ));
        }
        self.admin(|db, _| {
            let row = accounts::va_id(db, va)?
                .ok_or_else(|| ManagerError::UnknownVirtualAccount(va.clone()))?;
            let total: i64 = db
                .optional(
                    "SELECT total FROM export_key_pools WHERE va = ?1 AND feature = ?2",
                    rusqlite::params![row, feature],
                    |r| r.get(0),
                )?
                .unwrap_or(0);
            let total = u32::try_from(total)
                .ok()
                .and_then(|t| t.checked_add(count))
                .ok_or(ManagerError::CountOverflow)?;
            db.run(
                "INSERT INTO export_key_pools (va, feature, total) VALUES (?1, ?2, ?3)
                 ON CONFLICT (va, feature) DO UPDATE SET total = excluded.total",
                rusqlite::params![row, feature, total],
            )?;
            Ok(())
        })
    }

    /// The export key pools of `va`, by feature (empty for an unknown account).
    pub fn export_key_pools(&self, va: &VirtualAccountId) -> Vec<ExportKeyPool> {
        let list = || -> Result<Vec<ExportKeyPool>, DbError> {
            let Some(row) = accounts::va_id(&self.db, va)? else {
                return Ok(Vec::new());
            };
            let mut stmt = self.db.conn().prepare_cached(
                "SELECT p.feature, p.total,
                     (SELECT COUNT(*) FROM export_keys k WHERE k.va = p.va AND k.feature = p.feature)
                 FROM export_key_pools p WHERE p.va = ?1 ORDER BY p.feature",
            )?;
            let rows = stmt.query_map([row], |r| {
                Ok(ExportKeyPool {
                    feature: r.get(0)?,
                    total: r.get(1)?,
                    in_use: r.get(2)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        };
        list().unwrap_or_default()
    }

    /// Grants export authorization keys, or answers every key request `NOT_SUPPORTED`
    /// (`serve --no-export-keys`). On by default.
    pub fn set_export_keys_supported(&mut self, supported: bool) -> Result<(), ManagerError> {
        self.admin(|db, _| {
            db.run("UPDATE meta SET export_keys = ?1", [supported])?;
            Ok(())
        })
    }

    /// Whether export authorization keys are granted.
    pub fn export_keys_supported(&self) -> bool {
        supported(&self.db).unwrap_or(false)
    }
}
