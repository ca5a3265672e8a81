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
//! State changes are atomic: a request is validated completely and its answer signed before
//! anything changes, so a refused or failed request leaves the manager exactly as it was
//! (only [`Manager::requests_received`] counts it).
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
mod error;
mod handle;
mod http;
mod instances;
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

use chrono::{DateTime, Utc};

pub use accounts::{LicenseLine, VirtualAccountId};
pub use catalogue::{catalogue, CatalogueEntry};
pub use error::ManagerError;
pub use instances::InstanceInfo;
pub use server::{Server, ServerError, ServerOptions};
pub use state_dir::{DirError, DirLock, StateDir};
pub use state_file::{StateError, STATE_MAGIC, STATE_VERSION};
pub use tokens::TokenOptions;

use accounts::Accounts;
use allocation::{allocate, Allocation};
use instances::Instances;
use retired::Retired;
use tokens::Tokens;

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

/// Everything a request may change; cloned and compared by the atomicity tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct State {
    pub accounts: Accounts,
    pub tokens: Tokens,
    pub instances: Instances,
    pub retired: Retired,
}

impl State {
    /// The allocation of one Virtual Account on its demand totals (SPEC §4); `replace` is
    /// one instance's (recorded, reported) usage, for an authorization not yet applied.
    /// O(tags × tiers): only the tags the account knows (its pools and the catalogue) take
    /// part, whatever the number of instances.
    pub fn allocation(
        &self,
        va: &VirtualAccountId,
        replace: Option<(&Usage, &Usage)>,
    ) -> Allocation {
        let Some(account) = self.accounts.get(va) else {
            return Allocation::default();
        };
        let mut known: Vec<&str> = account.pools.keys().map(|t| t.as_str()).collect();
        for tag in catalogue::tags() {
            if !account.pools.contains_key(tag) {
                known.push(tag);
            }
        }
        let mut demand = BTreeMap::new();
        for tag in known {
            let mut total = self.instances.demand(va, tag);
            if let Some((old, new)) = replace {
                let count =
                    |usage: &BTreeMap<String, u32>| u64::from(*usage.get(tag).unwrap_or(&0));
                total = total.saturating_sub(count(old)).saturating_add(count(new));
            }
            if total > 0 {
                demand.insert(tag.to_string(), total);
            }
        }
        allocate(&account.purchased(), &demand)
    }
}

/// A reference Smart Software Manager, in process.
pub struct Manager {
    environment: Environment,
    random: Box<dyn Random>,
    key: ManagerSigningKey,
    retired_keys: Vec<ManagerSigningKey>,
    max_protocol_version: u32,
    requests_received: u64,
    default_va: VirtualAccountId,
    state: State,
}

impl fmt::Debug for Manager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manager")
            .field("environment", &self.environment)
            .field("key", &self.key)
            .field("requests_received", &self.requests_received)
            .finish_non_exhaustive()
    }
}

impl Manager {
    /// A manager signing for `environment` with a fresh key, with one Smart Account
    /// ([`DEFAULT_SMART_ACCOUNT`]) holding one Virtual Account ([`DEFAULT_VIRTUAL_ACCOUNT`]).
    /// `random` makes product-instance ids and tokens; the signing keys and signatures use
    /// the system source (ring).
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
        let mut accounts = Accounts::default();
        accounts.add_smart_account(DEFAULT_SMART_ACCOUNT)?;
        let default_va =
            accounts.add_virtual_account(DEFAULT_SMART_ACCOUNT, DEFAULT_VIRTUAL_ACCOUNT)?;
        Ok(Manager {
            environment,
            random,
            key,
            retired_keys: Vec::new(),
            max_protocol_version: wire::PROTOCOL_VERSION,
            requests_received: 0,
            default_va,
            state: State {
                accounts,
                ..State::default()
            },
        })
    }

    /// The environment this manager signs for.
    pub fn environment(&self) -> Environment {
        self.environment
    }

    /// The current signing key as a trust anchor of this manager's environment.
    pub fn trust_anchor(&self) -> TrustAnchor {
        TrustAnchor::new(self.key.public_key().clone(), self.environment)
    }

    /// Every key this manager has signed with, oldest first, the current one last: identities
    /// and grants issued before a rotation stay verifiable with these.
    pub fn trust_anchors(&self) -> Vec<TrustAnchor> {
        self.retired_keys
            .iter()
            .chain(std::iter::once(&self.key))
            .map(|k| TrustAnchor::new(k.public_key().clone(), self.environment))
            .collect()
    }

    /// Replaces the signing key with a fresh one; later answers, identities and grants are
    /// signed with it. Returns its anchor.
    pub fn rotate_signing_key(&mut self) -> Result<TrustAnchor, ManagerError> {
        let fresh = ManagerSigningKey::generate()?;
        self.retired_keys
            .push(std::mem::replace(&mut self.key, fresh));
        Ok(self.trust_anchor())
    }

    /// Requests with a protocol version above `version` are answered `VERSION_TOO_HIGH`
    /// (default [`wire::PROTOCOL_VERSION`]). Answers carry this version.
    pub fn set_max_protocol_version(&mut self, version: u32) {
        self.max_protocol_version = version;
    }

    /// How many requests [`Manager::handle`] was given, refused ones included.
    pub fn requests_received(&self) -> u64 {
        self.requests_received
    }

    /// Answers one request at `now`: always one signed answer (type, nonce and piid echoed;
    /// for a successful `register`, the new piid), never a panic. A request that does not even
    /// parse is answered `FAILED` / `MALFORMED` with whatever type, nonce and piid could be
    /// read from it (type `register` and an empty nonce otherwise). The answer is empty only
    /// if the manager cannot sign at all (random source failure).
    pub fn handle(&mut self, request: &[u8], now: DateTime<Utc>) -> Vec<u8> {
        self.requests_received = self.requests_received.saturating_add(1);
        let parsed = match wire::decode_request(request, MAX_REQUEST_LEN) {
            Ok(parsed) if handle::echoable(&parsed.request.nonce) => parsed,
            Ok(_) => return self.malformed(request, "the nonce cannot be echoed".into(), now),
            Err(e) => return self.malformed(request, e.to_string(), now),
        };
        let request = &parsed.request;
        let answer = |status| (request.kind, request.nonce.as_str(), request.piid, status);
        if request.version > self.max_protocol_version {
            return self.sign(answer(ResponseStatus::VersionTooHigh), now);
        }
        let mut context = handle::Context {
            key: &self.key,
            environment: self.environment,
            rng: &mut *self.random,
            now,
        };
        let plan = match handle::plan(&self.state, &mut context, &parsed) {
            Ok(plan) => plan,
            Err(refusal) => {
                let status = ResponseStatus::Failed {
                    code: refusal.code.to_string(),
                    message: refusal.message,
                };
                return self.sign(answer(status), now);
            }
        };
        let response = self.response(
            (request.kind, &request.nonce, plan.piid, ResponseStatus::Ok),
            now,
        );
        let documents: Vec<&[u8]> = plan.document.as_deref().into_iter().collect();
        match wire::encode_response(&response, &documents, &self.key) {
            Ok(bytes) => {
                handle::apply(&mut self.state, plan.change);
                bytes
            }
            Err(_) => {
                let status = ResponseStatus::Failed {
                    code: codes::INTERNAL.to_string(),
                    message: "the manager could not sign its answer".to_string(),
                };
                self.sign(answer(status), now)
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
        wire::encode_response(&response, &[], &self.key).unwrap_or_default()
    }

    fn malformed(&self, raw: &[u8], why: String, now: DateTime<Utc>) -> Vec<u8> {
        let (kind, nonce, piid) = handle::recover_envelope(raw);
        let status = ResponseStatus::Failed {
            code: codes::MALFORMED.to_string(),
            message: why,
        };
        self.sign((kind, &nonce, piid, status), now)
    }

    /// The Virtual Account every manager starts with.
    pub fn default_virtual_account(&self) -> VirtualAccountId {
        self.default_va.clone()
    }

    /// Adds a Smart Account (without Virtual Accounts). Names are 1–100 characters without
    /// control characters or surrounding white space, unique.
    pub fn add_smart_account(&mut self, name: &str) -> Result<(), ManagerError> {
        self.state.accounts.add_smart_account(name)
    }

    /// Adds a Virtual Account to Smart Account `smart`.
    pub fn add_virtual_account(
        &mut self,
        smart: &str,
        name: &str,
    ) -> Result<VirtualAccountId, ManagerError> {
        self.state.accounts.add_virtual_account(smart, name)
    }

    /// Every Virtual Account, by Smart Account then name.
    pub fn virtual_accounts(&self) -> Vec<VirtualAccountId> {
        self.state.accounts.ids()
    }

    /// Adds `count` licenses to the pool of `tag` in `va`, creating the pool if needed (a pool
    /// of 0 makes the tag known to the account). Names given replace the pool's; a new pool
    /// without names takes the catalogue's (none for tags outside it).
    pub fn add_licenses(
        &mut self,
        va: &VirtualAccountId,
        tag: &Tag,
        count: u32,
        display_name: Option<&str>,
        description: Option<&str>,
    ) -> Result<(), ManagerError> {
        self.state
            .accounts
            .add_licenses(va, tag, count, display_name, description)
    }

    /// Issues a registration token for `va`, valid from `now`.
    pub fn create_token(
        &mut self,
        va: &VirtualAccountId,
        options: TokenOptions,
        now: DateTime<Utc>,
    ) -> Result<Token, ManagerError> {
        if self.state.accounts.get(va).is_none() {
            return Err(ManagerError::UnknownVirtualAccount(va.clone()));
        }
        self.state
            .tokens
            .create(va.clone(), options, now, &mut *self.random)
    }

    /// Revokes a token: it registers nothing any more. Instances registered with it stay.
    pub fn revoke_token(&mut self, token: &Token) -> Result<(), ManagerError> {
        self.state.tokens.revoke(token)
    }

    /// Every registered product instance, in registration order.
    pub fn instances(&self) -> Vec<InstanceInfo> {
        self.state
            .instances
            .all()
            .into_iter()
            .map(|i| i.info())
            .collect()
    }

    /// How many product instances are registered.
    pub fn instance_count(&self) -> usize {
        self.state.instances.len()
    }

    /// The product instances of Virtual Account `va`, in registration order.
    pub fn instances_of(&self, va: &VirtualAccountId) -> Vec<InstanceInfo> {
        self.state
            .instances
            .in_account(va)
            .map(|i| i.info())
            .collect()
    }

    /// The license report of `va` (empty for an unknown account): one line per pool, in
    /// catalogue order, with what its own consumers use and what it lends to other tags.
    pub fn licenses(&self, va: &VirtualAccountId) -> Vec<LicenseLine> {
        match self.state.accounts.get(va) {
            Some(account) => account.license_lines(&self.state.allocation(va, None)),
            None => Vec::new(),
        }
    }
}
