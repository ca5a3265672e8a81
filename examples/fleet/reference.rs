//! The reference allocation (SPEC §4), written again from the specification's text rather than
//! taken from the manager: per Virtual Account, each tag's total demand from its own pool, then
//! "To Lower" substitution from the nearest higher tier up, then dual parenting from the
//! mapped HCS licenses (Foundation before Standard); tags from the lowest tier up. Only the
//! tags the fleet uses are described.

use std::collections::BTreeMap;

use smart_agent::manager::catalogue::{
    HCS_UCM_FOUNDATION, HCS_UCM_STANDARD, UCM_BASIC, UCM_CUWL, UCM_ENHANCED, UCM_ENHANCED_PLUS,
    UCM_ESSENTIAL,
};

/// The Unified CM tier chain, lowest first (SPEC §4).
const UCM_TIERS: [&str; 5] = [
    UCM_ESSENTIAL,
    UCM_BASIC,
    UCM_ENHANCED,
    UCM_ENHANCED_PLUS,
    UCM_CUWL,
];
/// The HCS chain ("the higher level licences are utilized for lower level ones").
const HCS_TIERS: [&str; 2] = [HCS_UCM_FOUNDATION, HCS_UCM_STANDARD];

fn tier_chain(tag: &str) -> Option<&'static [&'static str]> {
    if UCM_TIERS.contains(&tag) {
        Some(&UCM_TIERS)
    } else if HCS_TIERS.contains(&tag) {
        Some(&HCS_TIERS)
    } else {
        None
    }
}

fn higher_tiers(tag: &str) -> Vec<&'static str> {
    match tier_chain(tag) {
        Some(chain) => {
            let at = chain.iter().position(|t| *t == tag).unwrap_or(chain.len());
            chain[at + 1..].to_vec()
        }
        None => Vec::new(),
    }
}

/// HCS UCM Foundation ⇐ Basic, Essential, Enhanced; HCS UCM Standard ⇐ UWL, Enhanced Plus
/// (000:535-545), Standard also after Foundation.
fn dual_parents(tag: &str) -> &'static [&'static str] {
    if [UCM_ESSENTIAL, UCM_BASIC, UCM_ENHANCED].contains(&tag) {
        &[HCS_UCM_FOUNDATION, HCS_UCM_STANDARD]
    } else if [UCM_ENHANCED_PLUS, UCM_CUWL].contains(&tag) {
        &[HCS_UCM_STANDARD]
    } else {
        &[]
    }
}

fn rank(tag: &str) -> (usize, usize) {
    if let Some(i) = UCM_TIERS.iter().position(|t| *t == tag) {
        (0, i)
    } else if let Some(i) = HCS_TIERS.iter().position(|t| *t == tag) {
        (1, i)
    } else {
        (2, 0)
    }
}

/// What one Virtual Account serves.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Allocation {
    pub demand: BTreeMap<String, u64>,
    pub served: BTreeMap<String, u64>,
    /// Per pool: licenses serving its own tag.
    pub own: BTreeMap<String, u64>,
    /// Per pool: licenses lent to other tags.
    pub lent: BTreeMap<String, u64>,
}

impl Allocation {
    pub fn fully_served(&self, tag: &str) -> bool {
        self.served.get(tag).copied().unwrap_or(0) >= self.demand.get(tag).copied().unwrap_or(0)
    }
}

/// Allocates `pools` (what is purchased less what is reserved) to `demand`.
pub fn allocate(pools: &BTreeMap<String, u64>, demand: &BTreeMap<String, u64>) -> Allocation {
    let mut left = pools.clone();
    let mut tags: Vec<(&String, u64)> = demand
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(t, n)| (t, *n))
        .collect();
    tags.sort_by_key(|(t, _)| (rank(t), (*t).clone()));
    let mut out = Allocation {
        demand: tags.iter().map(|(t, n)| ((*t).clone(), *n)).collect(),
        ..Allocation::default()
    };
    let take = |left: &mut BTreeMap<String, u64>, from: &str, want: u64| -> u64 {
        let have = left.get_mut(from);
        match have {
            Some(h) => {
                let got = want.min(*h);
                *h -= got;
                got
            }
            None => 0,
        }
    };
    let mut served = vec![0u64; tags.len()];
    for (i, (tag, want)) in tags.iter().enumerate() {
        let got = take(&mut left, tag, *want);
        served[i] += got;
        if got > 0 {
            *out.own.entry((*tag).clone()).or_insert(0) += got;
        }
    }
    for step in 0..2 {
        for (i, (tag, want)) in tags.iter().enumerate() {
            let lenders: Vec<&str> = if step == 0 {
                higher_tiers(tag)
            } else {
                dual_parents(tag).to_vec()
            };
            for lender in lenders {
                if served[i] >= *want {
                    break;
                }
                let got = take(&mut left, lender, *want - served[i]);
                served[i] += got;
                if got > 0 {
                    *out.lent.entry(lender.to_string()).or_insert(0) += got;
                }
            }
        }
    }
    out.served = tags
        .iter()
        .zip(served)
        .map(|((t, _), s)| ((*t).clone(), s))
        .collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(items: &[(&str, u64)]) -> BTreeMap<String, u64> {
        items.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    #[test]
    fn substitution_then_dual_parenting() {
        let pools = map(&[(UCM_ENHANCED, 3), (UCM_CUWL, 2), (HCS_UCM_FOUNDATION, 4)]);
        let demand = map(&[(UCM_BASIC, 3), (UCM_ENHANCED, 5)]);
        let a = allocate(&pools, &demand);
        // Enhanced: 3 own; Basic borrows Enhanced (none left) then CUWL 2; then Foundation.
        assert_eq!(a.own[UCM_ENHANCED], 3);
        assert_eq!(a.served[UCM_BASIC], 3);
        assert_eq!(a.served[UCM_ENHANCED], 5);
        assert_eq!(a.lent[UCM_CUWL], 2);
        assert_eq!(a.lent[HCS_UCM_FOUNDATION], 3);
    }
}
