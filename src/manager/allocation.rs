//! Allocation of one Virtual Account's pools to its product instances (SPEC §4).
//!
//! Computed for the whole account at once, deterministically, in three phases:
//! 1. every (instance, tag) demand from the tag's own pool;
//! 2. what is still missing by "To Lower" substitution, from the nearest higher tier upward;
//! 3. what is still missing by dual parenting, from the mapped HCS licenses in order
//!    (Foundation before Standard).
//!
//! Within a phase, instances are served in registration order and each instance's tags in
//! catalogue order ([`catalogue`](mod@super::catalogue)). Every phase finishes for all demands
//! before the next starts, so no instance borrows while another still could be served from
//! its own pool. A demand served only in part gets what it got; the grant calls it
//! `OutOfCompliance`. Reservations never substitute (not modelled yet).

use std::collections::BTreeMap;

use super::catalogue;
use crate::udi::Uuid;

/// One product instance's reported usage, tag text → count.
pub(crate) struct Consumer<'a> {
    pub piid: Uuid,
    pub usage: &'a BTreeMap<String, u32>,
}

/// The outcome for one Virtual Account.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Allocation {
    /// Licenses authorized per (instance, tag).
    pub served: BTreeMap<(Uuid, String), u32>,
    /// Per pool: licenses serving the pool's own tag.
    pub in_use: BTreeMap<String, u32>,
    /// Per pool: licenses serving other tags (substitution and dual parenting).
    pub lent: BTreeMap<String, u32>,
}

impl Allocation {
    /// What `piid` was authorized for `tag`.
    pub fn authorized(&self, piid: Uuid, tag: &str) -> u32 {
        self.served
            .get(&(piid, tag.to_string()))
            .copied()
            .unwrap_or(0)
    }
}

struct Demand<'a> {
    piid: Uuid,
    tag: &'a str,
    requested: u32,
    served: u32,
}

/// Takes up to `want` from the pool of `tag`; returns what it took.
fn take(remaining: &mut BTreeMap<&str, u32>, tag: &str, want: u32) -> u32 {
    match remaining.get_mut(tag) {
        Some(left) => {
            let got = want.min(*left);
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

/// Allocates `pools` (tag text → purchased) to `consumers`, given in registration order.
pub(crate) fn allocate(pools: &BTreeMap<String, u32>, consumers: &[Consumer<'_>]) -> Allocation {
    let mut remaining: BTreeMap<&str, u32> =
        pools.iter().map(|(tag, n)| (tag.as_str(), *n)).collect();
    let mut demands: Vec<Demand<'_>> = Vec::new();
    for consumer in consumers {
        let mut tags: Vec<(&String, &u32)> =
            consumer.usage.iter().filter(|(_, n)| **n > 0).collect();
        tags.sort_by_key(|(tag, _)| (catalogue::rank(tag), tag.as_str()));
        demands.extend(tags.into_iter().map(|(tag, n)| Demand {
            piid: consumer.piid,
            tag: tag.as_str(),
            requested: *n,
            served: 0,
        }));
    }
    let mut out = Allocation::default();
    // Phase 1: own pools.
    for d in &mut demands {
        let got = take(&mut remaining, d.tag, d.requested);
        d.served += got;
        add(&mut out.in_use, d.tag, got);
    }
    // Phase 2: substitution, then phase 3: dual parenting.
    let lenders: [fn(&str) -> &'static [&'static str]; 2] =
        [catalogue::substitutes, catalogue::dual_parents];
    for lenders_of in lenders {
        for d in &mut demands {
            for &lender in lenders_of(d.tag) {
                if d.served == d.requested {
                    break;
                }
                let got = take(&mut remaining, lender, d.requested - d.served);
                d.served += got;
                add(&mut out.lent, lender, got);
            }
        }
    }
    for d in demands {
        out.served.insert((d.piid, d.tag.to_string()), d.served);
    }
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

    fn usage(list: &[(&str, u32)]) -> BTreeMap<String, u32> {
        pools(list)
    }

    const A: Uuid = Uuid([1; 16]);
    const B: Uuid = Uuid([2; 16]);

    fn run(p: &[(&str, u32)], a: &[(&str, u32)], b: &[(&str, u32)]) -> Allocation {
        let (ua, ub) = (usage(a), usage(b));
        allocate(
            &pools(p),
            &[
                Consumer {
                    piid: A,
                    usage: &ua,
                },
                Consumer {
                    piid: B,
                    usage: &ub,
                },
            ],
        )
    }

    #[test]
    fn own_pool_serves_first() {
        let out = run(
            &[(UCM_ENHANCED, 5), (UCM_ENHANCED_PLUS, 5)],
            &[(UCM_ENHANCED, 3)],
            &[],
        );
        assert_eq!(out.authorized(A, UCM_ENHANCED), 3);
        assert_eq!(out.in_use[UCM_ENHANCED], 3);
        assert!(out.lent.is_empty());
    }

    #[test]
    fn enhanced_is_served_from_enhanced_plus_by_substitution() {
        let out = run(
            &[(UCM_ENHANCED, 1), (UCM_ENHANCED_PLUS, 5)],
            &[(UCM_ENHANCED, 3)],
            &[],
        );
        assert_eq!(out.authorized(A, UCM_ENHANCED), 3);
        assert_eq!(out.in_use[UCM_ENHANCED], 1);
        assert_eq!(out.lent[UCM_ENHANCED_PLUS], 2);
    }

    #[test]
    fn substitution_takes_the_nearest_higher_tier_first() {
        let out = run(
            &[(UCM_ENHANCED, 1), (UCM_CUWL, 5), (UCM_ENHANCED_PLUS, 1)],
            &[(UCM_ESSENTIAL, 3)],
            &[],
        );
        assert_eq!(out.authorized(A, UCM_ESSENTIAL), 3);
        assert_eq!(out.lent[UCM_ENHANCED], 1);
        assert_eq!(out.lent[UCM_ENHANCED_PLUS], 1);
        assert_eq!(out.lent[UCM_CUWL], 1);
    }

    #[test]
    fn lower_tiers_never_serve_higher_ones() {
        let out = run(&[(UCM_BASIC, 10)], &[(UCM_ENHANCED, 2)], &[]);
        assert_eq!(out.authorized(A, UCM_ENHANCED), 0);
        assert!(out.lent.is_empty());
    }

    #[test]
    fn basic_is_served_from_hcs_foundation_by_dual_parenting() {
        let out = run(&[(HCS_UCM_FOUNDATION, 4)], &[(UCM_BASIC, 3)], &[]);
        assert_eq!(out.authorized(A, UCM_BASIC), 3);
        assert_eq!(out.lent[HCS_UCM_FOUNDATION], 3);
    }

    #[test]
    fn hcs_standard_serves_basic_after_foundation() {
        let out = run(
            &[(HCS_UCM_STANDARD, 4), (HCS_UCM_FOUNDATION, 1)],
            &[(UCM_BASIC, 3)],
            &[],
        );
        assert_eq!(out.authorized(A, UCM_BASIC), 3);
        assert_eq!(out.lent[HCS_UCM_FOUNDATION], 1);
        assert_eq!(out.lent[HCS_UCM_STANDARD], 2);
    }

    #[test]
    fn enterprise_substitution_comes_before_dual_parenting() {
        let out = run(
            &[(UCM_CUWL, 1), (HCS_UCM_FOUNDATION, 5)],
            &[(UCM_BASIC, 2)],
            &[],
        );
        assert_eq!(out.lent[UCM_CUWL], 1);
        assert_eq!(out.lent[HCS_UCM_FOUNDATION], 1);
    }

    #[test]
    fn cuwl_is_served_only_by_hcs_standard() {
        let out = run(
            &[(HCS_UCM_FOUNDATION, 5), (HCS_UCM_STANDARD, 1)],
            &[(UCM_CUWL, 2)],
            &[],
        );
        assert_eq!(out.authorized(A, UCM_CUWL), 1);
        assert_eq!(out.lent.get(HCS_UCM_FOUNDATION), None);
    }

    #[test]
    fn own_pools_serve_every_instance_before_anyone_borrows() {
        // A registered first, but B's Enhanced Plus demand is served from its own pool
        // before A may borrow from it.
        let out = run(
            &[(UCM_ENHANCED_PLUS, 2)],
            &[(UCM_ENHANCED, 2)],
            &[(UCM_ENHANCED_PLUS, 2)],
        );
        assert_eq!(out.authorized(B, UCM_ENHANCED_PLUS), 2);
        assert_eq!(out.authorized(A, UCM_ENHANCED), 0);
    }

    #[test]
    fn instances_are_served_in_registration_order() {
        let out = run(&[(UCM_BASIC, 3)], &[(UCM_BASIC, 2)], &[(UCM_BASIC, 2)]);
        assert_eq!(out.authorized(A, UCM_BASIC), 2);
        assert_eq!(out.authorized(B, UCM_BASIC), 1);
    }

    #[test]
    fn partly_served_tag_gets_what_is_left() {
        let out = run(&[(EXPY_RMS, 3)], &[(EXPY_RMS, 5)], &[]);
        assert_eq!(out.authorized(A, EXPY_RMS), 3);
        assert_eq!(out.in_use[EXPY_RMS], 3);
    }

    #[test]
    fn tags_without_pools_get_nothing() {
        let out = run(&[], &[("regid.2020-01.com.cisco.X,1.0_y", 5)], &[]);
        assert_eq!(out.authorized(A, "regid.2020-01.com.cisco.X,1.0_y"), 0);
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
            let usages: Vec<BTreeMap<String, u32>> = demands.iter()
                .map(|d| tags.iter().zip(d).map(|(t, n)| (t.clone(), *n)).collect())
                .collect();
            let consumers: Vec<Consumer<'_>> = usages.iter().enumerate()
                .map(|(i, u)| Consumer { piid: Uuid([i as u8; 16]), usage: u })
                .collect();
            let out = allocate(&p, &consumers);
            for (tag, n) in &p {
                let used = out.in_use.get(tag).unwrap_or(&0) + out.lent.get(tag).unwrap_or(&0);
                prop_assert!(used <= *n);
            }
            let given: u32 = out.served.values().sum();
            let taken: u32 = out.in_use.values().chain(out.lent.values()).sum();
            prop_assert_eq!(given, taken);
            for c in &consumers {
                for (tag, n) in c.usage {
                    prop_assert!(out.authorized(c.piid, tag) <= *n);
                }
            }
            prop_assert_eq!(allocate(&p, &consumers), out);
        }
    }
}
