//! Smart Accounts, their Virtual Accounts, and the license pools of each Virtual Account.

use std::collections::BTreeMap;
use std::fmt;

use super::allocation::Allocation;
use super::catalogue;
use super::error::ManagerError;
use crate::entitlement::Tag;

/// Names a Virtual Account: its Smart Account's name and its own.
///
/// ```
/// use smart_agent::manager::VirtualAccountId;
/// let va = VirtualAccountId::new("BU Production Test", "TAC-CollabTesting");
/// assert_eq!(va.smart_account(), "BU Production Test");
/// assert_eq!(va.to_string(), "BU Production Test / TAC-CollabTesting");
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct VirtualAccountId {
    smart_account: String,
    virtual_account: String,
}

impl VirtualAccountId {
    /// The id of Virtual Account `virtual_account` in Smart Account `smart_account`; whether it
    /// exists is up to the manager.
    pub fn new(smart_account: impl Into<String>, virtual_account: impl Into<String>) -> Self {
        VirtualAccountId {
            smart_account: smart_account.into(),
            virtual_account: virtual_account.into(),
        }
    }

    /// The Smart Account's name, as written into identity certificates.
    pub fn smart_account(&self) -> &str {
        &self.smart_account
    }

    /// The Virtual Account's name, as written into identity certificates.
    pub fn virtual_account(&self) -> &str {
        &self.virtual_account
    }
}

impl fmt::Display for VirtualAccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} / {}", self.smart_account, self.virtual_account)
    }
}

/// One line of a Virtual Account's license report, like the CSSM licenses table
/// (004:586-590): `purchased − in_use − lent_to_lower = balance`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LicenseLine {
    /// The pool's tag.
    pub tag: Tag,
    /// Display name the grants carry, if the pool has one.
    pub display_name: Option<String>,
    /// Description the grants carry, if the pool has one.
    pub description: Option<String>,
    /// Licenses bought.
    pub purchased: u32,
    /// Licenses serving the pool's own tag ("In Use").
    pub in_use: u32,
    /// Licenses serving other tags by substitution or dual parenting ("Substitution: To
    /// Lower").
    pub lent_to_lower: u32,
    /// What is left: `purchased - in_use - lent_to_lower`.
    pub balance: u32,
}

/// The licenses of one tag in a Virtual Account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pool {
    pub tag: Tag,
    pub purchased: u32,
    pub display_name: Option<String>,
    pub description: Option<String>,
}

/// A Virtual Account: its pools by tag text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct VirtualAccount {
    pub pools: BTreeMap<String, Pool>,
}

impl VirtualAccount {
    /// Whether the manager knows `tag` for this account: in the catalogue or pooled here.
    pub fn knows(&self, tag: &str) -> bool {
        self.pools.contains_key(tag) || catalogue::lookup(tag).is_some()
    }

    /// Display name and description for `tag`: the pool's, else the catalogue's.
    pub fn names(&self, tag: &str) -> (Option<String>, Option<String>) {
        match self.pools.get(tag) {
            Some(p) => (p.display_name.clone(), p.description.clone()),
            None => match catalogue::lookup(tag) {
                Some(e) => (
                    Some(e.display_name.to_string()),
                    Some(e.description.to_string()),
                ),
                None => (None, None),
            },
        }
    }

    /// Purchased count per tag, for the allocator.
    pub fn purchased(&self) -> BTreeMap<String, u32> {
        self.pools
            .iter()
            .map(|(tag, p)| (tag.clone(), p.purchased))
            .collect()
    }

    /// The license report, pools in catalogue order (others after, by tag).
    pub fn license_lines(&self, allocation: &Allocation) -> Vec<LicenseLine> {
        let mut lines: Vec<LicenseLine> = self
            .pools
            .iter()
            .map(|(tag, pool)| {
                let in_use = allocation.in_use.get(tag).copied().unwrap_or(0);
                let lent_to_lower = allocation.lent.get(tag).copied().unwrap_or(0);
                LicenseLine {
                    tag: pool.tag.clone(),
                    display_name: pool.display_name.clone(),
                    description: pool.description.clone(),
                    purchased: pool.purchased,
                    in_use,
                    lent_to_lower,
                    balance: pool
                        .purchased
                        .saturating_sub(in_use)
                        .saturating_sub(lent_to_lower),
                }
            })
            .collect();
        lines.sort_by_key(|l| (catalogue::rank(l.tag.as_str()), l.tag.as_str().to_string()));
        lines
    }
}

/// Every Smart Account with its Virtual Accounts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Accounts {
    smart: BTreeMap<String, BTreeMap<String, VirtualAccount>>,
}

fn check_name(name: &str) -> Result<(), ManagerError> {
    let ok = !name.is_empty()
        && name.chars().count() <= 100
        && !name.chars().any(char::is_control)
        && name.trim() == name;
    if ok {
        Ok(())
    } else {
        Err(ManagerError::InvalidName(name.to_string()))
    }
}

impl Accounts {
    pub fn add_smart_account(&mut self, name: &str) -> Result<(), ManagerError> {
        check_name(name)?;
        if self.smart.contains_key(name) {
            return Err(ManagerError::DuplicateSmartAccount(name.to_string()));
        }
        self.smart.insert(name.to_string(), BTreeMap::new());
        Ok(())
    }

    pub fn add_virtual_account(
        &mut self,
        smart: &str,
        name: &str,
    ) -> Result<VirtualAccountId, ManagerError> {
        check_name(name)?;
        let accounts = self
            .smart
            .get_mut(smart)
            .ok_or_else(|| ManagerError::UnknownSmartAccount(smart.to_string()))?;
        let id = VirtualAccountId::new(smart, name);
        if accounts.contains_key(name) {
            return Err(ManagerError::DuplicateVirtualAccount(id));
        }
        accounts.insert(name.to_string(), VirtualAccount::default());
        Ok(id)
    }

    pub fn get(&self, id: &VirtualAccountId) -> Option<&VirtualAccount> {
        self.smart.get(&id.smart_account)?.get(&id.virtual_account)
    }

    /// Every Virtual Account, by Smart Account then name.
    pub fn ids(&self) -> Vec<VirtualAccountId> {
        self.smart
            .iter()
            .flat_map(|(sa, vas)| vas.keys().map(move |va| VirtualAccountId::new(sa, va)))
            .collect()
    }

    /// Every Smart Account (even one without Virtual Accounts) with its Virtual Accounts, by
    /// name: what the state file stores.
    pub fn tree(&self) -> &BTreeMap<String, BTreeMap<String, VirtualAccount>> {
        &self.smart
    }

    /// Puts `pool` into Virtual Account `id` as it is, names included (the state file's
    /// decoder; [`Accounts::add_licenses`] would fill in catalogue names).
    pub fn insert_pool(&mut self, id: &VirtualAccountId, pool: Pool) -> Result<(), ManagerError> {
        let account = self
            .smart
            .get_mut(&id.smart_account)
            .and_then(|vas| vas.get_mut(&id.virtual_account))
            .ok_or_else(|| ManagerError::UnknownVirtualAccount(id.clone()))?;
        account.pools.insert(pool.tag.as_str().to_string(), pool);
        Ok(())
    }

    /// Grows (or creates) the pool of `tag`. Names given replace the pool's; a new pool
    /// without names takes the catalogue's.
    pub fn add_licenses(
        &mut self,
        id: &VirtualAccountId,
        tag: &Tag,
        count: u32,
        display_name: Option<&str>,
        description: Option<&str>,
    ) -> Result<(), ManagerError> {
        let account = self
            .smart
            .get_mut(&id.smart_account)
            .and_then(|vas| vas.get_mut(&id.virtual_account))
            .ok_or_else(|| ManagerError::UnknownVirtualAccount(id.clone()))?;
        let known = catalogue::lookup(tag.as_str());
        let purchased = match account.pools.get(tag.as_str()) {
            Some(p) => p
                .purchased
                .checked_add(count)
                .ok_or(ManagerError::CountOverflow)?,
            None => count,
        };
        let pool = account
            .pools
            .entry(tag.as_str().to_string())
            .or_insert_with(|| Pool {
                tag: tag.clone(),
                purchased: 0,
                display_name: known.as_ref().map(|e| e.display_name.to_string()),
                description: known.as_ref().map(|e| e.description.to_string()),
            });
        pool.purchased = purchased;
        if let Some(name) = display_name {
            pool.display_name = Some(name.to_string());
        }
        if let Some(text) = description {
            pool.description = Some(text.to_string());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(s: &str) -> Tag {
        Tag::parse(s).unwrap()
    }

    #[test]
    fn accounts_nest_and_refuse_duplicates() {
        let mut a = Accounts::default();
        a.add_smart_account("BU Production Test").unwrap();
        let va = a
            .add_virtual_account("BU Production Test", "TAC-CollabTesting")
            .unwrap();
        assert!(a.get(&va).is_some());
        assert_eq!(
            a.add_smart_account("BU Production Test"),
            Err(ManagerError::DuplicateSmartAccount(
                "BU Production Test".into()
            ))
        );
        assert_eq!(
            a.add_virtual_account("BU Production Test", "TAC-CollabTesting"),
            Err(ManagerError::DuplicateVirtualAccount(va.clone()))
        );
        assert_eq!(
            a.add_virtual_account("nobody", "x"),
            Err(ManagerError::UnknownSmartAccount("nobody".into()))
        );
        assert_eq!(a.ids(), vec![va]);
    }

    #[test]
    fn bad_account_names_are_refused() {
        let mut a = Accounts::default();
        for name in ["", " padded", "tab\there", &"x".repeat(101)] {
            assert_eq!(
                a.add_smart_account(name),
                Err(ManagerError::InvalidName(name.into()))
            );
        }
        a.add_smart_account("TAC & Collab <test>").unwrap();
    }

    #[test]
    fn pools_grow_and_take_catalogue_names_by_default() {
        let mut a = Accounts::default();
        a.add_smart_account("S").unwrap();
        let va = a.add_virtual_account("S", "V").unwrap();
        let enhanced = tag(catalogue::UCM_ENHANCED);
        a.add_licenses(&va, &enhanced, 100, None, None).unwrap();
        a.add_licenses(&va, &enhanced, 5, None, None).unwrap();
        let pool = &a.get(&va).unwrap().pools[catalogue::UCM_ENHANCED];
        assert_eq!(pool.purchased, 105);
        assert_eq!(
            pool.display_name.as_deref(),
            Some("UC Manager Enhanced License (12.x)")
        );
        assert_eq!(
            a.add_licenses(&va, &enhanced, u32::MAX, None, None),
            Err(ManagerError::CountOverflow)
        );
        let own = tag("regid.2020-01.com.cisco.Own,1.0_3585abe5-bf6a-49ed-a8d6-a17463d0e734");
        a.add_licenses(&va, &own, 1, Some("Own"), None).unwrap();
        let account = a.get(&va).unwrap();
        assert_eq!(account.names(own.as_str()), (Some("Own".to_string()), None));
        assert!(account.knows(own.as_str()));
        assert!(account.knows(catalogue::CER_USER));
        assert!(!account.knows("regid.2020-01.com.cisco.Other,1.0_x"));
        let missing = VirtualAccountId::new("S", "W");
        assert_eq!(
            a.add_licenses(&missing, &own, 1, None, None),
            Err(ManagerError::UnknownVirtualAccount(missing))
        );
    }
}
