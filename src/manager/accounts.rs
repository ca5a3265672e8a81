//! Smart Accounts, their Virtual Accounts, and the license pools of each Virtual Account.

use std::collections::BTreeMap;
use std::fmt;

use super::allocation::Allocation;
use super::catalogue;
use super::db::{Db, DbError, DbResult};
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
    /// Licenses in use: serving the pool's own tag online, plus those reserved ("In Use",
    /// printed `N (M Reserved)`, 004:589).
    pub in_use: u32,
    /// Of `in_use`, the licenses reserved by product instances (SLR and PLR, SPEC §6).
    pub reserved: u32,
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

/// A Virtual Account as one request sees it: its row id and its pools by tag text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct VirtualAccount {
    pub id: i64,
    pub pools: BTreeMap<String, Pool>,
    /// Licenses reserved per tag (SPEC §6): out of the pool for online use.
    pub reserved: BTreeMap<String, u32>,
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

    /// What each pool has for online use, for the allocator: purchased less reserved.
    pub fn purchased(&self) -> BTreeMap<String, u32> {
        self.pools
            .iter()
            .map(|(tag, p)| {
                (
                    tag.clone(),
                    p.purchased.saturating_sub(self.reserved_of(tag)),
                )
            })
            .collect()
    }

    /// Licenses of `tag` reserved by product instances.
    pub fn reserved_of(&self, tag: &str) -> u32 {
        self.reserved.get(tag).copied().unwrap_or(0)
    }

    /// The license report, pools in catalogue order (others after, by tag).
    pub fn license_lines(&self, allocation: &Allocation) -> Vec<LicenseLine> {
        let mut lines: Vec<LicenseLine> = self
            .pools
            .iter()
            .map(|(tag, pool)| {
                let reserved = self.reserved_of(tag);
                let in_use = allocation
                    .in_use
                    .get(tag)
                    .copied()
                    .unwrap_or(0)
                    .saturating_add(reserved);
                let lent_to_lower = allocation.lent.get(tag).copied().unwrap_or(0);
                LicenseLine {
                    tag: pool.tag.clone(),
                    display_name: pool.display_name.clone(),
                    description: pool.description.clone(),
                    purchased: pool.purchased,
                    in_use,
                    reserved,
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

/// The longest pool display name or description, in characters.
pub const MAX_POOL_TEXT: usize = 256;

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

/// Pool names reach agents in grants, which show control characters escaped: only their
/// length is bounded.
fn check_pool_text(text: Option<&str>) -> Result<(), ManagerError> {
    match text {
        Some(t) if t.chars().count() > MAX_POOL_TEXT => {
            Err(ManagerError::InvalidText(t.chars().take(40).collect()))
        }
        _ => Ok(()),
    }
}

fn storage(e: DbError) -> ManagerError {
    ManagerError::Storage(e.to_string())
}

pub(crate) fn add_smart_account(db: &Db, name: &str) -> Result<(), ManagerError> {
    check_name(name)?;
    let exists = db
        .optional(
            "SELECT 1 FROM smart_accounts WHERE name = ?1",
            [name],
            |_| Ok(()),
        )
        .map_err(storage)?;
    if exists.is_some() {
        return Err(ManagerError::DuplicateSmartAccount(name.to_string()));
    }
    db.run("INSERT INTO smart_accounts (name) VALUES (?1)", [name])
        .map_err(storage)?;
    Ok(())
}

pub(crate) fn add_virtual_account(
    db: &Db,
    smart: &str,
    name: &str,
) -> Result<VirtualAccountId, ManagerError> {
    check_name(name)?;
    let known = db
        .optional(
            "SELECT 1 FROM smart_accounts WHERE name = ?1",
            [smart],
            |_| Ok(()),
        )
        .map_err(storage)?;
    if known.is_none() {
        return Err(ManagerError::UnknownSmartAccount(smart.to_string()));
    }
    let id = VirtualAccountId::new(smart, name);
    if va_id(db, &id).map_err(storage)?.is_some() {
        return Err(ManagerError::DuplicateVirtualAccount(id));
    }
    db.run(
        "INSERT INTO virtual_accounts (smart, name) VALUES (?1, ?2)",
        [smart, name],
    )
    .map_err(storage)?;
    Ok(id)
}

/// The row id of Virtual Account `id`, if it exists.
pub(crate) fn va_id(db: &Db, id: &VirtualAccountId) -> DbResult<Option<i64>> {
    db.optional(
        "SELECT id FROM virtual_accounts WHERE smart = ?1 AND name = ?2",
        [id.smart_account(), id.virtual_account()],
        |r| r.get(0),
    )
}

/// The name of the Virtual Account with row id `id`.
pub(crate) fn va_name(db: &Db, id: i64) -> DbResult<Option<VirtualAccountId>> {
    db.optional(
        "SELECT smart, name FROM virtual_accounts WHERE id = ?1",
        [id],
        |r| {
            Ok(VirtualAccountId::new(
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
            ))
        },
    )
}

/// Every Virtual Account, by Smart Account then name.
pub(crate) fn ids(db: &Db) -> DbResult<Vec<VirtualAccountId>> {
    let mut stmt = db
        .conn()
        .prepare_cached("SELECT smart, name FROM virtual_accounts ORDER BY smart, name")?;
    let rows = stmt.query_map([], |r| {
        Ok(VirtualAccountId::new(
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
        ))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Virtual Account `id` with its pools, if it exists.
pub(crate) fn get(db: &Db, id: &VirtualAccountId) -> DbResult<Option<VirtualAccount>> {
    match va_id(db, id)? {
        Some(row) => by_row(db, row).map(Some),
        None => Ok(None),
    }
}

/// The Virtual Account with row id `row` and its pools.
pub(crate) fn by_row(db: &Db, row: i64) -> DbResult<VirtualAccount> {
    let mut stmt = db.conn().prepare_cached(
        "SELECT tag, purchased, display_name, description FROM pools WHERE va = ?1",
    )?;
    let rows = stmt.query_map([row], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, u32>(1)?,
            r.get::<_, Option<String>>(2)?,
            r.get::<_, Option<String>>(3)?,
        ))
    })?;
    let mut pools = BTreeMap::new();
    for pool in rows {
        let (text, purchased, display_name, description) = pool?;
        let tag = Tag::parse(&text)
            .map_err(|_| DbError::Failed(format!("a pool of the invalid tag {text:?}")))?;
        pools.insert(
            text,
            Pool {
                tag,
                purchased,
                display_name,
                description,
            },
        );
    }
    let mut stmt = db.conn().prepare_cached(
        "SELECT r.tag, SUM(r.held) FROM reserved r JOIN reservations s ON s.piid = r.piid
         WHERE s.va = ?1 GROUP BY r.tag",
    )?;
    let rows = stmt.query_map([row], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    let mut reserved = BTreeMap::new();
    for held in rows {
        let (tag, n) = held?;
        reserved.insert(tag, u32::try_from(n).unwrap_or(u32::MAX));
    }
    Ok(VirtualAccount {
        id: row,
        pools,
        reserved,
    })
}

/// Grows (or creates) the pool of `tag`. Names given replace the pool's; a new pool
/// without names takes the catalogue's.
pub(crate) fn add_licenses(
    db: &Db,
    id: &VirtualAccountId,
    tag: &Tag,
    count: u32,
    display_name: Option<&str>,
    description: Option<&str>,
) -> Result<(), ManagerError> {
    check_pool_text(display_name)?;
    check_pool_text(description)?;
    let row = va_id(db, id)
        .map_err(storage)?
        .ok_or_else(|| ManagerError::UnknownVirtualAccount(id.clone()))?;
    let account = by_row(db, row).map_err(storage)?;
    let known = catalogue::lookup(tag.as_str());
    let pool = match account.pools.get(tag.as_str()) {
        Some(p) => Pool {
            purchased: p
                .purchased
                .checked_add(count)
                .ok_or(ManagerError::CountOverflow)?,
            ..p.clone()
        },
        None => Pool {
            tag: tag.clone(),
            purchased: count,
            display_name: known.as_ref().map(|e| e.display_name.to_string()),
            description: known.as_ref().map(|e| e.description.to_string()),
        },
    };
    let pool = Pool {
        display_name: display_name.map(str::to_string).or(pool.display_name),
        description: description.map(str::to_string).or(pool.description),
        ..pool
    };
    insert_pool(db, row, &pool).map_err(storage)
}

/// Writes `pool` into the Virtual Account with row id `row` as it is, names included.
pub(crate) fn insert_pool(db: &Db, row: i64, pool: &Pool) -> DbResult<()> {
    db.run(
        "INSERT INTO pools (va, tag, purchased, display_name, description)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (va, tag) DO UPDATE SET purchased = excluded.purchased,
             display_name = excluded.display_name, description = excluded.description",
        rusqlite::params![
            row,
            pool.tag.as_str(),
            pool.purchased,
            pool.display_name,
            pool.description
        ],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(s: &str) -> Tag {
        Tag::parse(s).unwrap()
    }

    #[test]
    fn accounts_nest_and_refuse_duplicates() {
        let db = Db::memory().unwrap();
        add_smart_account(&db, "BU Production Test").unwrap();
        let va = add_virtual_account(&db, "BU Production Test", "TAC-CollabTesting").unwrap();
        assert!(get(&db, &va).unwrap().is_some());
        assert_eq!(
            add_smart_account(&db, "BU Production Test"),
            Err(ManagerError::DuplicateSmartAccount(
                "BU Production Test".into()
            ))
        );
        assert_eq!(
            add_virtual_account(&db, "BU Production Test", "TAC-CollabTesting"),
            Err(ManagerError::DuplicateVirtualAccount(va.clone()))
        );
        assert_eq!(
            add_virtual_account(&db, "nobody", "x"),
            Err(ManagerError::UnknownSmartAccount("nobody".into()))
        );
        assert_eq!(ids(&db).unwrap(), vec![va]);
    }

    #[test]
    fn bad_account_names_are_refused() {
        let db = Db::memory().unwrap();
        for name in ["", " padded", "tab\there", &"x".repeat(101)] {
            assert_eq!(
                add_smart_account(&db, name),
                Err(ManagerError::InvalidName(name.into()))
            );
        }
        add_smart_account(&db, "TAC & Collab <test>").unwrap();
    }

    #[test]
    fn pools_grow_and_take_catalogue_names_by_default() {
        let db = Db::memory().unwrap();
        add_smart_account(&db, "S").unwrap();
        let va = add_virtual_account(&db, "S", "V").unwrap();
        let enhanced = tag(catalogue::UCM_ENHANCED);
        add_licenses(&db, &va, &enhanced, 100, None, None).unwrap();
        add_licenses(&db, &va, &enhanced, 5, None, None).unwrap();
        let account = get(&db, &va).unwrap().unwrap();
        let pool = &account.pools[catalogue::UCM_ENHANCED];
        assert_eq!(pool.purchased, 105);
        assert_eq!(
            pool.display_name.as_deref(),
            Some("UC Manager Enhanced License (12.x)")
        );
        assert_eq!(
            add_licenses(&db, &va, &enhanced, u32::MAX, None, None),
            Err(ManagerError::CountOverflow)
        );
        let own = tag("regid.2020-01.com.cisco.Own,1.0_3585abe5-bf6a-49ed-a8d6-a17463d0e734");
        add_licenses(&db, &va, &own, 1, Some("Own"), None).unwrap();
        let account = get(&db, &va).unwrap().unwrap();
        assert_eq!(account.names(own.as_str()), (Some("Own".to_string()), None));
        assert!(account.knows(own.as_str()));
        assert!(account.knows(catalogue::CER_USER));
        assert!(!account.knows("regid.2020-01.com.cisco.Other,1.0_x"));
        let missing = VirtualAccountId::new("S", "W");
        assert_eq!(
            add_licenses(&db, &missing, &own, 1, None, None),
            Err(ManagerError::UnknownVirtualAccount(missing))
        );
    }

    #[test]
    fn pool_names_are_bounded() {
        let db = Db::memory().unwrap();
        add_smart_account(&db, "S").unwrap();
        let va = add_virtual_account(&db, "S", "V").unwrap();
        let own = tag("regid.2020-01.com.cisco.Own,1.0_3585abe5-bf6a-49ed-a8d6-a17463d0e734");
        let long = "n".repeat(MAX_POOL_TEXT + 1);
        assert!(matches!(
            add_licenses(&db, &va, &own, 1, Some(&long), None),
            Err(ManagerError::InvalidText(_))
        ));
        assert!(get(&db, &va).unwrap().unwrap().pools.is_empty());
        add_licenses(&db, &va, &own, 1, Some(&long[1..]), None).unwrap();
    }
}
