//! Retired device keys (SPEC §12: device keys are single-use): the key of a registration that
//! a newer registration of the same UDI superseded, or that a deregistration removed, is kept
//! as a tombstone so that a request it signed — a captured request replayed later, or an agent
//! restored from an old backup — changes nothing.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};

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

/// Every retired key, by key and by the piid it was registered under.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Retired {
    by_key: BTreeMap<[u8; 32], Tombstone>,
    by_piid: HashMap<Uuid, [u8; 32]>,
}

impl Retired {
    pub fn by_key(&self, key: &[u8; 32]) -> Option<&Tombstone> {
        self.by_key.get(key)
    }

    pub fn by_piid(&self, piid: &Uuid) -> Option<&Tombstone> {
        self.by_piid.get(piid).and_then(|key| self.by_key.get(key))
    }

    /// Retires the key of `instance` (which is going away).
    pub fn retire(&mut self, instance: &Instance, retirement: Retirement, at: DateTime<Utc>) {
        self.insert(Tombstone {
            key: instance.public_key,
            piid: instance.piid,
            udi: instance.udi.clone(),
            retirement,
            at,
        });
    }

    /// Stores a tombstone as it is (also the state's decoder).
    pub fn insert(&mut self, tombstone: Tombstone) {
        self.by_piid.insert(tombstone.piid, tombstone.key);
        self.by_key.insert(tombstone.key, tombstone);
    }
}
