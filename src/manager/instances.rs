//! Registered product instances and what the manager knows about each.

use std::collections::BTreeMap;

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

/// Every registered instance.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Instances {
    by_piid: BTreeMap<Uuid, Instance>,
    next_order: u64,
}

impl Instances {
    pub fn get(&self, piid: &Uuid) -> Option<&Instance> {
        self.by_piid.get(piid)
    }

    pub fn get_mut(&mut self, piid: &Uuid) -> Option<&mut Instance> {
        self.by_piid.get_mut(piid)
    }

    pub fn by_udi(&self, udi: &Udi) -> Option<&Instance> {
        self.by_piid.values().find(|i| &i.udi == udi)
    }

    /// Adds an instance after every existing one in registration order.
    pub fn insert(&mut self, mut instance: Instance) {
        instance.order = self.next_order;
        self.next_order += 1;
        self.by_piid.insert(instance.piid, instance);
    }

    /// The registration order the next instance gets.
    pub fn next_order(&self) -> u64 {
        self.next_order
    }

    /// The instances as they were stored, registration orders included (the state file's
    /// decoder). Refuses two instances with one piid or one registration order, or an order
    /// not below `next_order`.
    pub fn restored(instances: Vec<Instance>, next_order: u64) -> Result<Instances, &'static str> {
        // Far beyond any number of registrations, and far from overflowing `insert`'s `+ 1`.
        if next_order > 1 << 62 {
            return Err("implausible registration count");
        }
        let mut restored = Instances {
            by_piid: BTreeMap::new(),
            next_order,
        };
        let mut orders = std::collections::BTreeSet::new();
        for instance in instances {
            if instance.order >= next_order {
                return Err("an instance's registration order is not below the next one");
            }
            if !orders.insert(instance.order) {
                return Err("two instances with the same registration order");
            }
            if restored.by_piid.insert(instance.piid, instance).is_some() {
                return Err("two instances with the same piid");
            }
        }
        Ok(restored)
    }

    pub fn remove(&mut self, piid: &Uuid) -> Option<Instance> {
        self.by_piid.remove(piid)
    }

    /// All instances in registration order.
    pub fn all(&self) -> Vec<&Instance> {
        let mut all: Vec<&Instance> = self.by_piid.values().collect();
        all.sort_by_key(|i| i.order);
        all
    }

    /// The instances of one Virtual Account in registration order.
    pub fn in_account(&self, va: &VirtualAccountId) -> Vec<&Instance> {
        let mut all: Vec<&Instance> = self
            .by_piid
            .values()
            .filter(|i| &i.virtual_account == va)
            .collect();
        all.sort_by_key(|i| i.order);
        all
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
