//! The maintained per-account demand totals against a reference model: a straightforward
//! whole-account computation from the instance records, with its own copy of the SPEC §4
//! rules (tiers, HCS parents, lowest tier first, proportional shares).

use proptest::prelude::*;

use super::*;
use crate::wire::GrantStatus;
use catalogue::*;

/// Tier chains, lowest first, as SPEC §4 lists them.
const CHAINS: [&[&str]; 2] = [
    &[
        UCM_ESSENTIAL,
        UCM_BASIC,
        UCM_ENHANCED,
        UCM_ENHANCED_PLUS,
        UCM_CUWL,
    ],
    &[HCS_UCM_FOUNDATION, HCS_UCM_STANDARD],
];

/// SPEC §4's HCS map, Foundation before Standard.
fn parents(tag: &str) -> Vec<&'static str> {
    match tag {
        t if t == UCM_BASIC || t == UCM_ESSENTIAL || t == UCM_ENHANCED => {
            vec![HCS_UCM_FOUNDATION, HCS_UCM_STANDARD]
        }
        t if t == UCM_CUWL || t == UCM_ENHANCED_PLUS => vec![HCS_UCM_STANDARD],
        t if t == UCM_TELEPRESENCE_ROOM => vec![HCS_UCM_TELEPRESENCE_ROOM],
        t if t == CUC_BASIC_MESSAGING => vec![HCS_CUC_BASIC],
        t if t == CUC_ENHANCED_MESSAGING => vec![HCS_CUC_STANDARD],
        t if t == CER_USER => vec![HCS_CER_USER],
        _ => vec![],
    }
}

fn higher_tiers(tag: &str) -> Vec<&'static str> {
    for chain in CHAINS {
        if let Some(at) = chain.iter().position(|t| *t == tag) {
            return chain[at + 1..].to_vec();
        }
    }
    Vec::new()
}

/// Lowest tier first: a tag's place in its chain; other catalogue tags after, in any fixed
/// order (they compete with nobody but their own parents' other children, of which there are
/// none outside the chains).
fn order_key(tag: &str) -> (usize, usize, String) {
    for chain in CHAINS {
        if let Some(at) = chain.iter().position(|t| *t == tag) {
            return (at, 0, tag.to_string());
        }
    }
    (usize::MAX, 0, tag.to_string())
}

/// What the reference model says about one Virtual Account.
#[derive(Debug, Default, PartialEq, Eq)]
struct Expected {
    demand: BTreeMap<String, u64>,
    served: BTreeMap<String, u64>,
    in_use: BTreeMap<String, u64>,
    lent: BTreeMap<String, u64>,
}

impl Expected {
    /// The verdict and share for an instance reporting `count` of `tag`.
    fn grant(&self, known: bool, tag: &str, count: u32) -> (GrantStatus, u32) {
        if !known {
            return (GrantStatus::InvalidTag, 0);
        }
        let demand = self.demand.get(tag).copied().unwrap_or(0);
        let served = self.served.get(tag).copied().unwrap_or(0);
        if served >= demand {
            (GrantStatus::InCompliance, count)
        } else {
            let share = u64::from(count) * served / demand;
            (GrantStatus::OutOfCompliance, share as u32)
        }
    }
}

/// The whole account from its instances' records.
fn reference(m: &Manager, va: &VirtualAccountId) -> Expected {
    let account = m.account_of(va);
    let mut out = Expected::default();
    for info in m.instances().iter().filter(|i| &i.virtual_account == va) {
        for (tag, n) in &info.usage {
            if account.knows(tag) {
                *out.demand.entry(tag.clone()).or_insert(0) += u64::from(*n);
            }
        }
    }
    let mut left: BTreeMap<String, u64> = account
        .pools
        .iter()
        .map(|(t, p)| (t.clone(), u64::from(p.purchased)))
        .collect();
    let mut tags: Vec<String> = out.demand.keys().cloned().collect();
    tags.sort_by_key(|t| order_key(t));
    let mut take = |from: &str, want: u64, served: &mut u64| -> u64 {
        let pool = left.entry(from.to_string()).or_insert(0);
        let got = want.saturating_sub(*served).min(*pool);
        *pool -= got;
        *served += got;
        got
    };
    let mut served: BTreeMap<String, u64> = BTreeMap::new();
    for tag in &tags {
        let want = out.demand[tag];
        let s = served.entry(tag.clone()).or_insert(0);
        let got = take(tag, want, s);
        if got > 0 {
            *out.in_use.entry(tag.clone()).or_insert(0) += got;
        }
    }
    for lenders in [higher_tiers as fn(&str) -> Vec<&'static str>, parents] {
        for tag in &tags {
            let want = out.demand[tag];
            for lender in lenders(tag) {
                let s = served.entry(tag.clone()).or_insert(0);
                let got = take(lender, want, s);
                if got > 0 {
                    *out.lent.entry(lender.to_string()).or_insert(0) += got;
                }
            }
        }
    }
    out.served = served;
    out
}

const OWN: &str = "regid.2020-01.com.cisco.Own,1.0_3585abe5-bf6a-49ed-a8d6-a17463d0e734";
const STRANGER: &str = "regid.2020-01.com.cisco.Stranger,1.0_3585abe5-bf6a-49ed-a8d6-a17463d0e734";

/// The tags the fleets use: both tier chains, every HCS parent, a pooled own tag and one
/// nobody knows.
const TAGS: [&str; 11] = [
    UCM_ESSENTIAL,
    UCM_BASIC,
    UCM_ENHANCED,
    UCM_ENHANCED_PLUS,
    UCM_CUWL,
    UCM_TELEPRESENCE_ROOM,
    HCS_UCM_FOUNDATION,
    HCS_UCM_STANDARD,
    HCS_UCM_TELEPRESENCE_ROOM,
    OWN,
    STRANGER,
];

#[derive(Clone, Debug)]
enum Step {
    Pool {
        va: u8,
        tag: u8,
        count: u32,
    },
    Register {
        device: u8,
        va: u8,
        new_key: bool,
    },
    Report {
        device: u8,
        sequence: u64,
        usage: Vec<(u8, u32)>,
    },
    Deregister(u8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => (0u8..2, 0u8..10, 0u32..8).prop_map(|(va, tag, count)| Step::Pool { va, tag, count }),
        1 => (0u8..6, 0u8..2, any::<bool>()).prop_map(|(device, va, new_key)| Step::Register {
            device,
            va,
            new_key
        }),
        4 => (
            0u8..6,
            0u64..6,
            proptest::collection::vec((0u8..11, 0u32..6), 0..5)
        )
            .prop_map(|(device, sequence, usage)| Step::Report {
                device,
                sequence,
                usage
            }),
        1 => (0u8..6).prop_map(Step::Deregister),
    ]
}

/// Checks every account's maintained totals, allocation and every instance's share against
/// the reference.
fn check(m: &Manager) -> Result<(), TestCaseError> {
    for va in m.virtual_accounts() {
        let expected = reference(m, &va);
        let got = m.allocation_of(&va);
        let wide = |b: &BTreeMap<String, u32>| -> BTreeMap<String, u64> {
            b.iter().map(|(t, n)| (t.clone(), u64::from(*n))).collect()
        };
        prop_assert_eq!(&got.demand, &expected.demand, "demand of {}", va);
        let served: BTreeMap<String, u64> = expected
            .served
            .iter()
            .filter(|(t, _)| expected.demand.contains_key(*t))
            .map(|(t, n)| (t.clone(), *n))
            .collect();
        prop_assert_eq!(&got.served, &served, "served of {}", va);
        prop_assert_eq!(
            wide(&got.in_use),
            expected.in_use.clone(),
            "in use of {}",
            va
        );
        prop_assert_eq!(wide(&got.lent), expected.lent.clone(), "lent of {}", va);
        let account = m.account_of(&va);
        for info in m.instances().iter().filter(|i| i.virtual_account == va) {
            for (tag, n) in &info.usage {
                let known = account.knows(tag);
                let (status, share) = expected.grant(known, tag, *n);
                let fully = got.fully_served(tag);
                let got_status = if !known {
                    GrantStatus::InvalidTag
                } else if fully {
                    GrantStatus::InCompliance
                } else {
                    GrantStatus::OutOfCompliance
                };
                prop_assert_eq!(got_status, status);
                if known {
                    prop_assert_eq!(got.authorized(tag, *n), share);
                }
            }
        }
        for line in m.licenses(&va) {
            let tag = line.tag.as_str();
            prop_assert_eq!(
                u64::from(line.in_use),
                expected.in_use.get(tag).copied().unwrap_or(0)
            );
            prop_assert_eq!(
                u64::from(line.lent_to_lower),
                expected.lent.get(tag).copied().unwrap_or(0)
            );
        }
    }
    Ok(())
}

fn run(steps: &[Step]) -> Result<(), TestCaseError> {
    let mut m = manager();
    m.add_smart_account("Tenant").unwrap();
    let vas = [
        m.default_virtual_account(),
        m.add_virtual_account("Tenant", "Second").unwrap(),
    ];
    let own = tag(OWN);
    for va in &vas {
        m.add_licenses(va, &own, 0, Some("Own"), None).unwrap();
    }
    let tokens: Vec<Token> = vas
        .iter()
        .map(|va| m.create_token(va, TokenOptions::default(), t0()).unwrap())
        .collect();
    let mut devices: Vec<Device> = (1..=6).map(Device::new).collect();
    let mut seeds = 100u8;
    for step in steps {
        match step.clone() {
            Step::Pool { va, tag: t, count } => {
                m.add_licenses(
                    &vas[usize::from(va)],
                    &tag(TAGS[usize::from(t)]),
                    count,
                    None,
                    None,
                )
                .unwrap();
            }
            Step::Register {
                device,
                va,
                new_key,
            } => {
                let d = &mut devices[usize::from(device)];
                if new_key {
                    seeds = seeds.wrapping_add(1);
                    d.key = DeviceKey::from_seed([seeds; 32]);
                }
                let body = d.register_body(&tokens[usize::from(va)]);
                let (raw, _) = d.request(body, t0());
                let answer = m.handle(&raw, t0());
                let parsed = decode_response(&answer, MAX_REQUEST_LEN).unwrap();
                if parsed.response.status == crate::wire::ResponseStatus::Ok {
                    d.piid = parsed.response.piid;
                }
            }
            Step::Report {
                device,
                sequence,
                usage,
            } => {
                let d = &mut devices[usize::from(device)];
                let mut lines: BTreeMap<&str, u32> = BTreeMap::new();
                for (t, n) in usage {
                    lines.insert(TAGS[usize::from(t)], n);
                }
                let lines: Vec<(&str, u32)> = lines.into_iter().collect();
                let (raw, nonce) = d.request(usage_body(sequence, &lines), t0());
                let answer = m.handle(&raw, t0());
                let parsed = decode_response(&answer, MAX_REQUEST_LEN).unwrap();
                if parsed.response.status == crate::wire::ResponseStatus::Ok {
                    let g = grant(verify(&m, &answer, RequestKind::Authorize, &nonce, d.piid));
                    // The answer agrees with the reference for this instance.
                    let info = m
                        .instances()
                        .into_iter()
                        .find(|i| Some(i.piid) == d.piid)
                        .unwrap();
                    let expected = reference(&m, &info.virtual_account);
                    let account = m.account_of(&info.virtual_account);
                    prop_assert_eq!(g.entries.len(), info.usage.len());
                    for e in &g.entries {
                        let c = e.content.clone().unwrap();
                        let (status, share) =
                            expected.grant(account.knows(&e.tag), &e.tag, c.requested);
                        prop_assert_eq!((c.status, c.authorized), (status, share), "{}", e.tag);
                    }
                }
            }
            Step::Deregister(device) => {
                let d = &mut devices[usize::from(device)];
                let (raw, _) = d.request(RequestBody::deregister(), t0());
                m.handle(&raw, t0());
            }
        }
        check(&m)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn maintained_totals_agree_with_the_whole_account_reference(
        steps in proptest::collection::vec(step(), 1..40),
    ) {
        run(&steps)?;
    }
}

#[test]
fn the_reference_agrees_on_a_fleet_short_of_everything() {
    // A fixed case exercising substitution, both HCS parents and proportional shares.
    let steps = vec![
        Step::Pool {
            va: 0,
            tag: 3,
            count: 2,
        },
        Step::Pool {
            va: 0,
            tag: 6,
            count: 3,
        },
        Step::Pool {
            va: 0,
            tag: 7,
            count: 1,
        },
        Step::Register {
            device: 0,
            va: 0,
            new_key: false,
        },
        Step::Register {
            device: 1,
            va: 0,
            new_key: false,
        },
        Step::Report {
            device: 0,
            sequence: 1,
            usage: vec![(0, 3), (2, 2), (4, 1)],
        },
        Step::Report {
            device: 1,
            sequence: 1,
            usage: vec![(1, 4), (2, 3), (9, 1), (10, 2)],
        },
        Step::Report {
            device: 0,
            sequence: 2,
            usage: vec![(0, 3), (2, 2), (4, 1)],
        },
        Step::Deregister(1),
        Step::Report {
            device: 0,
            sequence: 3,
            usage: vec![(0, 3), (2, 2), (4, 1)],
        },
    ];
    run(&steps).unwrap();
}
