//! Allocation as the agent sees it (SPEC §4): substitution, dual parenting, partial service;
//! and privacy of the host identity (SPEC §8).

mod common;

use common::*;
use smart_agent::manager::catalogue::HCS_UCM_FOUNDATION;
use smart_agent::{AuthorizationState, HostIdentity, TagStatus};

fn registered_using(pools: &[(&'static str, u32)], usage: &[(&'static str, u32)]) -> Sim {
    let scenario = pools
        .iter()
        .fold(Scenario::new(), |s, (t, n)| s.pool(t, *n));
    usage
        .iter()
        .fold(scenario, |s, (t, n)| s.usage(t, *n))
        .registered()
}

#[test]
fn enhanced_is_served_from_enhanced_plus_by_substitution() {
    let sim = registered_using(&[(ENHANCED_PLUS, 10)], &[(ENHANCED, 4)]);
    let st = sim.status();
    assert_eq!(st.authorization.state, AuthorizationState::Authorized);
    assert_eq!(st.entitlements[0].status, TagStatus::InCompliance);
    let lines = sim.manager.licenses(&sim.va());
    let plus = lines
        .iter()
        .find(|l| l.tag.as_str() == ENHANCED_PLUS)
        .unwrap();
    assert_eq!((plus.in_use, plus.lent_to_lower, plus.balance), (0, 4, 6));
}

#[test]
fn basic_is_served_from_hcs_foundation_by_dual_parenting() {
    let sim = registered_using(&[(HCS_UCM_FOUNDATION, 5)], &[(BASIC, 2)]);
    let st = sim.status();
    assert_eq!(st.authorization.state, AuthorizationState::Authorized);
    assert_eq!(st.entitlements[0].status, TagStatus::InCompliance);
    let lines = sim.manager.licenses(&sim.va());
    let foundation = lines
        .iter()
        .find(|l| l.tag.as_str() == HCS_UCM_FOUNDATION)
        .unwrap();
    assert_eq!(foundation.lent_to_lower, 2);
}

#[test]
fn own_pool_is_used_before_substitution() {
    let sim = registered_using(&[(ENHANCED, 3), (ENHANCED_PLUS, 10)], &[(ENHANCED, 5)]);
    assert_eq!(sim.status().entitlements[0].status, TagStatus::InCompliance);
    let lines = sim.manager.licenses(&sim.va());
    let own = lines.iter().find(|l| l.tag.as_str() == ENHANCED).unwrap();
    let plus = lines
        .iter()
        .find(|l| l.tag.as_str() == ENHANCED_PLUS)
        .unwrap();
    assert_eq!((own.in_use, plus.lent_to_lower), (3, 2));
}

#[test]
fn partly_served_tag_is_out_of_compliance() {
    let sim = registered_using(&[(ENHANCED, 3), (BASIC, 10)], &[(ENHANCED, 5), (BASIC, 2)]);
    let st = sim.status();
    assert_eq!(st.authorization.state, AuthorizationState::OutOfCompliance);
    assert_eq!(st.entitlements[0].status, TagStatus::OutOfCompliance);
    assert_eq!(st.entitlements[1].status, TagStatus::InCompliance);
    // Lower tiers never serve higher ones.
    let lines = sim.manager.licenses(&sim.va());
    let basic = lines.iter().find(|l| l.tag.as_str() == BASIC).unwrap();
    assert_eq!(basic.lent_to_lower, 0);
}

#[test]
fn tag_unknown_to_the_manager_is_invalid_tag_and_out_of_compliance() {
    let unknown = "regid.2020-01.com.cisco.UCM_Imaginary,12.0_00000000-0000-4000-8000-000000000001";
    let sim = registered_using(&[(ENHANCED, 10)], &[(ENHANCED, 1), (unknown, 1)]);
    let st = sim.status();
    assert_eq!(st.entitlements[1].status, TagStatus::InvalidTag);
    assert_eq!(
        st.entitlements[1]
            .status
            .text(smart_agent::Vocabulary::Expressway),
        "Invalid-tag"
    );
    assert_eq!(st.authorization.state, AuthorizationState::OutOfCompliance);
}

#[test]
fn count_zero_tags_show_init_with_no_display_name() {
    let sim = registered_using(&[(ENHANCED, 10)], &[(ENHANCED, 5), (CUWL, 0)]);
    let st = sim.status();
    assert_eq!(st.entitlements[1].status, TagStatus::Init);
    assert_eq!(st.entitlements[1].display_name, None);
    assert_eq!(st.entitlements[1].description, None);
    assert_eq!(st.entitlements[1].version, "12.0");
}

fn received_text(sim: &Sim) -> String {
    sim.received
        .iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect()
}

#[test]
fn host_name_and_ip_reach_the_manager_only_while_privacy_is_off() {
    let mut sim = Sim::new();
    sim.pool(ENHANCED, 10);
    sim.declare_use(ENHANCED, 1);
    let host = HostIdentity::new("ucm-pub.example.com", "192.0.2.10".parse().unwrap()).unwrap();
    sim.agent.set_host(host, sim.now);
    let token = sim.token();
    sim.register(&token);
    let sent = received_text(&sim);
    assert!(sent.contains("ucm-pub.example.com"));
    assert!(sent.contains("192.0.2.10"));

    let mut private = Sim::new();
    private.pool(ENHANCED, 10);
    private.declare_use(ENHANCED, 1);
    let host = HostIdentity::new("ucm-pub.example.com", "192.0.2.10".parse().unwrap()).unwrap();
    private.agent.set_host(host, private.now);
    private.agent.set_privacy(true, private.now);
    let token = private.token();
    private.register(&token);
    private.agent.renew_id(private.now).unwrap();
    private.pump();
    let sent = received_text(&private);
    assert!(!sent.is_empty());
    assert!(!sent.contains("ucm-pub.example.com"));
    assert!(!sent.contains("192.0.2.10"));
    assert_eq!(private.manager.instances()[0].hostname, None);
}

#[test]
fn status_serializes_with_stable_field_names() {
    let sim = registered_using(&[(ENHANCED, 10)], &[(ENHANCED, 5), (CUWL, 0)]);
    let xml = quick_xml::se::to_string_with_root("status", &sim.status()).unwrap();
    for field in [
        "<registration>",
        "<state>Registered</state>",
        "<smart_account>",
        "<authorization>",
        "<state>Authorized</state>",
        "<deadline>",
        "<evaluation>",
        "<remaining>7776000</remaining>",
        "<entitlements>",
        "<status>InCompliance</status>",
        "<udi>PID:UCM,SN:37624,UUID:6fe83addc80240bc92dc071ac7a37624</udi>",
    ] {
        assert!(xml.contains(field), "{field} missing in {xml}");
    }
}

#[test]
fn a_later_outstanding_report_keeps_the_last_answered_status() {
    let mut sim = registered_using(&[(ENHANCED, 6)], &[(ENHANCED, 5)]);
    sim.agent.set_usage(&tag(ENHANCED), 8, sim.now).unwrap();
    assert_eq!(sim.status().entitlements[0].status, TagStatus::InCompliance);
    sim.now += minutes(1);
    sim.agent.handle_timeout(sim.now);
    let tx = sim.agent.poll_transmit(sim.now).unwrap();
    assert_eq!(sim.status().entitlements[0].status, TagStatus::InCompliance);
    let answer = sim.manager.handle(&tx.body, sim.now);
    sim.agent.handle_response(tx.id, Ok(answer), sim.now);
    assert_eq!(
        sim.status().entitlements[0].status,
        TagStatus::OutOfCompliance
    );
}
