//! Usage reports, grants and the license report.

use super::*;
use crate::wire::GrantStatus;
use catalogue::{
    EXPY_RMS, HCS_UCM_FOUNDATION, UCM_BASIC, UCM_CUWL, UCM_ENHANCED, UCM_ENHANCED_PLUS,
    UCM_ESSENTIAL,
};

#[test]
fn grant_names_each_tag_in_use_with_its_display_name() {
    let (mut m, mut d, _) = registered(&[(UCM_ENHANCED, 10), (UCM_BASIC, 10)]);
    let later = t0() + TimeDelta::minutes(1);
    let g = grant(authorize(
        &mut m,
        &mut d,
        7,
        &[(UCM_ENHANCED, 5), (UCM_BASIC, 2), (UCM_CUWL, 0)],
        later,
    ));
    assert_eq!(Some(g.piid), d.piid);
    assert_eq!(g.udi, d.udi);
    assert_eq!(g.sequence, 7);
    assert_eq!(g.issued_at, later);
    assert_eq!(g.not_after, later + days(90));
    assert_eq!(g.environment, Environment::Development);
    // Count-0 tags are not in the grant (SPEC §4).
    assert_eq!(g.entries.len(), 2);
    let e = entry(&g, UCM_ENHANCED);
    assert_eq!((e.requested, e.authorized), (5, 5));
    assert_eq!(e.status, GrantStatus::InCompliance);
    assert_eq!(
        e.display_name.as_deref(),
        Some("UC Manager Enhanced License (12.x)")
    );
    assert_eq!(
        e.description.as_deref(),
        Some("UC Manager Enhanced License")
    );
    let info = &m.instances()[0];
    assert_eq!(info.usage.len(), 2);
    assert_eq!(info.usage[UCM_ENHANCED], 5);
    assert_eq!(info.last_usage_sequence, Some(7));
    assert_eq!(info.usage_reports_counted, 1);
    assert_eq!(info.last_contact, later);
}

#[test]
fn partly_served_tag_is_out_of_compliance() {
    let (mut m, mut d, _) = registered(&[(EXPY_RMS, 3)]);
    let g = grant(authorize(&mut m, &mut d, 1, &[(EXPY_RMS, 5)], t0()));
    let e = entry(&g, EXPY_RMS);
    assert_eq!((e.requested, e.authorized), (5, 3));
    assert_eq!(e.status, GrantStatus::OutOfCompliance);
    assert_eq!(
        e.display_name.as_deref(),
        Some("Cisco Expressway Rich Media Session License")
    );
}

#[test]
fn catalogue_tag_without_a_pool_is_out_of_compliance() {
    let (mut m, mut d, _) = registered(&[]);
    let g = grant(authorize(&mut m, &mut d, 1, &[(UCM_BASIC, 1)], t0()));
    let e = entry(&g, UCM_BASIC);
    assert_eq!((e.authorized, e.status), (0, GrantStatus::OutOfCompliance));
    assert_eq!(
        e.display_name.as_deref(),
        Some("UC Manager Basic License (12.x)")
    );
}

#[test]
fn unknown_tag_is_invalid_tag() {
    let own = "regid.2020-01.com.cisco.Own,1.0_3585abe5-bf6a-49ed-a8d6-a17463d0e734";
    let stranger = "regid.2020-01.com.cisco.Stranger,1.0_3585abe5-bf6a-49ed-a8d6-a17463d0e734";
    let (mut m, mut d, _) = registered(&[]);
    let va = m.default_virtual_account();
    m.add_licenses(&va, &tag(own), 2, Some("Own License"), Some("Ours"))
        .unwrap();
    let g = grant(authorize(
        &mut m,
        &mut d,
        1,
        &[(own, 1), (stranger, 4)],
        t0(),
    ));
    let e = entry(&g, stranger);
    assert_eq!((e.requested, e.authorized), (4, 0));
    assert_eq!(e.status, GrantStatus::InvalidTag);
    assert_eq!(e.display_name, None);
    let e = entry(&g, own);
    assert_eq!(e.status, GrantStatus::InCompliance);
    assert_eq!(e.display_name.as_deref(), Some("Own License"));
    assert_eq!(e.description.as_deref(), Some("Ours"));
}

#[test]
fn enhanced_is_served_from_enhanced_plus_by_substitution() {
    let (mut m, mut d, _) = registered(&[(UCM_ENHANCED, 1), (UCM_ENHANCED_PLUS, 4)]);
    let g = grant(authorize(&mut m, &mut d, 1, &[(UCM_ENHANCED, 3)], t0()));
    let e = entry(&g, UCM_ENHANCED);
    assert_eq!((e.authorized, e.status), (3, GrantStatus::InCompliance));
}

#[test]
fn basic_is_served_from_hcs_foundation_by_dual_parenting() {
    let (mut m, mut d, _) = registered(&[(HCS_UCM_FOUNDATION, 2)]);
    let g = grant(authorize(&mut m, &mut d, 1, &[(UCM_BASIC, 2)], t0()));
    let e = entry(&g, UCM_BASIC);
    assert_eq!((e.authorized, e.status), (2, GrantStatus::InCompliance));
    let line = &m.licenses(&m.default_virtual_account())[0];
    assert_eq!(line.tag.as_str(), HCS_UCM_FOUNDATION);
    assert_eq!((line.in_use, line.lent_to_lower, line.balance), (0, 2, 0));
}

#[test]
fn licenses_report_lists_substitution() {
    // The seed's row (004:590): Enhanced, 100 purchased, 11 in use, To Lower -2, balance 87.
    let (mut m, mut d, _) = registered(&[(UCM_ENHANCED, 100)]);
    grant(authorize(
        &mut m,
        &mut d,
        1,
        &[(UCM_ENHANCED, 11), (UCM_BASIC, 2)],
        t0(),
    ));
    let lines = m.licenses(&m.default_virtual_account());
    assert_eq!(lines.len(), 1);
    let line = &lines[0];
    assert_eq!(line.tag.as_str(), UCM_ENHANCED);
    assert_eq!(
        line.display_name.as_deref(),
        Some("UC Manager Enhanced License (12.x)")
    );
    assert_eq!(
        (
            line.purchased,
            line.in_use,
            line.lent_to_lower,
            line.balance
        ),
        (100, 11, 2, 87)
    );
    assert!(m.licenses(&VirtualAccountId::new("no", "such")).is_empty());
}

#[test]
fn other_instances_usage_counts_against_the_pool() {
    let (mut m, mut a, token) = registered(&[(UCM_ESSENTIAL, 3)]);
    let mut b = Device::new(2);
    identity(register(&mut m, &mut b, &token, t0()));
    grant(authorize(&mut m, &mut a, 1, &[(UCM_ESSENTIAL, 2)], t0()));
    let g = grant(authorize(&mut m, &mut b, 1, &[(UCM_ESSENTIAL, 2)], t0()));
    assert_eq!(entry(&g, UCM_ESSENTIAL).authorized, 1);
    // Releasing A's usage (count 0) frees its licenses for B.
    let g = grant(authorize(&mut m, &mut a, 2, &[(UCM_ESSENTIAL, 0)], t0()));
    assert!(g.entries.is_empty());
    assert!(m.instances()[0].usage.is_empty());
    let g = grant(authorize(&mut m, &mut b, 2, &[(UCM_ESSENTIAL, 2)], t0()));
    assert_eq!(entry(&g, UCM_ESSENTIAL).status, GrantStatus::InCompliance);
}

#[test]
fn repeated_usage_sequence_is_counted_once() {
    let (mut m, mut d, _) = registered(&[(UCM_BASIC, 10)]);
    grant(authorize(&mut m, &mut d, 4, &[(UCM_BASIC, 3)], t0()));
    // The same report resent (fresh nonce, same sequence), then a stale one.
    let g = grant(authorize(&mut m, &mut d, 4, &[(UCM_BASIC, 3)], t0()));
    assert_eq!(g.sequence, 4);
    assert_eq!(entry(&g, UCM_BASIC).authorized, 3);
    let g = grant(authorize(&mut m, &mut d, 2, &[(UCM_BASIC, 9)], t0()));
    assert_eq!(g.sequence, 2);
    assert_eq!(
        entry(&g, UCM_BASIC).requested,
        3,
        "answered from recorded usage"
    );
    let info = &m.instances()[0];
    assert_eq!(info.usage_reports_counted, 1);
    assert_eq!(info.last_usage_sequence, Some(4));
    assert_eq!(info.usage[UCM_BASIC], 3);
    grant(authorize(&mut m, &mut d, 5, &[(UCM_BASIC, 9)], t0()));
    let info = &m.instances()[0];
    assert_eq!(info.usage_reports_counted, 2);
    assert_eq!(info.usage[UCM_BASIC], 9);
}

#[test]
fn usage_report_naming_a_tag_twice_is_malformed() {
    let (mut m, mut d, _) = registered(&[(UCM_BASIC, 10)]);
    let (code, _) = failure(authorize(
        &mut m,
        &mut d,
        1,
        &[(UCM_BASIC, 3), (UCM_BASIC, 1)],
        t0(),
    ));
    assert_eq!(code, codes::MALFORMED);
    let (code, _) = failure(authorize(&mut m, &mut d, 1, &[("not a tag", 1)], t0()));
    assert_eq!(code, codes::MALFORMED);
    assert_eq!(m.instances()[0].usage_reports_counted, 0);
}
