//! The scenario builder reaches every state it promises by driving the real agent (each
//! terminal method asserts its state), and each state behaves as SPEC says from there.

mod common;

use common::*;
use smart_agent::{AuthorizationState, RegistrationState, TagStatus};

fn base() -> Scenario {
    Scenario::new().pool(ENHANCED, 10).usage(ENHANCED, 5)
}

#[test]
fn evaluation_counts_down_while_a_tag_is_in_use() {
    let mut sim = base().evaluation();
    sim.advance(days(10));
    assert_eq!(sim.status().evaluation.remaining, days(80));
}

#[test]
fn pending_retries_every_15_minutes_and_registers_once_the_manager_answers() {
    let mut sim = base().pending();
    let (next, _) = sim.agent.poll_timeout().unwrap();
    assert_eq!(next, sim.now + minutes(15));
    sim.link = Link::Up;
    sim.advance(minutes(15));
    assert_eq!(
        sim.status().registration.state,
        RegistrationState::Registered
    );
}

#[test]
fn failed_allows_a_new_registration() {
    let mut sim = base().failed();
    let token = sim.token();
    sim.register(&token);
    assert_eq!(
        sim.status().registration.state,
        RegistrationState::Registered
    );
}

#[test]
fn a_failing_renewal_recovers_at_its_retry_once_the_manager_is_back() {
    let mut sim = base().failing_renewal();
    sim.link = Link::Up;
    sim.advance(minutes(15));
    assert_eq!(
        sim.status().authorization.state,
        AuthorizationState::Authorized
    );
}

#[test]
fn an_expired_authorization_shows_every_tag_in_use_expired() {
    let sim = base().authorization_expired();
    assert_eq!(sim.status().entitlements[0].status, TagStatus::AuthExpired);
}

#[test]
fn an_expired_evaluation_shows_every_tag_in_use_eval_expired() {
    let sim = base().evaluation_expired();
    assert_eq!(sim.status().entitlements[0].status, TagStatus::EvalExpired);
}

#[test]
fn keys_rotated_under_a_restored_agent_leave_it_not_applicable_until_an_answer() {
    let mut sim = base().restored_under_rotated_keys();
    sim.advance(minutes(15)); // the retry, with the manager reachable
    assert_eq!(
        sim.status().authorization.state,
        AuthorizationState::Authorized
    );
}
