//! Registered product instances and what the manager knows about each.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};

use super::accounts::VirtualAccountId;
use crate::crypto::{random_array, Random, RandomError};
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
    pub virtual_account: VirtualAccountId,
    pub export_controlled: bool,
    pub hostname: Option<String>,
    pub ip: Option<String>,
    pub registered_at: DateTime<Utc>,
    /// The signed identity certificate, verbatim, for repeated registrations.
    pub identity: Vec<u8>,
    pub identity_not_after: DateTime<Utc>,
    pub last_contact: DateTime<Utc>,
    pub usage: BTreeMap<String, u32>,
    pub last_sequence: Option<u64>,
    pub reports_counted: u64,
    /// Registration order, for the allocator; assigned on insertion.
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

    /// Records a contact: the time, and the host name and address when the request had them.
    pub fn touch(&mut self, contact: Contact) {
        self.last_contact = contact.at;
        if contact.hostname.is_some() {
            self.hostname = contact.hostname;
        }
        if contact.ip.is_some() {
            self.ip = contact.ip;
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

/// Every registered instance, indexed by piid, UDI, device key and Virtual Account, with each
/// Virtual Account's demand totals (the sum of its instances' usage per tag) kept up to date
/// as instances come, go and report: what compliance is decided on (SPEC §4).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Instances {
    by_piid: BTreeMap<Uuid, Instance>,
    by_udi: HashMap<Udi, Uuid>,
    by_key: HashMap<[u8; 32], Uuid>,
    by_account: BTreeMap<VirtualAccountId, BTreeSet<(u64, Uuid)>>,
    demand: BTreeMap<VirtualAccountId, BTreeMap<String, u64>>,
    next_order: u64,
}

fn add_demand(totals: &mut BTreeMap<String, u64>, usage: &BTreeMap<String, u32>) {
    for (tag, n) in usage {
        let total = totals.entry(tag.clone()).or_insert(0);
        *total = total.saturating_add(u64::from(*n));
    }
}

fn remove_demand(totals: &mut BTreeMap<String, u64>, usage: &BTreeMap<String, u32>) {
    for (tag, n) in usage {
        if let Some(total) = totals.get_mut(tag) {
            *total = total.saturating_sub(u64::from(*n));
            if *total == 0 {
                totals.remove(tag);
            }
        }
    }
}

impl Instances {
    pub fn get(&self, piid: &Uuid) -> Option<&Instance> {
        self.by_piid.get(piid)
    }

    pub fn by_udi(&self, udi: &Udi) -> Option<&Instance> {
        self.by_udi.get(udi).and_then(|piid| self.by_piid.get(piid))
    }

    /// The instance registered with device key `key`, if any.
    pub fn by_key(&self, key: &[u8; 32]) -> Option<&Instance> {
        self.by_key.get(key).and_then(|piid| self.by_piid.get(piid))
    }

    pub fn len(&self) -> usize {
        self.by_piid.len()
    }

    /// Adds an instance after every existing one in registration order.
    pub fn insert(&mut self, mut instance: Instance) {
        instance.order = self.next_order;
        self.next_order += 1;
        self.put(instance);
    }

    /// Indexes and stores `instance` as it is (its order already assigned).
    fn put(&mut self, instance: Instance) {
        if let Some(old) = self.by_piid.get(&instance.piid).map(|i| i.piid) {
            self.remove(&old);
        }
        self.by_udi.insert(instance.udi.clone(), instance.piid);
        self.by_key.insert(instance.public_key, instance.piid);
        self.by_account
            .entry(instance.virtual_account.clone())
            .or_default()
            .insert((instance.order, instance.piid));
        add_demand(
            self.demand
                .entry(instance.virtual_account.clone())
                .or_default(),
            &instance.usage,
        );
        self.by_piid.insert(instance.piid, instance);
    }

    /// The registration order the next instance gets.
    pub fn next_order(&self) -> u64 {
        self.next_order
    }

    /// The instances as they were stored, registration orders included (the state file's
    /// decoder). Refuses two instances with one piid, UDI or device key, or one registration
    /// order, or an order not below `next_order`.
    pub fn restored(instances: Vec<Instance>, next_order: u64) -> Result<Instances, &'static str> {
        // Far beyond any number of registrations, and far from overflowing `insert`'s `+ 1`.
        if next_order > 1 << 62 {
            return Err("implausible registration count");
        }
        let mut restored = Instances {
            next_order,
            ..Instances::default()
        };
        let mut orders = BTreeSet::new();
        for instance in instances {
            if instance.order >= next_order {
                return Err("an instance's registration order is not below the next one");
            }
            if !orders.insert(instance.order) {
                return Err("two instances with the same registration order");
            }
            if restored.by_piid.contains_key(&instance.piid) {
                return Err("two instances with the same piid");
            }
            if restored.by_udi.contains_key(&instance.udi) {
                return Err("two instances with the same UDI");
            }
            if restored.by_key.contains_key(&instance.public_key) {
                return Err("two instances with the same device key");
            }
            restored.put(instance);
        }
        Ok(restored)
    }

    pub fn remove(&mut self, piid: &Uuid) -> Option<Instance> {
        let instance = self.by_piid.remove(piid)?;
        if self.by_udi.get(&instance.udi) == Some(piid) {
            self.by_udi.remove(&instance.udi);
        }
        if self.by_key.get(&instance.public_key) == Some(piid) {
            self.by_key.remove(&instance.public_key);
        }
        if let Some(set) = self.by_account.get_mut(&instance.virtual_account) {
            set.remove(&(instance.order, instance.piid));
            if set.is_empty() {
                self.by_account.remove(&instance.virtual_account);
            }
        }
        if let Some(totals) = self.demand.get_mut(&instance.virtual_account) {
            remove_demand(totals, &instance.usage);
            if totals.is_empty() {
                self.demand.remove(&instance.virtual_account);
            }
        }
        Some(instance)
    }

    /// Changes what `f` changes of the instance `piid` (its usage included: the account's
    /// totals follow). The piid, UDI, key, account and order must stay.
    pub fn update(&mut self, piid: &Uuid, f: impl FnOnce(&mut Instance)) {
        let Some(mut instance) = self.remove(piid) else {
            return;
        };
        f(&mut instance);
        self.put(instance);
    }

    /// All instances in registration order.
    pub fn all(&self) -> Vec<&Instance> {
        let mut all: Vec<&Instance> = self.by_piid.values().collect();
        all.sort_by_key(|i| i.order);
        all
    }

    /// The instances of one Virtual Account in registration order.
    pub fn in_account(&self, va: &VirtualAccountId) -> impl Iterator<Item = &Instance> {
        self.by_account
            .get(va)
            .into_iter()
            .flatten()
            .filter_map(|(_, piid)| self.by_piid.get(piid))
    }

    /// The Virtual Account's demand for `tag`: the sum of its instances' reported counts.
    pub fn demand(&self, va: &VirtualAccountId, tag: &str) -> u64 {
        self.demand
            .get(va)
            .and_then(|totals| totals.get(tag))
            .copied()
            .unwrap_or(0)
    }

    /// A random (version 4) piid not in use.
    pub fn fresh_piid(&self, rng: &mut dyn Random) -> Result<Uuid, RandomError> {
        for _ in 0..4 {
            let mut bytes: [u8; 16] = random_array(rng)?;
            bytes[6] = (bytes[6] & 0x0f) | 0x40;
            bytes[8] = (bytes[8] & 0x3f) | 0x80;
            let piid = Uuid(bytes);
            if !self.by_piid.contains_key(&piid) {
                return Ok(piid);
            }
        }
        Err(RandomError)
    }
}
