//! At the last storable second (9999-12-31T23:59:59Z) time stops: every retry and renewal
//! saturates to that second. The agent must still return from `poll_transmit` (each operation
//! is tried once there, not for ever) and its status must agree with itself (an evaluation
//! that cannot run out is not shown as expired).
#![cfg(feature = "manager")]

mod common;

use chrono::TimeDelta;
use common::*;
use smart_agent::time::last_storable;
use smart_agent::AuthorizationState;

#[test]
fn a_pending_registration_at_the_last_storable_second_is_tried_once_not_for_ever() {
    let mut sim = Sim::new();
    sim.now = last_storable() - TimeDelta::hours(1);
    sim.declare_use(ENHANCED, 1);
    sim.link = Link::Down(refused());
    let token = sim.token();
    sim.register(&token);
    // `run_until` and `pump` panic if the agent keeps transmitting.
    sim.run_until(last_storable());
    assert_eq!(sim.now, last_storable());
    assert!(sim.agent.poll_transmit(sim.now).is_none());
    let due = sim.agent.poll_timeout();
    assert!(
        due.is_none_or(|(at, _)| at > sim.now),
        "still due at the end of time: {due:?}"
    );
    // And the next call, as after a restart, does not send it again either.
    sim.agent.handle_timeout(sim.now);
    assert!(sim.agent.poll_transmit(sim.now).is_none());
}

#[test]
fn renewals_at_the_last_storable_second_are_tried_once() {
    let mut sim = registered();
    // Registered at t0 (2027); jump to half a year before the end: renewals keep it up, then
    // everything saturates at the last second.
    sim.now = last_storable() - TimeDelta::days(200);
    sim.run_until(last_storable());
    assert!(sim.agent.poll_transmit(sim.now).is_none());
}

#[test]
fn an_evaluation_that_cannot_run_out_is_not_shown_as_expired_at_the_last_second() {
    // Registered 365 days before the end: the identity lapses at the last second, and
    // evaluation resumes there with all of its 90 days, which time can no longer consume.
    let mut sim = Sim::new();
    sim.now = last_storable() - TimeDelta::days(365);
    sim.pool(ENHANCED, 10);
    sim.declare_use(ENHANCED, 1);
    let token = sim.token();
    sim.register(&token);
    sim.link = Link::Down(refused());
    sim.run_until(last_storable());
    let status = sim.status();
    assert_eq!(status.authorization.state, AuthorizationState::EvalMode);
    assert_eq!(
        status.evaluation.expired_at, None,
        "{:?}",
        status.evaluation
    );
    assert!(status.evaluation.remaining > TimeDelta::zero());
}
