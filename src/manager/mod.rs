//! The reference Smart Software Manager (DESIGN "Reference manager"; feature `manager`).
//!
//! Real enough to test the agent against: Smart Accounts → Virtual Accounts → license pools
//! per tag; registration tokens with expiry, use limit, export flag and revocation; product
//! instances with their identity, last contact and consumption; allocation with "To Lower"
//! substitution and HCS dual parenting ([`catalogue`](mod@catalogue)).
//!
//! It is sans-IO like the agent: [`Manager::handle`] takes the bytes of one request and the
//! time, and returns the bytes of one signed answer. Nothing reads a clock, a socket or a
//! file. Every answer is a [`wire::Response`] signed with the current
//! key; a refused request is answered `FAILED` with one of the [`codes`].
//!
//! The state lives in SQLite (`db.rs`): in memory for [`Manager::new`], in a file for a
//! served manager ([`StateDir`]). Each request is one transaction that writes only the rows
//! it changes: it is validated completely and its answer signed before anything is written,
//! so a refused or failed request leaves the manager exactly as it was (only
//! [`Manager::requests_received`] counts it). The cost of an answer does not depend on the
//! number of instances: every lookup is by an index, and compliance is decided on each
//! Virtual Account's maintained demand totals (SPEC §4, `allocation.rs`).
//!
//! ```
//! use chrono::{DateTime, Utc};
//! use smart_agent::manager::{catalogue, Manager, TokenOptions};
//! use smart_agent::{DeterministicRandom, Environment, Tag};
//!
//! let now: DateTime<Utc> = "2026-01-26T09:41:23Z".parse().unwrap();
//! let mut manager = Manager::new(Environment::Development, Box::new(DeterministicRandom::new(1)))?;
//! let va = manager.default_virtual_account();
//! let enhanced = Tag::parse(catalogue::UCM_ENHANCED).unwrap();
//! manager.add_licenses(&va, &enhanced, 100, None, None)?;
//! let token = manager.create_token(&va, TokenOptions::default(), now)?;
//! let anchor = manager.trust_anchor(); // what the agent is configured to trust
//! # let _ = (token, anchor);
//! assert_eq!(manager.licenses(&va)[0].balance, 100);
//! # Ok::<(), smart_agent::manager::ManagerError>(())
//! ```

mod accounts;
mod allocation;
pub mod catalogue;
pub use crate::wire::codes;
mod db;
mod error;
mod export_keys;
mod handle;
mod instances;
mod reservation;
mod retired;
pub mod server;
pub mod state_dir;
mod state_file;
mod tls;
mod tokens;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Instant;

use chrono::{DateTime, Utc};

pub use accounts::{LicenseLine, VirtualAccountId, MAX_POOL_TEXT};
pub use catalogue::{catalogue, CatalogueEntry};
pub use db::SCHEMA_VERSION;
pub use error::ManagerError;
pub use export_keys::ExportKeyPool;
pub use instances::InstanceInfo;
pub use reservation::{
    IssuedReservation, ReservationInfo, ReservedLicense, ReturnedReservation, NO_SURPLUS_MESSAGE,
};
pub use server::{Server, ServerError, ServerOptions};
pub use state_dir::{DirError, DirLock, StateDir};
pub use state_file::{StateError, STATE_MAGIC, STATE_VERSION};
pub use tokens::TokenOptions;

use db::{Db, DbError};

use crate::crypto::{Environment, ManagerSigningKey, Random, TrustAnchor};
use crate::entitlement::Tag;
use crate::token::Token;
use crate::udi::Uuid;
use crate::wire::{self, RequestKind, Response, ResponseStatus};

/// Requests larger than this are answered `MALFORMED` without being parsed (1 MiB).
pub const MAX_REQUEST_LEN: usize = 1 << 20;
/// The longest host name a request may carry (bytes; a DNS name has at most 253).
pub const MAX_HOSTNAME_LEN: usize = 255;
/// The longest IP address text a request may carry (bytes; IPv6 text has at most 45).
pub const MAX_IP_LEN: usize = 64;
/// The most entitlement tags one usage report may name; a larger report is refused (its
/// grant could exceed what agents accept).
pub const MAX_TAGS_PER_REPORT: usize = 256;
/// The Smart Account every manager starts with.
pub const DEFAULT_SMART_ACCOUNT: &str = "Reference Smart Account";
/// The Virtual Account every manager starts with, in [`DEFAULT_SMART_ACCOUNT`] (CSSM names
/// each Smart Account's first Virtual Account `DEFAULT`).
pub const DEFAULT_VIRTUAL_ACCOUNT: &str = "DEFAULT";

/// One instance's usage: tag text → count.
pub(crate) type Usage = BTreeMap<String, u32>;

/// Which product instances [`Manager::find_instances`] lists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct InstanceQuery {
    /// Only this Virtual Account's.
    pub virtual_account: Option<VirtualAccountId>,
    /// Only those whose UDI (long form) contains this text (ASCII case ignored).
    pub udi_contains: Option<String>,
    /// At most this many, in registration order.
    pub limit: Option<usize>,
}

/// A reference Smart Software Manager, in process (its state in an in-memory database) or on
/// a state directory's database file.
pub struct Manager {
    db: Db,
    environment: Environment,
    random: Box<dyn Random>,
    /// Every signing key, oldest first; the last one signs.
    keys: Vec<ManagerSigningKey>,
    /// The highest `signing_keys.seq` loaded.
    key_seq: i64,
    max_protocol_version: u32,
    requests_received: u64,
    default_va: VirtualAccountId,
}

impl fmt::Debug for Manager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manager")
            .field("environment", &self.environment)
            .field("key", &self.key())
            .field("requests_received", &self.requests_received)
            .finish_non_exhaustive()
    }
}

fn environment_code(e: Environment) -> i64 {
    match e {
        Environment::Production => 0,
        Environment::Development => 1,
    }
}

/// Writes what every new manager starts with into the empty database `db`: the meta row,
/// `key`, and the default Smart and Virtual Accounts.
fn initialize(db: &Db, environment: Environment, key: &ManagerSigningKey) -> Result<(), DbError> {
    let txn = db.begin(None)?;
    db.run(
        "INSERT INTO smart_accounts (name) VALUES (?1)",
        [DEFAULT_SMART_ACCOUNT],
    )?;
    db.run(
        "INSERT INTO virtual_accounts (id, smart, name) VALUES (1, ?1, ?2)",
        [DEFAULT_SMART_ACCOUNT, DEFAULT_VIRTUAL_ACCOUNT],
    )?;
    db.run(
        "INSERT INTO meta (id, environment, max_protocol_version, default_va, next_order)
         VALUES (1, ?1, ?2, 1, 0)",
        rusqlite::params![environment_code(environment), wire::PROTOCOL_VERSION],
    )?;
    db.run(
        "INSERT INTO signing_keys (seq, pkcs8) VALUES (1, ?1)",
        [key.pkcs8()],
    )?;
    txn.commit()
}

impl Manager {
    /// A manager signing for `environment` with a fresh key, with one Smart Account
    /// ([`DEFAULT_SMART_ACCOUNT`]) holding one Virtual Account ([`DEFAULT_VIRTUAL_ACCOUNT`]).
    /// `random` makes product-instance ids and tokens; the signing keys and signatures use
    /// the system source (ring). Its state is an in-memory database.
    pub fn new(environment: Environment, random: Box<dyn Random>) -> Result<Manager, ManagerError> {
        Manager::with_signing_key(environment, random, ManagerSigningKey::generate()?)
    }

    /// Like [`Manager::new`], but signing with `key` (e.g. loaded with
    /// [`ManagerSigningKey::from_pkcs8`]), so that a manager started again keeps the trust
    /// anchor its agents are configured with.
    pub fn with_signing_key(
        environment: Environment,
        random: Box<dyn Random>,
        key: ManagerSigningKey,
    ) -> Result<Manager, ManagerError> {
        let db = Db::memory()?;
        initialize(&db, environment, &key)?;
        Manager::from_db(db, random).map_err(|e| ManagerError::Storage(e.to_string()))
    }

    /// A new database file at `path` holding a new manager (what [`Manager::with_signing_key`]
    /// makes), closed again.
    pub(crate) fn create_file(
        path: &std::path::Path,
        environment: Environment,
        key: &ManagerSigningKey,
    ) -> Result<(), DbError> {
        let db = Db::create_file(path)?;
        initialize(&db, environment, key)
    }

    /// The manager whose state is the database `db`.
    pub(crate) fn from_db(db: Db, random: Box<dyn Random>) -> Result<Manager, StateError> {
        let mut manager = Manager {
            db,
            environment: Environment::Development,
            random,
            keys: Vec::new(),
            key_seq: 0,
            max_protocol_version: wire::PROTOCOL_VERSION,
            requests_received: 0,
            default_va: VirtualAccountId::new(DEFAULT_SMART_ACCOUNT, DEFAULT_VIRTUAL_ACCOUNT),
        };
        let meta = manager
            .db
            .optional(
                "SELECT environment, default_va FROM meta WHERE id = 1",
                [],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
            )
            .map_err(db::state_error)?
            .ok_or_else(|| StateError::Corrupt("no manager in the database".into()))?;
        manager.environment = match meta.0 {
            0 => Environment::Production,
            1 => Environment::Development,
            _ => return Err(StateError::Corrupt("unknown environment".into())),
        };
        manager.default_va = accounts::va_name(&manager.db, meta.1)
            .map_err(db::state_error)?
            .ok_or_else(|| {
                StateError::Corrupt("the default Virtual Account does not exist".into())
            })?;
        manager.refresh().map_err(db::state_error)?;
        if manager.keys.is_empty() {
            return Err(StateError::Corrupt("no signing key".into()));
        }
        Ok(manager)
    }

    /// The manager on the database file at `path` (migrated if older).
    pub(crate) fn open_file(
        path: &std::path::Path,
        durability: db::Durability,
        random: Box<dyn Random>,
    ) -> Result<Manager, StateError> {
        Manager::from_db(Db::open(path, durability)?, random)
    }

    /// Reads what another connection may have changed: the protocol version and the
    /// signing keys (loaded again if one was added).
    fn refresh(&mut self) -> Result<(), DbError> {
        let (max, seq) = self
            .db
            .optional(
                "SELECT max_protocol_version, (SELECT MAX(seq) FROM signing_keys) FROM meta",
                [],
                |r| {
                    Ok((
                        r.get::<_, u32>(0)?,
                        r.get::<_, Option<i64>>(1)?.unwrap_or(0),
                    ))
                },
            )?
            .unwrap_or((wire::PROTOCOL_VERSION, 0));
        self.max_protocol_version = max;
        if seq != self.key_seq {
            let mut stmt = self
                .db
                .conn()
                .prepare_cached("SELECT pkcs8 FROM signing_keys ORDER BY seq")?;
            let rows = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
            let mut keys = Vec::new();
            for pkcs8 in rows {
                let key = ManagerSigningKey::from_pkcs8(&pkcs8?)
                    .map_err(|_| DbError::Failed("a bad signing key".into()))?;
                keys.push(key);
            }
            self.keys = keys;
            self.key_seq = seq;
        }
        Ok(())
    }

    /// The database.
    pub(crate) fn db(&self) -> &Db {
        &self.db
    }

    /// The key that signs.
    fn key(&self) -> &ManagerSigningKey {
        // `from_db` refuses a database without keys, and keys are never removed.
        &self.keys[self.keys.len() - 1]
    }

    /// The environment this manager signs for.
    pub fn environment(&self) -> Environment {
        self.environment
    }

    /// The current signing key as a trust anchor of this manager's environment.
    pub fn trust_anchor(&self) -> TrustAnchor {
        TrustAnchor::new(self.key().public_key().clone(), self.environment)
    }

    /// Every key this manager has signed with, oldest first, the current one last: identities
    /// and grants issued before a rotation stay verifiable with these.
    pub fn trust_anchors(&self) -> Vec<TrustAnchor> {
        self.keys
            .iter()
            .map(|k| TrustAnchor::new(k.public_key().clone(), self.environment))
            .collect()
    }

    /// The current signing key (PKCS#8 DER): what a state directory publishes.
    pub(crate) fn signing_key(&self) -> &ManagerSigningKey {
        self.key()
    }

    /// Replaces the signing key with a fresh one; later answers, identities and grants are
    /// signed with it. Returns its anchor.
    pub fn rotate_signing_key(&mut self) -> Result<TrustAnchor, ManagerError> {
        let fresh = ManagerSigningKey::generate()?;
        let txn = self.db.begin(None)?;
        self.db.run(
            "INSERT INTO signing_keys (seq, pkcs8) VALUES ((SELECT MAX(seq) + 1 FROM signing_keys), ?1)",
            [fresh.pkcs8()],
        )?;
        txn.commit()?;
        self.refresh()?;
        Ok(self.trust_anchor())
    }

    /// Requests with a protocol version above `version` are answered `VERSION_TOO_HIGH`
    /// (default [`wire::PROTOCOL_VERSION`]). Answers carry this version.
    pub fn set_max_protocol_version(&mut self, version: u32) {
        let stored = self
            .db
            .run("UPDATE meta SET max_protocol_version = ?1", [version]);
        if stored.is_ok() {
            self.max_protocol_version = version;
        }
    }

    /// How many requests [`Manager::handle`] was given, refused ones included.
    pub fn requests_received(&self) -> u64 {
        self.requests_received
    }

    /// Answers one request at `now`: always one signed answer (type, nonce and piid echoed;
    /// for a successful `register`, the new piid), never a panic. A request that does not even
    /// parse is answered `FAILED` / `MALFORMED` with whatever type, nonce and piid could be
    /// read from it (type `register` and an empty nonce otherwise). If the database fails,
    /// the answer is `FAILED` / `INTERNAL` and nothing changed. The answer is empty only if
    /// the manager cannot sign at all (random source failure).
    pub fn handle(&mut self, request: &[u8], now: DateTime<Utc>) -> Vec<u8> {
        match self.answer(request, now, None) {
            Ok(answer) => answer,
            Err(e) => {
                let (kind, nonce, piid) = handle::recover_envelope(request);
                let status = ResponseStatus::Failed {
                    code: codes::INTERNAL.to_string(),
                    message: e.to_string(),
                };
                self.sign((kind, &nonce, piid, status), now)
            }
        }
    }

    /// [`Manager::handle`] for the server: the change, if any, is committed before this
    /// returns; waiting for the database ends at `deadline` ([`DbError::Busy`]), and a
    /// database failure is an error, not an answer. Either way nothing changed.
    pub(crate) fn answer(
        &mut self,
        request: &[u8],
        now: DateTime<Utc>,
        deadline: Option<Instant>,
    ) -> Result<Vec<u8>, DbError> {
        self.requests_received = self.requests_received.saturating_add(1);
        let parsed = match wire::decode_request(request, MAX_REQUEST_LEN) {
            Ok(parsed) if handle::echoable(&parsed.request.nonce) => parsed,
            Ok(_) => return Ok(self.malformed(request, "the nonce cannot be echoed".into(), now)),
            Err(e) => return Ok(self.malformed(request, request_error(&e), now)),
        };
        self.refresh()?;
        let request = &parsed.request;
        let answer = |status| (request.kind, request.nonce.as_str(), request.piid, status);
        if request.version > self.max_protocol_version {
            return Ok(self.sign(answer(ResponseStatus::VersionTooHigh), now));
        }
        let key = &self.keys[self.keys.len() - 1];
        let prepared = handle::prepare(
            &self.db,
            key,
            self.environment,
            &mut *self.random,
            &parsed,
            now,
        )?;
        let txn = self.db.begin(deadline)?;
        let mut context = handle::Context {
            key,
            environment: self.environment,
            rng: &mut *self.random,
            now,
            prepared,
        };
        let plan = match handle::plan(&self.db, &mut context, &parsed) {
            Ok(plan) => plan,
            Err(handle::NoPlan::Refused(refusal)) => {
                drop(txn);
                let status = ResponseStatus::Failed {
                    code: refusal.code.to_string(),
                    message: refusal.message,
                };
                return Ok(self.sign(answer(status), now));
            }
            Err(handle::NoPlan::Db(e)) => return Err(e),
        };
        let response = self.response(
            (request.kind, &request.nonce, plan.piid, ResponseStatus::Ok),
            now,
        );
        let documents: Vec<&[u8]> = plan.document.as_deref().into_iter().collect();
        match wire::encode_response(&response, &documents, self.key()) {
            Ok(bytes) => {
                handle::apply(&self.db, plan.change)?;
                txn.commit()?;
                Ok(bytes)
            }
            Err(_) => {
                drop(txn);
                let status = ResponseStatus::Failed {
                    code: codes::INTERNAL.to_string(),
                    message: "the manager could not sign its answer".to_string(),
                };
                Ok(self.sign(answer(status), now))
            }
        }
    }

    fn response(
        &self,
        (kind, nonce, piid, status): (RequestKind, &str, Option<Uuid>, ResponseStatus),
        now: DateTime<Utc>,
    ) -> Response {
        Response {
            kind,
            version: self.max_protocol_version,
            nonce: nonce.to_string(),
            piid,
            status,
            server_time: now,
            environment: self.environment,
        }
    }

    fn sign(
        &self,
        envelope: (RequestKind, &str, Option<Uuid>, ResponseStatus),
        now: DateTime<Utc>,
    ) -> Vec<u8> {
        let response = self.response(envelope, now);
        wire::encode_response(&response, &[], self.key()).unwrap_or_default()
    }

    /// A `MALFORMED` answer saying `why` the request could not be read.
    fn malformed(&self, raw: &[u8], why: String, now: DateTime<Utc>) -> Vec<u8> {
        let (kind, nonce, piid) = handle::recover_envelope(raw);
        let status = ResponseStatus::Failed {
            code: codes::MALFORMED.to_string(),
            message: why,
        };
        self.sign((kind, &nonce, piid, status), now)
    }

    /// Runs one administration call in its own transaction: committed if `f` succeeds,
    /// rolled back (nothing changed) if it fails.
    fn admin<T>(
        &mut self,
        f: impl FnOnce(&Db, &mut dyn Random) -> Result<T, ManagerError>,
    ) -> Result<T, ManagerError> {
        let txn = self.db.begin(None)?;
        let out = f(&self.db, &mut *self.random)?;
        txn.commit()?;
        Ok(out)
    }

    /// The Virtual Account every manager starts with.
    pub fn default_virtual_account(&self) -> VirtualAccountId {
        self.default_va.clone()
    }

    /// Adds a Smart Account (without Virtual Accounts). Names are 1–100 characters without
    /// control characters or surrounding white space, unique.
    pub fn add_smart_account(&mut self, name: &str) -> Result<(), ManagerError> {
        self.admin(|db, _| accounts::add_smart_account(db, name))
    }

    /// Adds a Virtual Account to Smart Account `smart`.
    pub fn add_virtual_account(
        &mut self,
        smart: &str,
        name: &str,
    ) -> Result<VirtualAccountId, ManagerError> {
        self.admin(|db, _| accounts::add_virtual_account(db, smart, name))
    }

    /// Every Virtual Account, by Smart Account then name (empty if the database cannot be
    /// read).
    pub fn virtual_accounts(&self) -> Vec<VirtualAccountId> {
        accounts::ids(&self.db).unwrap_or_default()
    }

    /// Adds `count` licenses to the pool of `tag` in `va`, creating the pool if needed (a pool
    /// of 0 makes the tag known to the account). Names given replace the pool's; a new pool
    /// without names takes the catalogue's (none for tags outside it). Names are at most
    /// [`MAX_POOL_TEXT`] characters.
    pub fn add_licenses(
        &mut self,
        va: &VirtualAccountId,
        tag: &Tag,
        count: u32,
        display_name: Option<&str>,
        description: Option<&str>,
    ) -> Result<(), ManagerError> {
        self.admin(|db, _| accounts::add_licenses(db, va, tag, count, display_name, description))
    }

    /// Issues a registration token for `va`, valid from `now`.
    pub fn create_token(
        &mut self,
        va: &VirtualAccountId,
        options: TokenOptions,
        now: DateTime<Utc>,
    ) -> Result<Token, ManagerError> {
        self.admin(|db, rng| {
            let row = accounts::va_id(db, va)?
                .ok_or_else(|| ManagerError::UnknownVirtualAccount(va.clone()))?;
            let restricted = reservation::export_restricted(db, va.smart_account())?;
            let options = TokenOptions {
                export_controlled: options.export_controlled && !restricted,
                ..options
            };
            tokens::create(db, row, options, now, rng)
        })
    }

    /// Revokes a token: it registers nothing any more. Instances registered with it stay.
    pub fn revoke_token(&mut self, token: &Token) -> Result<(), ManagerError> {
        self.admin(|db, _| tokens::revoke(db, token))
    }

    /// Every registered product instance, in registration order (empty if the database
    /// cannot be read). [`Manager::find_instances`] lists some of them.
    pub fn instances(&self) -> Vec<InstanceInfo> {
        self.find_instances(&InstanceQuery::default())
    }

    /// The product instances `query` selects, in registration order (empty if the database
    /// cannot be read, or for an unknown Virtual Account).
    pub fn find_instances(&self, query: &InstanceQuery) -> Vec<InstanceInfo> {
        let Some(filter) = self.filter(query) else {
            return Vec::new();
        };
        instances::list(&self.db, &filter)
            .map(|all| all.iter().map(|i| i.info()).collect())
            .unwrap_or_default()
    }

    /// How many product instances `query` selects, its limit ignored.
    pub fn count_instances(&self, query: &InstanceQuery) -> u64 {
        match self.filter(query) {
            Some(filter) => instances::count(&self.db, &filter).unwrap_or(0),
            None => 0,
        }
    }

    /// How many product instances are registered.
    pub fn instance_count(&self) -> usize {
        usize::try_from(self.count_instances(&InstanceQuery::default())).unwrap_or(usize::MAX)
    }

    /// The product instances of Virtual Account `va`, in registration order.
    pub fn instances_of(&self, va: &VirtualAccountId) -> Vec<InstanceInfo> {
        self.find_instances(&InstanceQuery {
            virtual_account: Some(va.clone()),
            ..InstanceQuery::default()
        })
    }

    fn filter(&self, query: &InstanceQuery) -> Option<instances::Filter> {
        let va = match &query.virtual_account {
            Some(va) => Some(accounts::va_id(&self.db, va).ok()??),
            None => None,
        };
        Some(instances::Filter {
            va,
            udi_contains: query.udi_contains.clone(),
            limit: query.limit,
        })
    }

    /// The license report of `va` (empty for an unknown account): one line per pool, in
    /// catalogue order, with what its own consumers use and what it lends to other tags.
    pub fn licenses(&self, va: &VirtualAccountId) -> Vec<LicenseLine> {
        let lines = || -> Result<Vec<LicenseLine>, DbError> {
            let Some(account) = accounts::get(&self.db, va)? else {
                return Ok(Vec::new());
            };
            let allocation = handle::allocation(&self.db, &account, None)?;
            Ok(account.license_lines(&allocation))
        };
        lines().unwrap_or_default()
    }

    /// The manager's whole state as the bytes of a SQLite database file (format version
    /// [`STATE_VERSION`], WAL mode): for [`Manager::load_state`], and exactly what
    /// [`StateDir::store`] writes as a directory's `state` file. Equal states that went
    /// through the same changes give equal bytes; a refused request changes none. Empty only
    /// if SQLite cannot copy the database (out of memory). The bytes hold the private
    /// signing keys: keep them private.
    pub fn save_state(&self) -> Vec<u8> {
        self.db.image().unwrap_or_default()
    }

    /// Every row of the state, as text (tests compare managers with it).
    #[cfg(test)]
    pub(crate) fn dump(&self) -> String {
        self.db.dump()
    }

    /// The allocation of `va` on its maintained totals.
    #[cfg(test)]
    pub(crate) fn allocation_of(&self, va: &VirtualAccountId) -> allocation::Allocation {
        let account = accounts::get(&self.db, va).unwrap().unwrap();
        handle::allocation(&self.db, &account, None).unwrap()
    }

    /// Virtual Account `va` with its pools.
    #[cfg(test)]
    pub(crate) fn account_of(&self, va: &VirtualAccountId) -> accounts::VirtualAccount {
        accounts::get(&self.db, va).unwrap().unwrap()
    }

    /// SQLite's integrity check of the state: `"ok"`, or what is damaged.
    pub fn integrity_check(&self) -> Result<String, ManagerError> {
        Ok(self.db.integrity_check()?)
    }
}

/// Why a request could not be read, in the manager's words: the wire decoder shares its error
/// type with the agent's answers, whose texts say "answer".
fn request_error(e: &wire::AnswerError) -> String {
    use wire::AnswerError;
    match e {
        AnswerError::Oversize { len, max } => {
            format!("request of {len} bytes exceeds the limit of {max}")
        }
        AnswerError::Truncated => "request is truncated".to_string(),
        AnswerError::Malformed(why) => format!("malformed request: {why}"),
        AnswerError::Signature(why) => format!("request signature: {why}"),
        other => other.to_string(),
    }
}
