//! The manager's persisted formats: reading every version ever released (SPEC §12).
//!
//! - Version 2 (current) is a SQLite database (`db.rs`): [`Manager::save_state`] writes its
//!   bytes, and a state directory keeps it as its `state` file.
//! - Version 1, the first release's whole-file format below, is still read: [`Manager::load_state`]
//!   and a state directory's first open import it into a version 2 database. Retired device
//!   keys did not exist in version 1 (none are imported); every other field maps one to one.
//!
//! ```text
//! magic "SMAGMGRS" | version u16 | payload | SHA-256 of everything before
//! payload: environment u8 | max protocol version u32
//!          | current signing key (PKCS#8) | retired keys, oldest first
//!          | default Virtual Account
//!          | Smart Accounts → Virtual Accounts → pools (tag, purchased, names)
//!          | tokens (text, account, expiry, use limit, uses, export flag, revoked)
//!          | next registration order | instances (piid, UDI, device key, account, export flag,
//!            host name, IP, registered, identity verbatim, its expiry, last contact, usage,
//!            last sequence number, reports counted, registration order)
//! ```
//! Integers are big-endian, strings and byte strings length-prefixed (the snapshot codec).
//! [`Manager::requests_received`] is a statistic of one process and is not stored: a request
//! that changes nothing writes nothing.
//!
//! Decoding never panics: anything but a well-formed, consistent state of a known version is a
//! [`StateError`].

use chrono::{DateTime, Utc};
use ring::digest;

use super::accounts::{self, va_id, Pool, VirtualAccountId};
use super::db::{state_error, u64_col, Db, SQLITE_MAGIC};
use super::instances::{self, Instance};
use super::tokens::{self, TokenRecord};
use super::{Manager, Usage};
use crate::codec::{CodecError, Reader};
use crate::crypto::{ManagerSigningKey, Random};
use crate::entitlement::Tag;
use crate::token::Token;
use crate::udi::{Udi, Uuid};

/// The first bytes of every version 1 manager state file.
pub const STATE_MAGIC: &[u8; 8] = b"SMAGMGRS";
/// The state format version this crate writes (a SQLite database with this `user_version`);
/// every earlier one is read.
pub const STATE_VERSION: u16 = super::db::SCHEMA_VERSION;
/// The only version of the `SMAGMGRS` container.
const V1: u16 = 1;

const HEADER_LEN: usize = 8 + 2;
const DIGEST_LEN: usize = 32;

/// Why saved manager state could not be loaded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// Not a manager state at all.
    #[error("not a reference manager state (wrong magic)")]
    WrongMagic,
    /// Written in a format version this crate does not read.
    #[error("unsupported manager state version {0}")]
    UnsupportedVersion(u16),
    /// Damaged (integrity check) or inconsistent.
    #[error("corrupt manager state: {0}")]
    Corrupt(String),
}

fn corrupt(what: impl Into<String>) -> StateError {
    StateError::Corrupt(what.into())
}

impl From<CodecError> for StateError {
    fn from(e: CodecError) -> Self {
        StateError::Corrupt(e.to_string())
    }
}

impl Manager {
    /// A manager in the state [`Manager::save_state`] wrote (a SQLite database, format
    /// version 2, migrated if older), or in a version 1 state file (imported); `random` makes
    /// its future product-instance ids and tokens. Its state is an in-memory database.
    /// [`Manager::requests_received`] starts at 0.
    pub fn load_state(bytes: &[u8], random: Box<dyn Random>) -> Result<Manager, StateError> {
        if bytes.starts_with(SQLITE_MAGIC) {
            return Manager::from_db(Db::from_image(bytes)?, random);
        }
        let db = Db::memory().map_err(state_error)?;
        import_v1(bytes, &db)?;
        Manager::from_db(db, random)
    }
}

/// Decodes the version 1 state file `bytes` into the empty database `db`, in one
/// transaction: all of it or nothing.
pub(crate) fn import_v1(bytes: &[u8], db: &Db) -> Result<(), StateError> {
    if bytes.len() < STATE_MAGIC.len() || &bytes[..STATE_MAGIC.len()] != STATE_MAGIC {
        return Err(StateError::WrongMagic);
    }
    if bytes.len() < HEADER_LEN {
        return Err(corrupt("truncated header"));
    }
    let version = u16::from_be_bytes([bytes[8], bytes[9]]);
    if version != V1 {
        return Err(StateError::UnsupportedVersion(version));
    }
    if bytes.len() < HEADER_LEN + DIGEST_LEN {
        return Err(corrupt("truncated"));
    }
    let (content, sum) = bytes.split_at(bytes.len() - DIGEST_LEN);
    if digest::digest(&digest::SHA256, content).as_ref() != sum {
        return Err(corrupt("integrity check failed"));
    }
    let txn = db.begin(None).map_err(state_error)?;
    let mut r = Reader::new(&content[HEADER_LEN..]);
    read_manager(&mut r, db)?;
    r.end()?;
    txn.commit().map_err(state_error)
}

/// Any time chrono represents: the manager's clock may be virtual and far away, and what it
/// wrote must read back (the snapshot's reader accepts only years 1 to 9999).
fn read_time(r: &mut Reader<'_>) -> Result<DateTime<Utc>, StateError> {
    let secs = r.i64()?;
    let nanos = r.u32()?;
    DateTime::from_timestamp(secs, nanos).ok_or_else(|| corrupt("bad time"))
}

fn read_array<const N: usize>(r: &mut Reader<'_>, what: &str) -> Result<[u8; N], StateError> {
    r.bytes()?
        .try_into()
        .map_err(|_| corrupt(format!("{what} of the wrong length")))
}

fn read_key(r: &mut Reader<'_>) -> Result<ManagerSigningKey, StateError> {
    ManagerSigningKey::from_pkcs8(r.bytes()?).map_err(|_| corrupt("bad signing key"))
}

fn read_va(r: &mut Reader<'_>) -> Result<VirtualAccountId, StateError> {
    Ok(VirtualAccountId::new(r.string()?, r.string()?))
}

fn read_manager(r: &mut Reader<'_>, db: &Db) -> Result<(), StateError> {
    let environment = match r.u8()? {
        0 => 0i64,
        1 => 1,
        _ => return Err(corrupt("unknown environment")),
    };
    let max_protocol_version = r.u32()?;
    let key = read_key(r)?;
    let retired_count = r.count()?;
    let mut keys = Vec::with_capacity(retired_count.min(1024) + 1);
    for _ in 0..retired_count {
        keys.push(read_key(r)?);
    }
    keys.push(key);
    let default_va = read_va(r)?;
    read_accounts(r, db)?;
    let default_row = va_id(db, &default_va)
        .map_err(state_error)?
        .ok_or_else(|| corrupt("the default Virtual Account does not exist"))?;
    read_tokens(r, db)?;
    let next_order = read_instances(r, db)?;
    db.run(
        "INSERT INTO meta (id, environment, max_protocol_version, default_va, next_order)
         VALUES (1, ?1, ?2, ?3, ?4)",
        rusqlite::params![
            environment,
            max_protocol_version,
            default_row,
            u64_col(next_order)
        ],
    )
    .map_err(state_error)?;
    for (seq, key) in keys.iter().enumerate() {
        db.run(
            "INSERT INTO signing_keys (seq, pkcs8) VALUES (?1, ?2)",
            rusqlite::params![seq as i64 + 1, key.pkcs8()],
        )
        .map_err(state_error)?;
    }
    Ok(())
}

fn read_accounts(r: &mut Reader<'_>, db: &Db) -> Result<(), StateError> {
    let bad = |e: super::ManagerError| corrupt(e.to_string());
    for _ in 0..r.count()? {
        let smart = r.string()?;
        accounts::add_smart_account(db, &smart).map_err(bad)?;
        for _ in 0..r.count()? {
            let name = r.string()?;
            let id = accounts::add_virtual_account(db, &smart, &name).map_err(bad)?;
            let row = va_id(db, &id)
                .map_err(state_error)?
                .ok_or_else(|| corrupt("a Virtual Account vanished"))?;
            let mut previous: Option<String> = None;
            for _ in 0..r.count()? {
                let text = r.string()?;
                let tag = Tag::parse(&text).map_err(|_| corrupt("bad pool tag"))?;
                // Written in key order: a repeated or unordered tag is damage.
                if previous.as_ref().is_some_and(|p| *p >= text) {
                    return Err(corrupt("pools out of order"));
                }
                let pool = Pool {
                    tag,
                    purchased: r.u32()?,
                    display_name: r.opt(|r| r.string())?,
                    description: r.opt(|r| r.string())?,
                };
                accounts::insert_pool(db, row, &pool).map_err(state_error)?;
                previous = Some(text);
            }
        }
    }
    Ok(())
}

fn read_tokens(r: &mut Reader<'_>, db: &Db) -> Result<(), StateError> {
    for _ in 0..r.count()? {
        let text = r.string()?;
        Token::parse(&text).map_err(|_| corrupt("bad token text"))?;
        let virtual_account = read_va(r)?;
        let va = va_id(db, &virtual_account)
            .map_err(state_error)?
            .ok_or_else(|| corrupt("a token of an unknown Virtual Account"))?;
        let record = TokenRecord {
            va,
            expires_at: read_time(r)?,
            max_uses: r.opt(|r| r.u32())?,
            uses: r.u32()?,
            export_controlled: r.bool()?,
            revoked: r.bool()?,
        };
        if tokens::get(db, &text).map_err(state_error)?.is_some() {
            return Err(corrupt("a token stored twice"));
        }
        tokens::insert(db, &text, &record).map_err(state_error)?;
    }
    Ok(())
}

/// Reads the instances into `db`; returns the next registration order.
fn read_instances(r: &mut Reader<'_>, db: &Db) -> Result<u64, StateError> {
    let next_order = r.u64()?;
    // Far beyond any number of registrations.
    if next_order > 1 << 62 {
        return Err(corrupt("implausible registration count"));
    }
    for _ in 0..r.count()? {
        let piid = Uuid(read_array(r, "piid")?);
        let udi = Udi::parse_long_form(&r.string()?).map_err(|_| corrupt("bad UDI"))?;
        let public_key = read_array(r, "device key")?;
        let virtual_account = read_va(r)?;
        let va = va_id(db, &virtual_account)
            .map_err(state_error)?
            .ok_or_else(|| corrupt("an instance of an unknown Virtual Account"))?;
        let export_controlled = r.bool()?;
        let hostname = r.opt(|r| r.string())?;
        let ip = r.opt(|r| r.string())?;
        let registered_at = read_time(r)?;
        let identity = r.bytes()?.to_vec();
        let identity_not_after = read_time(r)?;
        let last_contact = read_time(r)?;
        let mut usage = Usage::new();
        for _ in 0..r.count()? {
            let tag = r.string()?;
            let n = r.u32()?;
            if usage.insert(tag, n).is_some() {
                return Err(corrupt("a tag twice in an instance's usage"));
            }
        }
        let instance = Instance {
            piid,
            udi,
            public_key,
            va,
            virtual_account,
            export_controlled,
            hostname,
            ip,
            registered_at,
            identity,
            identity_not_after,
            last_contact,
            usage,
            last_sequence: r.opt(|r| r.u64())?,
            reports_counted: r.u64()?,
            order: r.u64()?,
        };
        if instance.order >= next_order {
            return Err(corrupt(
                "an instance's registration order is not below the next one",
            ));
        }
        let duplicate = instances::get(db, &piid).map_err(state_error)?.is_some()
            || instances::by_udi(db, &instance.udi)
                .map_err(state_error)?
                .is_some()
            || instances::by_key(db, &public_key)
                .map_err(state_error)?
                .is_some();
        if duplicate {
            return Err(corrupt(
                "two instances with the same piid, UDI or device key",
            ));
        }
        instances::insert(db, &instance, true)
            .map_err(|_| corrupt("two instances with the same registration order"))?;
    }
    Ok(next_order)
}

/// The version 1 encoder, for tests only: the crate writes only the current version.
#[cfg(test)]
pub(crate) mod v1_writer {
    use super::*;
    use crate::codec::Writer;
    use crate::crypto::Environment;
    use crate::manager::db::u64_from;

    /// `m` in the version 1 format (retired keys, which it cannot hold, are left out).
    pub fn encode(m: &Manager) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(environment_code(m.environment));
        w.u32(m.max_protocol_version);
        let keys = &m.keys;
        w.bytes(keys[keys.len() - 1].pkcs8());
        w.u32(len_u32(keys.len() - 1));
        for key in &keys[..keys.len() - 1] {
            w.bytes(key.pkcs8());
        }
        write_va(&mut w, &m.default_va);
        write_accounts(&mut w, m);
        write_tokens(&mut w, m);
        write_instances(&mut w, m);
        let mut out = STATE_MAGIC.to_vec();
        out.extend_from_slice(&V1.to_be_bytes());
        out.extend_from_slice(&w.finish());
        let sum = digest::digest(&digest::SHA256, &out);
        out.extend_from_slice(sum.as_ref());
        out
    }

    fn len_u32(n: usize) -> u32 {
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    fn environment_code(e: Environment) -> u8 {
        match e {
            Environment::Production => 0,
            Environment::Development => 1,
        }
    }

    fn write_va(w: &mut Writer, va: &VirtualAccountId) {
        w.str(va.smart_account());
        w.str(va.virtual_account());
    }

    fn write_accounts(w: &mut Writer, m: &Manager) {
        let conn = m.db.conn();
        let smart: Vec<String> = conn
            .prepare("SELECT name FROM smart_accounts ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        w.u32(len_u32(smart.len()));
        for sa in smart {
            w.str(&sa);
            let vas: Vec<(i64, String)> = conn
                .prepare("SELECT id, name FROM virtual_accounts WHERE smart = ?1 ORDER BY name")
                .unwrap()
                .query_map([&sa], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            w.u32(len_u32(vas.len()));
            for (row, name) in vas {
                w.str(&name);
                let account = accounts::by_row(&m.db, row).unwrap();
                w.u32(len_u32(account.pools.len()));
                for pool in account.pools.values() {
                    w.str(pool.tag.as_str());
                    w.u32(pool.purchased);
                    w.opt(pool.display_name.as_deref(), |w, s| w.str(s));
                    w.opt(pool.description.as_deref(), |w, s| w.str(s));
                }
            }
        }
    }

    fn write_tokens(w: &mut Writer, m: &Manager) {
        let texts: Vec<String> =
            m.db.conn()
                .prepare("SELECT text FROM tokens ORDER BY text")
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect();
        w.u32(len_u32(texts.len()));
        for text in texts {
            let t = tokens::get(&m.db, &text).unwrap().unwrap();
            w.str(&text);
            write_va(w, &accounts::va_name(&m.db, t.va).unwrap().unwrap());
            w.time(t.expires_at);
            w.opt(t.max_uses, |w, n| w.u32(n));
            w.u32(t.uses);
            w.bool(t.export_controlled);
            w.bool(t.revoked);
        }
    }

    fn write_instances(w: &mut Writer, m: &Manager) {
        let next: i64 =
            m.db.conn()
                .query_row("SELECT next_order FROM meta", [], |r| r.get(0))
                .unwrap();
        w.u64(u64_from(next));
        let all = instances::list(&m.db, &instances::Filter::default()).unwrap();
        w.u32(len_u32(all.len()));
        for i in all {
            w.bytes(&i.piid.0);
            w.str(&i.udi.long_form());
            w.bytes(&i.public_key);
            write_va(w, &i.virtual_account);
            w.bool(i.export_controlled);
            w.opt(i.hostname.as_deref(), |w, s| w.str(s));
            w.opt(i.ip.as_deref(), |w, s| w.str(s));
            w.time(i.registered_at);
            w.bytes(&i.identity);
            w.time(i.identity_not_after);
            w.time(i.last_contact);
            w.u32(len_u32(i.usage.len()));
            for (tag, count) in &i.usage {
                w.str(tag);
                w.u32(*count);
            }
            w.opt(i.last_sequence, |w, n| w.u64(n));
            w.u64(i.reports_counted);
            w.u64(i.order);
        }
    }
}
