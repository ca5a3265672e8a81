//! The evaluation period (SPEC §5) in virtual time.

mod common;

use common::*;
use smart_agent::{Agent, AuthorizationState, EventKind, TagStatus};

#[test]
fn evaluation_counts_only_while_a_tag_is_in_use() {
    let mut sim = Sim::new();
    sim.agent.declare(tag(ENHANCED), sim.now);
    sim.advance(days(10));
    let st = sim.status();
    assert_eq!(st.authorization.state, AuthorizationState::NoLicensesInUse);
    assert!(!st.evaluation.in_use);
    assert_eq!(st.evaluation.remaining, days(90));
    assert_eq!(st.entitlements[0].status, TagStatus::Init);
    sim.agent.set_usage(&tag(ENHANCED), 3, sim.now).unwrap();
    sim.advance(days(5));
    assert_eq!(sim.status().evaluation.remaining, days(85));
    sim.agent.set_usage(&tag(ENHANCED), 0, sim.now).unwrap();
    sim.advance(days(5));
    let st = sim.status();
    assert_eq!(st.evaluation.remaining, days(85));
    assert_eq!(st.entitlements[0].status, TagStatus::Init);
}

#[test]
fn evaluation_counts_while_registered_until_the_first_successful_authorization() {
    let mut sim = Sim::new();
    sim.pool(ENHANCED, 10);
    sim.declare_use(ENHANCED, 2);
    let token = sim.token();
    // Registered, but every authorization fails: evaluation keeps counting.
    sim.agent
        .register(&token, smart_agent::Force::No, sim.now)
        .unwrap();
    let tx = sim.agent.poll_transmit(sim.now).unwrap();
    let answer = sim.manager.handle(&tx.body, sim.now);
    sim.agent.handle_response(tx.id, Ok(answer), sim.now);
    sim.link = Link::Down(refused());
    sim.advance(days(4));
    let st = sim.status();
    assert_eq!(
        st.registration.state,
        smart_agent::RegistrationState::Registered
    );
    assert_eq!(st.authorization.state, AuthorizationState::EvalMode);
    assert_eq!(st.entitlements[0].status, TagStatus::Waiting);
    assert!(st.evaluation.in_use);
    assert_eq!(st.evaluation.remaining, days(86));
    sim.link = Link::Up;
    sim.agent.renew_auth(sim.now).unwrap();
    sim.pump();
    sim.advance(days(4));
    let st = sim.status();
    assert_eq!(st.authorization.state, AuthorizationState::Authorized);
    assert!(!st.evaluation.in_use);
    assert_eq!(st.evaluation.remaining, days(86));
}

#[test]
fn evaluation_warns_at_30_7_and_1_days_then_expires() {
    let mut sim = Sim::new();
    let start = sim.now;
    sim.declare_use(ENHANCED, 1);
    sim.advance(days(100));
    let events: Vec<_> = sim
        .take_events()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::EvaluationWarning { days_left } => Some((e.at - start, days_left)),
            EventKind::EvaluationExpired => Some((e.at - start, 0)),
            _ => None,
        })
        .collect();
    assert_eq!(
        events,
        [(days(60), 30), (days(83), 7), (days(89), 1), (days(90), 0)]
    );
    let st = sim.status();
    assert_eq!(st.authorization.state, AuthorizationState::EvalExpired);
    assert_eq!(st.entitlements[0].status, TagStatus::EvalExpired);
    assert_eq!(st.evaluation.expired_at, Some(start + days(90)));
    assert!(!st.evaluation.in_use);
}

#[test]
fn evaluation_resumes_with_the_remaining_time_after_deregistration() {
    let mut sim = Sim::new();
    sim.pool(ENHANCED, 10);
    sim.declare_use(ENHANCED, 1);
    sim.advance(days(20));
    let token = sim.token();
    sim.register(&token);
    sim.advance(days(50));
    assert_eq!(sim.status().evaluation.remaining, days(70));
    sim.agent.deregister(sim.now).unwrap();
    sim.pump();
    sim.advance(days(10));
    let st = sim.status();
    assert_eq!(st.authorization.state, AuthorizationState::EvalMode);
    assert_eq!(st.evaluation.remaining, days(60));
    // Reregistering does not reset it either.
    let token = sim.token();
    sim.register(&token);
    sim.agent.deregister(sim.now).unwrap();
    sim.pump();
    assert_eq!(sim.status().evaluation.remaining, days(60));
}

#[test]
fn restore_does_not_reset_evaluation() {
    let mut sim = Sim::new();
    sim.declare_use(ENHANCED, 1);
    sim.advance(days(30));
    let snapshot = sim.agent.snapshot();
    // The product was down for five days.
    let later = sim.now + days(5);
    let agent = Agent::restore(
        &snapshot,
        config(UDI, sim.manager.trust_anchors(), 4),
        later,
    )
    .unwrap();
    assert_eq!(agent.status(later).evaluation.remaining, days(55));
}

#[test]
fn clock_set_back_does_not_extend_evaluation() {
    let mut sim = Sim::new();
    sim.declare_use(ENHANCED, 1);
    sim.advance(days(30));
    let high = sim.now;
    // The clock is set back by 20 days and runs on from there for 10 days.
    for d in 0..=10 {
        sim.agent.handle_timeout(high - days(20) + days(d));
    }
    assert_eq!(
        sim.agent.status(high - days(10)).evaluation.remaining,
        days(60)
    );
    // Once the wall clock passes the highest time seen, evaluation counts again.
    sim.agent.handle_timeout(high + days(1));
    assert_eq!(
        sim.agent.status(high + days(1)).evaluation.remaining,
        days(59)
    );
}

#[test]
fn expired_evaluation_stays_expired_after_deregistration() {
    let mut sim = Sim::new();
    sim.pool(ENHANCED, 10);
    sim.declare_use(ENHANCED, 1);
    sim.advance(days(95));
    let token = sim.token();
    sim.register(&token);
    assert_eq!(
        sim.status().authorization.state,
        AuthorizationState::Authorized
    );
    sim.agent.deregister(sim.now).unwrap();
    sim.pump();
    let st = sim.status();
    assert_eq!(st.authorization.state, AuthorizationState::EvalExpired);
    assert_eq!(st.evaluation.expired_at, Some(t0() + days(90)));
}
