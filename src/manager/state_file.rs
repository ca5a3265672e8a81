//! The whole state of a [`Manager`] as bytes, for a manager that must survive a restart
//! (the HTTPS server keeps it in its state directory).
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

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use ring::digest;

use super::accounts::{Accounts, Pool, VirtualAccountId};
use super::instances::{Instance, Instances};
use super::tokens::{TokenRecord, Tokens};
use super::{Manager, State};
use crate::codec::{CodecError, Reader, Writer};
use crate::crypto::{Environment, ManagerSigningKey, Random};
use crate::entitlement::Tag;
use crate::token::Token;
use crate::udi::{Udi, Uuid};

/// The first bytes of every manager state file.
pub const STATE_MAGIC: &[u8; 8] = b"SMAGMGRS";
/// The state format version this crate writes; others are refused.
pub const STATE_VERSION: u16 = 1;

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
    /// The manager's whole state — accounts, pools, tokens, instances, signing keys (retired
    /// ones included), environment and protocol version — integrity-checked, for
    /// [`Manager::load_state`]. The bytes hold the private signing keys: keep them private.
    pub fn save_state(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(environment_code(self.environment));
        w.u32(self.max_protocol_version);
        w.bytes(self.key.pkcs8());
        w.u32(len_u32(self.retired_keys.len()));
        for key in &self.retired_keys {
            w.bytes(key.pkcs8());
        }
        write_va(&mut w, &self.default_va);
        write_accounts(&mut w, &self.state.accounts);
        write_tokens(&mut w, &self.state.tokens);
        write_instances(&mut w, &self.state.instances);
        let mut out = STATE_MAGIC.to_vec();
        out.extend_from_slice(&STATE_VERSION.to_be_bytes());
        out.extend_from_slice(&w.finish());
        let sum = digest::digest(&digest::SHA256, &out);
        out.extend_from_slice(sum.as_ref());
        out
    }

    /// A manager in the state [`Manager::save_state`] wrote; `random` makes its future
    /// product-instance ids and tokens. [`Manager::requests_received`] starts at 0.
    pub fn load_state(bytes: &[u8], random: Box<dyn Random>) -> Result<Manager, StateError> {
        if bytes.len() < STATE_MAGIC.len() || &bytes[..STATE_MAGIC.len()] != STATE_MAGIC {
            return Err(StateError::WrongMagic);
        }
        if bytes.len() < HEADER_LEN {
            return Err(corrupt("truncated header"));
        }
        let version = u16::from_be_bytes([bytes[8], bytes[9]]);
        if version != STATE_VERSION {
            return Err(StateError::UnsupportedVersion(version));
        }
        if bytes.len() < HEADER_LEN + DIGEST_LEN {
            return Err(corrupt("truncated"));
        }
        let (content, sum) = bytes.split_at(bytes.len() - DIGEST_LEN);
        if digest::digest(&digest::SHA256, content).as_ref() != sum {
            return Err(corrupt("integrity check failed"));
        }
        let mut r = Reader::new(&content[HEADER_LEN..]);
        let manager = read_manager(&mut r, random)?;
        r.end()?;
        Ok(manager)
    }
}

fn len_u32(n: usize) -> u32 {
    // Collections far below 4 billion entries; saturating keeps the writer total.
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

fn write_accounts(w: &mut Writer, accounts: &Accounts) {
    let tree = accounts.tree();
    w.u32(len_u32(tree.len()));
    for (smart, vas) in tree {
        w.str(smart);
        w.u32(len_u32(vas.len()));
        for (name, va) in vas {
            w.str(name);
            w.u32(len_u32(va.pools.len()));
            for pool in va.pools.values() {
                w.str(pool.tag.as_str());
                w.u32(pool.purchased);
                w.opt(pool.display_name.as_deref(), |w, s| w.str(s));
                w.opt(pool.description.as_deref(), |w, s| w.str(s));
            }
        }
    }
}

fn write_tokens(w: &mut Writer, tokens: &Tokens) {
    let records = tokens.records();
    w.u32(len_u32(records.len()));
    for (text, t) in records {
        w.str(text);
        write_va(w, &t.virtual_account);
        w.time(t.expires_at);
        w.opt(t.max_uses, |w, n| w.u32(n));
        w.u32(t.uses);
        w.bool(t.export_controlled);
        w.bool(t.revoked);
    }
}

fn write_instances(w: &mut Writer, instances: &Instances) {
    w.u64(instances.next_order());
    let all = instances.all();
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

fn read_manager(r: &mut Reader<'_>, random: Box<dyn Random>) -> Result<Manager, StateError> {
    let environment = match r.u8()? {
        0 => Environment::Production,
        1 => Environment::Development,
        _ => return Err(corrupt("unknown environment")),
    };
    let max_protocol_version = r.u32()?;
    let key = read_key(r)?;
    let retired_count = r.count()?;
    let mut retired_keys = Vec::with_capacity(retired_count);
    for _ in 0..retired_count {
        retired_keys.push(read_key(r)?);
    }
    let default_va = read_va(r)?;
    let accounts = read_accounts(r)?;
    if accounts.get(&default_va).is_none() {
        return Err(corrupt("the default Virtual Account does not exist"));
    }
    let tokens = read_tokens(r, &accounts)?;
    let instances = read_instances(r, &accounts)?;
    Ok(Manager {
        environment,
        random,
        key,
        retired_keys,
        max_protocol_version,
        requests_received: 0,
        default_va,
        state: State {
            accounts,
            tokens,
            instances,
            // Version 1 kept no retired keys.
            retired: Default::default(),
        },
    })
}

fn read_accounts(r: &mut Reader<'_>) -> Result<Accounts, StateError> {
    let mut accounts = Accounts::default();
    let bad = |e: super::ManagerError| corrupt(e.to_string());
    for _ in 0..r.count()? {
        let smart = r.string()?;
        accounts.add_smart_account(&smart).map_err(bad)?;
        for _ in 0..r.count()? {
            let name = r.string()?;
            let id = accounts.add_virtual_account(&smart, &name).map_err(bad)?;
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
                accounts.insert_pool(&id, pool).map_err(bad)?;
                previous = Some(text);
            }
        }
    }
    Ok(accounts)
}

fn read_tokens(r: &mut Reader<'_>, accounts: &Accounts) -> Result<Tokens, StateError> {
    let mut tokens = Tokens::default();
    for _ in 0..r.count()? {
        let text = r.string()?;
        Token::parse(&text).map_err(|_| corrupt("bad token text"))?;
        let virtual_account = read_va(r)?;
        if accounts.get(&virtual_account).is_none() {
            return Err(corrupt("a token of an unknown Virtual Account"));
        }
        let record = TokenRecord {
            virtual_account,
            expires_at: read_time(r)?,
            max_uses: r.opt(|r| r.u32())?,
            uses: r.u32()?,
            export_controlled: r.bool()?,
            revoked: r.bool()?,
        };
        if tokens.records().contains_key(&text) {
            return Err(corrupt("a token stored twice"));
        }
        tokens.insert_record(text, record);
    }
    Ok(tokens)
}

fn read_instances(r: &mut Reader<'_>, accounts: &Accounts) -> Result<Instances, StateError> {
    let next_order = r.u64()?;
    let count = r.count()?;
    let mut all = Vec::with_capacity(count);
    for _ in 0..count {
        let piid = Uuid(read_array(r, "piid")?);
        let udi = Udi::parse_long_form(&r.string()?).map_err(|_| corrupt("bad UDI"))?;
        let public_key = read_array(r, "device key")?;
        let virtual_account = read_va(r)?;
        if accounts.get(&virtual_account).is_none() {
            return Err(corrupt("an instance of an unknown Virtual Account"));
        }
        let export_controlled = r.bool()?;
        let hostname = r.opt(|r| r.string())?;
        let ip = r.opt(|r| r.string())?;
        let registered_at = read_time(r)?;
        let identity = r.bytes()?.to_vec();
        let identity_not_after = read_time(r)?;
        let last_contact = read_time(r)?;
        let mut usage = BTreeMap::new();
        for _ in 0..r.count()? {
            let tag = r.string()?;
            let n = r.u32()?;
            if usage.insert(tag, n).is_some() {
                return Err(corrupt("a tag twice in an instance's usage"));
            }
        }
        all.push(Instance {
            piid,
            udi,
            public_key,
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
        });
    }
    Instances::restored(all, next_order).map_err(corrupt)
}
