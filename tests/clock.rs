//! Clock handling (SPEC §11): effective time = max(now, highest seen); a clock moved back
//! extends nothing; the manager's signed time only feeds a skew event.

mod common;

use common::*;
use smart_agent::{AuthorizationState, EventKind};

fn skew_events(sim: &mut Sim) -> Vec<EventKind> {
    sim.take_events()
        .into_iter()
        .filter(|e| matches!(e.kind, EventKind::ClockSkew { .. }))
        .map(|e| e.kind)
        .collect()
}

#[test]
fn manager_time_two_hours_off_raises_a_clock_skew_event() {
    let mut sim = registered();
    sim.manager_offset = hours(2);
    sim.agent.renew_auth(sim.now).unwrap();
    sim.pump();
    let skew = skew_events(&mut sim);
    assert_eq!(
        skew,
        [EventKind::ClockSkew {
            manager_time: sim.now + hours(2),
            local_time: sim.now
        }]
    );
    // The manager's time feeds nothing else: the renewal is scheduled from our clock.
    assert_eq!(
        sim.status().authorization.next_communication,
        Some(sim.now + days(30))
    );
    // Raised once per episode.
    sim.agent.renew_auth(sim.now).unwrap();
    sim.pump();
    assert!(skew_events(&mut sim).is_empty());
}

#[test]
fn manager_time_59_minutes_off_raises_nothing() {
    let mut sim = registered();
    sim.manager_offset = -minutes(59);
    sim.agent.renew_auth(sim.now).unwrap();
    sim.pump();
    assert!(skew_events(&mut sim).is_empty());
}

#[test]
fn clock_set_back_two_hours_raises_clock_changed_and_extends_nothing() {
    let mut sim = Sim::new();
    sim.declare_use(ENHANCED, 1);
    sim.advance(days(10));
    let high = sim.now;
    let before = sim.status();
    sim.take_events();
    sim.agent.handle_timeout(high - hours(2));
    let events: Vec<_> = std::iter::from_fn(|| sim.agent.poll_event()).collect();
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].kind,
        EventKind::ClockChanged {
            from: high,
            to: high - hours(2)
        }
    );
    let st = sim.agent.status(high - hours(2));
    assert_eq!(st.evaluation.remaining, before.evaluation.remaining);
    // Time resumes from the highest seen, never from the earlier wall time.
    let st = sim.agent.status(high + hours(1));
    assert_eq!(
        st.evaluation.remaining,
        before.evaluation.remaining - hours(1)
    );
}

#[test]
fn clock_set_back_before_the_deadline_does_not_revive_an_expired_authorization() {
    let mut sim = registered();
    sim.link = Link::Down(refused());
    let deadline = sim.status().authorization.deadline.unwrap();
    sim.run_until(deadline + hours(3));
    assert_eq!(
        sim.status().authorization.state,
        AuthorizationState::AuthorizationExpired
    );
    sim.take_events();
    // The wall clock is set back to before the deadline.
    let back = deadline - hours(1);
    sim.agent.handle_timeout(back);
    let events: Vec<_> = std::iter::from_fn(|| sim.agent.poll_event()).collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(matches!(events[0].kind, EventKind::ClockChanged { .. }));
    let st = sim.agent.status(back);
    assert_eq!(
        st.authorization.state,
        AuthorizationState::AuthorizationExpired
    );
    assert_eq!(st.authorization.deadline, Some(deadline));
    // Nothing is raised again when the wall clock passes the deadline a second time.
    sim.agent.handle_timeout(deadline + minutes(30));
    assert!(std::iter::from_fn(|| sim.agent.poll_event())
        .all(|e| !matches!(e.kind, EventKind::AuthorizationExpired)));
}

#[test]
fn clock_set_back_59_minutes_raises_nothing() {
    let mut sim = Sim::new();
    sim.declare_use(ENHANCED, 1);
    sim.advance(days(1));
    sim.take_events();
    sim.agent.handle_timeout(sim.now - minutes(59));
    assert!(sim.agent.poll_event().is_none());
    assert_eq!(
        sim.agent.status(sim.now - minutes(59)).evaluation.remaining,
        days(89)
    );
}

#[test]
fn forward_jumps_count_for_evaluation() {
    let mut sim = Sim::new();
    sim.declare_use(ENHANCED, 1);
    sim.agent.handle_timeout(sim.now + days(40));
    assert_eq!(
        sim.agent.status(sim.now + days(40)).evaluation.remaining,
        days(50)
    );
}

#[test]
fn extreme_wall_times_never_panic() {
    use chrono::{DateTime, Utc};
    for now in [DateTime::<Utc>::MAX_UTC, DateTime::<Utc>::MIN_UTC] {
        let mut sim = Sim::new();
        sim.pool(ENHANCED, 10);
        sim.declare_use(ENHANCED, 1);
        let token = sim.token();
        sim.register(&token);
        sim.now = now;
        sim.agent.handle_timeout(now);
        sim.agent.set_usage(&tag(ENHANCED), 2, now).unwrap();
        sim.pump();
        let _ = sim.agent.poll_timeout();
        let _ = sim.agent.status(now);
        let snapshot = sim.agent.snapshot();
        smart_agent::Agent::restore(&snapshot, config(UDI, sim.manager.trust_anchors(), 1), now)
            .unwrap();
    }
}
