//! Compliance of one Virtual Account (SPEC §4 "Manager allocation"), decided on the account's
//! totals of reported usage.
//!
//! The account's demand for a tag is the sum of the counts its registered instances last
//! reported. The three steps run on these totals, tags taken from the lowest tier up
//! ([`catalogue::allocation_rank`](super::catalogue)):
//! 1. every tag's demand from its own pool;
//! 2. what is still missing by "To Lower" substitution, from the nearest higher tier upward;
//! 3. what is still missing by dual parenting, from the mapped HCS licenses in order
//!    (Foundation before Standard).
//!
//! Every step finishes for all tags before the next starts, so no tag borrows while another
//! could still be served from its own pool. A tag the account cannot fully serve is
//! `OutOfCompliance` for every instance reporting it, and each such instance is authorized
//! its proportional share of what the account serves for the tag, rounded down
//! ([`Allocation::authorized`]). The cost is O(tags × tiers): it does not depend on the number
//! of instances. Reservations never substitute (not modelled yet).

use std::collections::BTreeMap;

use super::catalogue;

/// The outcome for one Virtual Account.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Allocation {
    /// Per tag: the account's demand (only tags with a demand above 0).
    pub demand: BTreeMap<String, u64>,
    /// Per tag: the licenses the account serves for it (at most its demand).
    pub served: BTreeMap<String, u64>,
    /// Per pool: licenses serving the pool's own tag.
    pub in_use: BTreeMap<String, u32>,
    /// Per pool: licenses serving other tags (substitution and dual parenting).
    pub lent: BTreeMap<String, u32>,
}

impl Allocation {
    /// The account's demand for `tag`.
    pub fn demand(&self, tag: &str) -> u64 {
        self.demand.get(tag).copied().unwrap_or(0)
    }

    /// What the account serves for `tag`.
    pub fn served(&self, tag: &str) -> u64 {
        self.served.get(tag).copied().unwrap_or(0)
    }

    /// Whether the account serves the whole demand for `tag`.
    pub fn fully_served(&self, tag: &str) -> bool {
        self.served(tag) >= self.demand(tag)
    }

    /// What an instance reporting `count` of `tag` is authorized: all of it if the account
    /// serves the tag fully, else its share of what is served, rounded down.
    pub fn authorized(&self, tag: &str, count: u32) -> u32 {
        let demand = self.demand(tag);
        let served = self.served(tag);
        if served >= demand {
            return count;
        }
        // served < demand, so the share is below `count` and fits.
        let share = u128::from(count) * u128::from(served) / u128::from(demand);
        u32::try_from(share).unwrap_or(count)
    }
}

/// Takes up to `want` from the pool of `tag`; returns what it took.
fn take(remaining: &mut BTreeMap<&str, u32>, tag: &str, want: u64) -> u32 {
    match remaining.get_mut(tag) {
        Some(left) => {
            let got = u32::try_from(want).unwrap_or(u32::MAX).min(*left);
            *left -= got;
            got
        }
        None => 0,
    }
}

fn add(book: &mut BTreeMap<String, u32>, tag: &str, n: u32) {
    if n > 0 {
        let entry = book.entry(tag.to_string()).or_insert(0);
        *entry = entry.saturating_add(n);
    }
}

/// Allocates `pools` (tag text → purchased) to the account's `demand` (tag text → total).
pub(crate) fn allocate(
    pools: &BTreeMap<String, u32>,
    demand: &BTreeMap<String, u64>,
) -> Allocation {
    let mut remaining: BTreeMap<&str, u32> =
        pools.iter().map(|(tag, n)| (tag.as_str(), *n)).collect();
    let mut tags: Vec<(&str, u64)> = demand
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(tag, n)| (tag.as_str(), *n))
        .collect();
    tags.sort_by_key(|(tag, _)| (catalogue::allocation_rank(tag), *tag));
    let mut served: Vec<u64> = vec![0; tags.len()];
    let mut out = Allocation {
        demand: tags.iter().map(|(t, n)| (t.to_string(), *n)).collect(),
        ..Allocation::default()
    };
    // Step 1: own pools.
    for (i, (tag, want)) in tags.iter().enumerate() {
        let got = take(&mut remaining, tag, *want);
        served[i] += u64::from(got);
        add(&mut out.in_use, tag, got);
    }
    // Step 2: substitution, then step 3: dual parenting.
    let lenders: [fn(&str) -> &'static [&'static str]; 2] =
        [catalogue::substitutes, catalogue::dual_parents];
    for lenders_of in lenders {
        for (i, (tag, want)) in tags.iter().enumerate() {
            for &lender in lenders_of(tag) {
                if served[i] >= *want {
                    break;
                }
                let got = take(&mut remaining, lender, *want - served[i]);
                served[i] += u64::from(got);
                add(&mut out.lent, lender, got);
            }
        }
    }
    out.served = tags
        .iter()
        .zip(served)
        .map(|((tag, _), n)| (tag.to_string(), n))
        .collect();
    out
}

#[cfg(test)]
mod tests {
    use super::catalogue::*;
    use super::*;
    use proptest::prelude::*;

    fn pools(list: &[(&str, u32)]) -> BTreeMap<String, u32> {
        list.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    /// The account's demand: the instances' usage summed per tag.
    fn run(p: &[(&str, u32)], instances: &[&[(&str, u32)]]) -> Allocation {
        let mut demand: BTreeMap<String, u64> = BTreeMap::new();
        for usage in instances {
            for (tag, n) in *usage {
                *demand.entry(tag.to_string()).or_insert(0) += u64::from(*n);
            }
        }
        allocate(&pools(p), &demand)
    }

    #[test]
    fn own_pool_serves_first() {
        let out = run(
            &[(UCM_ENHANCED, 5), (UCM_ENHANCED_PLUS, 5)],
            &[&[(UCM_ENHANCED, 3)]],
        );
        assert_eq!(out.authorized(UCM_ENHANCED, 3), 3);
        assert_eq!(out.in_use[UCM_ENHANCED], 3);
        assert!(out.lent.is_empty());
    }

    #[test]
    fn enhanced_is_served_from_enhanced_plus_by_substitution() {
        let out = run(
            &[(UCM_ENHANCED, 1), (UCM_ENHANCED_PLUS, 5)],
            &[&[(UCM_ENHANCED, 3)]],
        );
        assert_eq!(out.authorized(UCM_ENHANCED, 3), 3);
        assert_eq!(out.in_use[UCM_ENHANCED], 1);
        assert_eq!(out.lent[UCM_ENHANCED_PLUS], 2);
    }

    #[test]
    fn substitution_takes_the_nearest_higher_tier_first() {
        let out = run(
            &[(UCM_ENHANCED, 1), (UCM_CUWL, 5), (UCM_ENHANCED_PLUS, 1)],
            &[&[(UCM_ESSENTIAL, 3)]],
        );
        assert_eq!(out.authorized(UCM_ESSENTIAL, 3), 3);
        assert_eq!(out.lent[UCM_ENHANCED], 1);
        assert_eq!(out.lent[UCM_ENHANCED_PLUS], 1);
        assert_eq!(out.lent[UCM_CUWL], 1);
    }

    #[test]
    fn lower_tiers_never_serve_higher_ones() {
        let out = run(&[(UCM_BASIC, 10)], &[&[(UCM_ENHANCED, 2)]]);
        assert_eq!(out.authorized(UCM_ENHANCED, 2), 0);
        assert!(out.lent.is_empty());
    }

    #[test]
    fn basic_is_served_from_hcs_foundation_by_dual_parenting() {
        let out = run(&[(HCS_UCM_FOUNDATION, 4)], &[&[(UCM_BASIC, 3)]]);
        assert_eq!(out.authorized(UCM_BASIC, 3), 3);
        assert_eq!(out.lent[HCS_UCM_FOUNDATION], 3);
    }

    #[test]
    fn hcs_standard_serves_basic_after_foundation() {
        let out = run(
            &[(HCS_UCM_STANDARD, 4), (HCS_UCM_FOUNDATION, 1)],
            &[&[(UCM_BASIC, 3)]],
        );
        assert_eq!(out.authorized(UCM_BASIC, 3), 3);
        assert_eq!(out.lent[HCS_UCM_FOUNDATION], 1);
        assert_eq!(out.lent[HCS_UCM_STANDARD], 2);
    }

    #[test]
    fn enterprise_substitution_comes_before_dual_parenting() {
        let out = run(
            &[(UCM_CUWL, 1), (HCS_UCM_FOUNDATION, 5)],
            &[&[(UCM_BASIC, 2)]],
        );
        assert_eq!(out.lent[UCM_CUWL], 1);
        assert_eq!(out.lent[HCS_UCM_FOUNDATION], 1);
    }

    #[test]
    fn cuwl_is_served_only_by_hcs_standard() {
        let out = run(
            &[(HCS_UCM_FOUNDATION, 5), (HCS_UCM_STANDARD, 1)],
            &[&[(UCM_CUWL, 2)]],
        );
        assert_eq!(out.authorized(UCM_CUWL, 2), 1);
        assert_eq!(out.lent.get(HCS_UCM_FOUNDATION), None);
    }

    #[test]
    fn own_pools_serve_every_instance_before_anyone_borrows() {
        // A registered first, but B's Enhanced Plus demand is served from its own pool
        // before A may borrow from it.
        let out = run(
            &[(UCM_ENHANCED_PLUS, 2)],
            &[&[(UCM_ENHANCED, 2)], &[(UCM_ENHANCED_PLUS, 2)]],
        );
        assert_eq!(out.authorized(UCM_ENHANCED_PLUS, 2), 2);
        assert_eq!(out.authorized(UCM_ENHANCED, 2), 0);
    }

    /// Changed on purpose with SPEC §4's per-account compliance: the first release served
    /// instances in registration order (A got 2, B 1); now both are out of compliance and get
    /// the same share.
    #[test]
    fn a_short_tag_gives_every_instance_its_proportional_share() {
        let out = run(&[(UCM_BASIC, 3)], &[&[(UCM_BASIC, 2)], &[(UCM_BASIC, 2)]]);
        assert!(!out.fully_served(UCM_BASIC));
        assert_eq!(out.served(UCM_BASIC), 3);
        // 2 × 3 / 4, rounded down.
        assert_eq!(out.authorized(UCM_BASIC, 2), 1);
        let out = run(&[(UCM_BASIC, 9)], &[&[(UCM_BASIC, 2)], &[(UCM_BASIC, 8)]]);
        assert_eq!(out.authorized(UCM_BASIC, 2), 1);
        assert_eq!(out.authorized(UCM_BASIC, 8), 7);
    }

    #[test]
    fn lower_tiers_borrow_first() {
        // SPEC §4: tags are taken from the lowest tier up. Essential and Enhanced both want
        // the one Enhanced Plus license; Essential, the lower tier, gets it.
        let out = run(
            &[(UCM_ENHANCED_PLUS, 1)],
            &[&[(UCM_ESSENTIAL, 1), (UCM_ENHANCED, 1)]],
        );
        assert!(out.fully_served(UCM_ESSENTIAL));
        assert!(!out.fully_served(UCM_ENHANCED));
    }

    #[test]
    fn partly_served_tag_gets_what_is_left() {
        let out = run(&[(EXPY_RMS, 3)], &[&[(EXPY_RMS, 5)]]);
        assert_eq!(out.authorized(EXPY_RMS, 5), 3);
        assert_eq!(out.in_use[EXPY_RMS], 3);
    }

    #[test]
    fn tags_without_pools_get_nothing() {
        let other = "regid.2020-01.com.cisco.X,1.0_y";
        let out = run(&[], &[&[(other, 5)]]);
        assert_eq!(out.authorized(other, 5), 0);
    }

    #[test]
    fn huge_totals_do_not_overflow() {
        let max: &[(&str, u32)] = &[(UCM_BASIC, u32::MAX)];
        let out = run(&[(UCM_BASIC, u32::MAX)], &[max, max, max]);
        assert_eq!(out.served(UCM_BASIC), u64::from(u32::MAX));
        assert_eq!(out.authorized(UCM_BASIC, u32::MAX), u32::MAX / 3);
    }

    proptest! {
        #[test]
        fn allocation_never_exceeds_pools_or_demands(
            purchased in proptest::collection::vec(0u32..6, 16),
            demands in proptest::collection::vec(proptest::collection::vec(0u32..6, 16), 1..5),
        ) {
            let tags: Vec<String> = catalogue().iter().map(|e| e.tag.as_str().to_string()).collect();
            let p: BTreeMap<String, u32> =
                tags.iter().zip(&purchased).map(|(t, n)| (t.clone(), *n)).collect();
            let mut demand: BTreeMap<String, u64> = BTreeMap::new();
            for d in &demands {
                for (t, n) in tags.iter().zip(d) {
                    *demand.entry(t.clone()).or_insert(0) += u64::from(*n);
                }
            }
            let out = allocate(&p, &demand);
            for (tag, n) in &p {
                let used = out.in_use.get(tag).unwrap_or(&0) + out.lent.get(tag).unwrap_or(&0);
                prop_assert!(used <= *n);
            }
            let given: u64 = out.served.values().sum();
            let taken: u64 = out.in_use.values().chain(out.lent.values()).map(|n| u64::from(*n)).sum();
            prop_assert_eq!(given, taken);
            for (tag, n) in &out.demand {
                prop_assert!(out.served(tag) <= *n);
                // Shares never add up to more than what is served.
                let shares: u64 = demands.iter()
                    .filter_map(|d| tags.iter().position(|t| t == tag).map(|i| d[i]))
                    .map(|c| u64::from(out.authorized(tag, c)))
                    .sum();
                prop_assert!(shares <= out.served(tag));
            }
            prop_assert_eq!(allocate(&p, &demand), out);
        }
    }
}
