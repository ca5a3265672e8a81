//! Registered product instances and what the manager knows about each.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::accounts::VirtualAccountId;
use super::db::{array_at, time_at, time_cols, u64_col, u64_from, Db, DbError, DbResult};
use super::Usage;
use crate::crypto::{random_array, Random};
use crate::udi::{Udi, Uuid};

/// A product instance as the administrator sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceInfo {
    /// The product-instance id the manager assigned at registration.
    pub piid: Uuid,
    /// The UDI it registered with.
    pub udi: Udi,
    /// The Virtual Account (and its Smart Account) it belongs to.
    pub virtual_account: VirtualAccountId,
    /// Whether its identity allows export-controlled functionality (from the token).
    pub export_controlled: bool,
    /// Its host name, as last reported (absent while privacy is on).
    pub hostname: Option<String>,
    /// Its IP address, as last reported (absent while privacy is on).
    pub ip: Option<String>,
    /// When it registered.
    pub registered_at: DateTime<Utc>,
    /// When its current identity certificate expires.
    pub identity_not_after: DateTime<Utc>,
    /// The last accepted request from it.
    pub last_contact: DateTime<Utc>,
    /// Its reported usage, tag text → count (count-0 tags are not kept).
    pub usage: BTreeMap<String, u32>,
    /// The sequence number of the last usage report counted.
    pub last_usage_sequence: Option<u64>,
    /// How many usage reports were counted (repeats are not).
    pub usage_reports_counted: u64,
}

/// What the manager keeps about one instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Instance {
    pub piid: Uuid,
    pub udi: Udi,
    pub public_key: [u8; 32],
    /// The row id of its Virtual Account, and the account's name.
    pub va: i64,
    pub virtual_account: VirtualAccountId,
    pub export_controlled: bool,
    pub hostname: Option<String>,
    pub ip: Option<String>,
    pub registered_at: DateTime<Utc>,
    /// The signed identity certificate, verbatim, for repeated registrations.
    pub identity: Vec<u8>,
    pub identity_not_after: DateTime<Utc>,
    pub last_contact: DateTime<Utc>,
    pub usage: Usage,
    pub last_sequence: Option<u64>,
    pub reports_counted: u64,
    /// Registration order (the row id); assigned on insertion.
    pub order: u64,
}

impl Instance {
    pub fn info(&self) -> InstanceInfo {
        InstanceInfo {
            piid: self.piid,
            udi: self.udi.clone(),
            virtual_account: self.virtual_account.clone(),
            export_controlled: self.export_controlled,
            hostname: self.hostname.clone(),
            ip: self.ip.clone(),
            registered_at: self.registered_at,
            identity_not_after: self.identity_not_after,
            last_contact: self.last_contact,
            usage: self.usage.clone(),
            last_usage_sequence: self.last_sequence,
            usage_reports_counted: self.reports_counted,
        }
    }
}

/// When and from where an instance was heard from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Contact {
    pub at: DateTime<Utc>,
    pub hostname: Option<String>,
    pub ip: Option<String>,
}

/// Which instances a listing wants.
#[derive(Clone, Debug, Default)]
pub(crate) struct Filter {
    /// Only this Virtual Account's (row id).
    pub va: Option<i64>,
    /// Only those whose UDI (long form) contains this text.
    pub udi_contains: Option<String>,
    /// At most this many, in registration order.
    pub limit: Option<usize>,
}

const COLUMNS: &str = "i.ord, i.piid, i.udi, i.public_key, i.va, v.smart, v.name,
    i.export_controlled, i.hostname, i.ip, i.registered_s, i.registered_ns, i.identity,
    i.not_after_s, i.not_after_ns, i.contact_s, i.contact_ns, i.last_sequence, i.reports_counted";

fn conversion(at: usize, what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        at,
        rusqlite::types::Type::Text,
        what.to_string().into(),
    )
}

/// An instance from a row of [`COLUMNS`], without its usage.
fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Instance> {
    let udi: String = r.get(2)?;
    Ok(Instance {
        order: u64_from(r.get(0)?),
        piid: Uuid(array_at(r, 1)?),
        udi: Udi::parse_long_form(&udi).map_err(|_| conversion(2, "a bad UDI"))?,
        public_key: array_at(r, 3)?,
        va: r.get(4)?,
        virtual_account: VirtualAccountId::new(r.get::<_, String>(5)?, r.get::<_, String>(6)?),
        export_controlled: r.get(7)?,
        hostname: r.get(8)?,
        ip: r.get(9)?,
        registered_at: time_at(r, 10)?,
        identity: r.get(12)?,
        identity_not_after: time_at(r, 13)?,
        last_contact: time_at(r, 15)?,
        usage: Usage::new(),
        last_sequence: r.get::<_, Option<i64>>(17)?.map(u64_from),
        reports_counted: u64_from(r.get(18)?),
    })
}

fn usage_of(db: &Db, order: u64) -> DbResult<Usage> {
    let mut stmt = db
        .conn()
        .prepare_cached("SELECT tag, count FROM usage WHERE instance = ?1")?;
    let rows = stmt.query_map([u64_col(order)], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The instance in the first row `where_clause` selects, with its usage.
fn one(db: &Db, where_clause: &str, param: &dyn rusqlite::ToSql) -> DbResult<Option<Instance>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM instances i JOIN virtual_accounts v ON v.id = i.va WHERE {where_clause}"
    );
    let Some(mut instance) = db.optional(&sql, [param], from_row)? else {
        return Ok(None);
    };
    instance.usage = usage_of(db, instance.order)?;
    Ok(Some(instance))
}

pub(crate) fn get(db: &Db, piid: &Uuid) -> DbResult<Option<Instance>> {
    one(db, "i.piid = ?1", &piid.0.as_slice())
}

pub(crate) fn by_udi(db: &Db, udi: &Udi) -> DbResult<Option<Instance>> {
    one(db, "i.udi = ?1", &udi.long_form())
}

/// The instance registered with device key `key`, if any.
pub(crate) fn by_key(db: &Db, key: &[u8; 32]) -> DbResult<Option<Instance>> {
    one(db, "i.public_key = ?1", &key.as_slice())
}

/// The device key of the instance `piid`, if it is registered.
pub(crate) fn key_of(db: &Db, piid: &Uuid) -> DbResult<Option<[u8; 32]>> {
    db.optional(
        "SELECT public_key FROM instances WHERE piid = ?1",
        [piid.0.as_slice()],
        |r| array_at(r, 0),
    )
}

/// Adds `usage` (or takes it away) from the account's demand totals.
fn adjust_demand(db: &Db, va: i64, usage: &Usage, add: bool) -> DbResult<()> {
    for (tag, n) in usage {
        let n = i64::from(*n);
        if add {
            db.run(
                "INSERT INTO demand (va, tag, total) VALUES (?1, ?2, ?3)
                 ON CONFLICT (va, tag) DO UPDATE SET total = total + excluded.total",
                rusqlite::params![va, tag, n],
            )?;
        } else {
            db.run(
                "UPDATE demand SET total = MAX(total - ?3, 0) WHERE va = ?1 AND tag = ?2",
                rusqlite::params![va, tag, n],
            )?;
            db.run(
                "DELETE FROM demand WHERE va = ?1 AND tag = ?2 AND total = 0",
                rusqlite::params![va, tag],
            )?;
        }
    }
    Ok(())
}

fn write_usage(db: &Db, order: u64, usage: &Usage) -> DbResult<()> {
    for (tag, n) in usage {
        db.run(
            "INSERT INTO usage (instance, tag, count) VALUES (?1, ?2, ?3)",
            rusqlite::params![u64_col(order), tag, n],
        )?;
    }
    Ok(())
}

/// Stores a new instance with the next registration order (or, for the version 1 importer,
/// the order it has: `keep_order`); returns the order.
pub(crate) fn insert(db: &Db, instance: &Instance, keep_order: bool) -> DbResult<u64> {
    let order = if keep_order {
        instance.order
    } else {
        let next: i64 = db
            .optional("SELECT next_order FROM meta", [], |r| r.get(0))?
            .unwrap_or(0);
        db.run("UPDATE meta SET next_order = ?1", [next.saturating_add(1)])?;
        u64_from(next)
    };
    let (rs, rns) = time_cols(instance.registered_at);
    let (ns, nns) = time_cols(instance.identity_not_after);
    let (cs, cns) = time_cols(instance.last_contact);
    db.run(
        "INSERT INTO instances (ord, piid, udi, public_key, va, export_controlled, hostname, ip,
             registered_s, registered_ns, identity, not_after_s, not_after_ns, contact_s,
             contact_ns, last_sequence, reports_counted)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
        rusqlite::params![
            u64_col(order),
            instance.piid.0.as_slice(),
            instance.udi.long_form(),
            instance.public_key.as_slice(),
            instance.va,
            instance.export_controlled,
            instance.hostname,
            instance.ip,
            rs,
            rns,
            instance.identity,
            ns,
            nns,
            cs,
            cns,
            instance.last_sequence.map(u64_col),
            u64_col(instance.reports_counted),
        ],
    )?;
    write_usage(db, order, &instance.usage)?;
    adjust_demand(db, instance.va, &instance.usage, true)?;
    Ok(order)
}

/// Removes `instance` (as loaded) and its usage from the account's totals.
pub(crate) fn remove(db: &Db, instance: &Instance) -> DbResult<()> {
    adjust_demand(db, instance.va, &instance.usage, false)?;
    db.run(
        "DELETE FROM usage WHERE instance = ?1",
        [u64_col(instance.order)],
    )?;
    db.run(
        "DELETE FROM instances WHERE ord = ?1",
        [u64_col(instance.order)],
    )?;
    Ok(())
}

/// Records a contact: the time, and the host name and address when the request had them.
pub(crate) fn touch(db: &Db, instance: &Instance, contact: &Contact) -> DbResult<()> {
    let (s, ns) = time_cols(contact.at);
    db.run(
        "UPDATE instances SET contact_s = ?2, contact_ns = ?3,
             hostname = COALESCE(?4, hostname), ip = COALESCE(?5, ip)
         WHERE ord = ?1",
        rusqlite::params![u64_col(instance.order), s, ns, contact.hostname, contact.ip],
    )?;
    Ok(())
}

/// A new identity certificate for `instance`.
pub(crate) fn renew(
    db: &Db,
    instance: &Instance,
    identity: &[u8],
    not_after: DateTime<Utc>,
) -> DbResult<()> {
    let (s, ns) = time_cols(not_after);
    db.run(
        "UPDATE instances SET identity = ?2, not_after_s = ?3, not_after_ns = ?4 WHERE ord = ?1",
        rusqlite::params![u64_col(instance.order), identity, s, ns],
    )?;
    Ok(())
}

/// A counted usage report: the instance's usage becomes `usage` (the account's totals
/// change by the difference only).
pub(crate) fn report(
    db: &Db,
    instance: &Instance,
    sequence: u64,
    usage: &Usage,
    contact: &Contact,
) -> DbResult<()> {
    let mut gone = Usage::new();
    let mut added = Usage::new();
    for (tag, old) in &instance.usage {
        match usage.get(tag) {
            Some(new) if new == old => {}
            _ => {
                gone.insert(tag.clone(), *old);
            }
        }
    }
    for (tag, new) in usage {
        if instance.usage.get(tag) != Some(new) {
            added.insert(tag.clone(), *new);
        }
    }
    adjust_demand(db, instance.va, &gone, false)?;
    adjust_demand(db, instance.va, &added, true)?;
    let order = u64_col(instance.order);
    for tag in gone.keys() {
        db.run(
            "DELETE FROM usage WHERE instance = ?1 AND tag = ?2",
            rusqlite::params![order, tag],
        )?;
    }
    write_usage(db, instance.order, &added)?;
    let (s, ns) = time_cols(contact.at);
    db.run(
        "UPDATE instances SET last_sequence = ?2, reports_counted = reports_counted + 1,
             contact_s = ?3, contact_ns = ?4,
             hostname = COALESCE(?5, hostname), ip = COALESCE(?6, ip)
         WHERE ord = ?1",
        rusqlite::params![
            order,
            u64_col(sequence),
            s,
            ns,
            contact.hostname,
            contact.ip
        ],
    )?;
    Ok(())
}

/// The account's demand totals for the tags it knows (its pools and the catalogue's), in
/// one query whatever else its instances report.
pub(crate) fn known_demand(db: &Db, va: i64) -> DbResult<BTreeMap<String, u64>> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let mut stmt = db
        .conn()
        .prepare_cached(SQL.get_or_init(known_demand_sql))?;
    let rows = stmt.query_map([va], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    let mut out = BTreeMap::new();
    for row in rows {
        let (tag, total) = row?;
        if total > 0 {
            out.insert(tag, u64_from(total));
        }
    }
    Ok(out)
}

/// The statement of [`known_demand`]: the catalogue's tags are constants of the crate.
fn known_demand_sql() -> String {
    let catalogue: Vec<String> = super::catalogue::tags()
        .map(|t| format!("'{}'", t.replace('\'', "''")))
        .collect();
    format!(
        "SELECT d.tag, d.total FROM demand d WHERE d.va = ?1
           AND (d.tag IN ({}) OR d.tag IN (SELECT p.tag FROM pools p WHERE p.va = ?1))",
        catalogue.join(", ")
    )
}

/// The `LIKE` pattern (escape `\\`) of `filter`'s UDI text: the text anywhere, taken literally.
fn udi_pattern(filter: &Filter) -> Option<String> {
    filter.udi_contains.as_ref().map(|t| {
        let escaped = t
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        format!("%{escaped}%")
    })
}

/// The instances `filter` selects, in registration order.
pub(crate) fn list(db: &Db, filter: &Filter) -> DbResult<Vec<Instance>> {
    let limit = filter
        .limit
        .map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
    let pattern = udi_pattern(filter);
    let sql = format!(
        "SELECT {COLUMNS} FROM instances i JOIN virtual_accounts v ON v.id = i.va
         WHERE (?1 IS NULL OR i.va = ?1) AND (?2 IS NULL OR i.udi LIKE ?2 ESCAPE '\\')
         ORDER BY i.ord LIMIT ?3"
    );
    let mut stmt = db.conn().prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params![filter.va, pattern, limit], from_row)?;
    let mut out: Vec<Instance> = rows.collect::<Result<_, _>>()?;
    for instance in &mut out {
        instance.usage = usage_of(db, instance.order)?;
    }
    Ok(out)
}

/// How many instances `filter` selects (its limit ignored).
pub(crate) fn count(db: &Db, filter: &Filter) -> DbResult<u64> {
    let pattern = udi_pattern(filter);
    let n: i64 = db
        .optional(
            "SELECT COUNT(*) FROM instances i
             WHERE (?1 IS NULL OR i.va = ?1) AND (?2 IS NULL OR i.udi LIKE ?2 ESCAPE '\\')",
            rusqlite::params![filter.va, pattern],
            |r| r.get(0),
        )?
        .unwrap_or(0);
    Ok(u64_from(n))
}

/// A random (version 4) piid not in use (nor retired).
pub(crate) fn fresh_piid(db: &Db, rng: &mut dyn Random) -> Result<Uuid, FreshError> {
    for _ in 0..4 {
        let bytes: [u8; 16] = random_array(rng).map_err(|_| FreshError::Random)?;
        let piid = Uuid::from_random(bytes);
        let taken = key_of(db, &piid)?.is_some() || super::retired::by_piid(db, &piid)?.is_some();
        if !taken {
            return Ok(piid);
        }
    }
    Err(FreshError::Random)
}

/// Why no fresh piid could be made.
#[derive(Debug)]
pub(crate) enum FreshError {
    Random,
    Db(DbError),
}

impl From<DbError> for FreshError {
    fn from(e: DbError) -> Self {
        FreshError::Db(e)
    }
}
