//! Online licensing end to end in virtual time: registration, renewals, outages, lapses and
//! compliance, against the in-process reference manager.

mod common;

use chrono::TimeDelta;
use common::*;
use smart_agent::status::Outcome;
use smart_agent::wire::RequestKind;
use smart_agent::{AuthorizationState, RegistrationState, TagStatus};

#[test]
fn registration_authorizes_at_once_then_renews_every_30_days_and_identity_at_day_180() {
    let mut sim = Sim::new();
    sim.pool(ENHANCED, 10);
    sim.declare_use(ENHANCED, 5);
    let st = sim.status();
    assert_eq!(st.registration.state, RegistrationState::Unregistered);
    assert_eq!(st.authorization.state, AuthorizationState::EvalMode);
    assert!(st.evaluation.in_use);
    assert_eq!(st.entitlements[0].status, TagStatus::EvalMode);

    sim.advance(days(2));
    assert_eq!(sim.status().evaluation.remaining, days(88));
    let token = sim.token();
    let reg = sim.now;
    sim.register(&token);
    assert_eq!(
        transcript(&sim.take_events(), reg),
        [
            (TimeDelta::zero(), "Registered".to_string()),
            (TimeDelta::zero(), "Authorized".to_string()),
            (TimeDelta::zero(), "EntitlementStatusChanged".to_string()),
        ]
    );
    let st = sim.status();
    assert_eq!(st.registration.state, RegistrationState::Registered);
    assert_eq!(st.registration.expires, Some(reg + days(365)));
    assert_eq!(st.registration.next_renewal, Some(reg + days(180)));
    assert_eq!(st.authorization.state, AuthorizationState::Authorized);
    assert_eq!(st.authorization.since, Some(reg));
    assert_eq!(st.authorization.next_communication, Some(reg + days(30)));
    assert_eq!(st.authorization.deadline, Some(reg + days(90)));
    assert_eq!(st.entitlements[0].status, TagStatus::InCompliance);
    assert_eq!(
        st.entitlements[0].display_name.as_deref(),
        Some("UC Manager Enhanced License (12.x)")
    );
    // Evaluation stopped at the first successful authorization.
    assert!(!st.evaluation.in_use);
    assert_eq!(st.evaluation.remaining, days(88));

    sim.run_until(reg + days(200));
    let renewals: Vec<i64> = sim
        .attempts_of(RequestKind::Authorize, reg)
        .iter()
        .map(|d| d.num_days())
        .collect();
    assert_eq!(renewals, [0, 30, 60, 90, 120, 150, 180]);
    assert_eq!(sim.attempts_of(RequestKind::RenewId, reg), [days(180)]);
    let st = sim.status();
    assert_eq!(st.registration.expires, Some(reg + days(180 + 365)));
    assert_eq!(st.registration.next_renewal, Some(reg + days(360)));
    let last = st.registration.last_renewal.unwrap();
    assert_eq!(
        (last.at, last.outcome),
        (reg + days(180), Outcome::Succeeded)
    );
    assert_eq!(st.authorization.state, AuthorizationState::Authorized);
    assert_eq!(st.evaluation.remaining, days(88));
    let events = names(&sim.take_events());
    assert_eq!(events.iter().filter(|n| *n == "Authorized").count(), 6);
    assert_eq!(events.iter().filter(|n| *n == "IdentityRenewed").count(), 1);
}

#[test]
fn manager_unreachable_from_day_20_backs_off_expires_at_the_deadline_and_recovers() {
    let mut sim = Sim::new();
    sim.pool(ENHANCED, 10);
    sim.declare_use(ENHANCED, 5);
    let token = sim.token();
    sim.register(&token);
    let reg = sim.now;
    sim.run_until(reg + days(20));
    sim.link = Link::Down(refused());
    let due = reg + days(30);
    let deadline = reg + days(90);
    sim.run_until(deadline - TimeDelta::seconds(1));

    let offsets = sim.attempts_of(RequestKind::Authorize, due);
    let expected_start = [
        TimeDelta::zero(),
        minutes(15),
        minutes(45),
        minutes(105),
        minutes(225),
        minutes(465),
        minutes(945),
        minutes(1905),
        minutes(1905) + hours(24),
        minutes(1905) + hours(48),
    ];
    assert_eq!(offsets[..expected_start.len()], expected_start);
    // Capped at 24 h, never past the deadline.
    assert!(offsets.windows(2).all(|w| w[1] - w[0] <= hours(24)));
    let st = sim.status();
    assert_eq!(st.authorization.state, AuthorizationState::Authorized);
    assert_eq!(st.authorization.next_communication, Some(deadline));
    let last = st.authorization.last_communication.unwrap();
    assert_eq!(
        last.outcome,
        Outcome::Failed {
            reason: "The requested operation was not successful due to communication send error"
                .into()
        }
    );

    sim.run_until(deadline);
    assert_eq!(sim.attempts.last().unwrap().0, deadline);
    let st = sim.status();
    assert_eq!(
        st.authorization.state,
        AuthorizationState::AuthorizationExpired
    );
    assert_eq!(st.authorization.since, Some(deadline));
    assert_eq!(st.entitlements[0].status, TagStatus::AuthExpired);
    assert_eq!(
        st.authorization.next_communication,
        Some(deadline + hours(24))
    );
    let events = sim.take_events();
    let expired: Vec<_> = events
        .iter()
        .filter(|e| name(&e.kind) == "AuthorizationExpired")
        .collect();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].at, deadline);
    // The deadline itself changes the tag's status, and says so.
    assert!(events.iter().any(|e| e.at == deadline
        && e.kind
            == smart_agent::EventKind::EntitlementStatusChanged {
                tag: ENHANCED.to_string(),
                from: TagStatus::InCompliance,
                to: TagStatus::AuthExpired,
            }));
    let first_failure = events
        .iter()
        .find(|e| name(&e.kind) == "AuthorizationFailed")
        .unwrap();
    assert_eq!(
        first_failure.alarm().map(|a| a.name()),
        Some("SmartLicensingRenewAuthFailure")
    );
    assert_eq!(
        names(&events)
            .iter()
            .filter(|n| *n == "CommunicationFailure")
            .count(),
        1
    );

    // After the deadline: every 24 h until a success.
    sim.run_until(deadline + days(3) + hours(1));
    assert_eq!(
        sim.attempts_of(RequestKind::Authorize, deadline),
        [TimeDelta::zero(), days(1), days(2), days(3)]
    );
    sim.link = Link::Up;
    sim.run_until(deadline + days(4));
    let st = sim.status();
    assert_eq!(st.authorization.state, AuthorizationState::Authorized);
    assert_eq!(st.authorization.since, Some(deadline + days(4)));
    assert_eq!(st.authorization.deadline, Some(deadline + days(94)));
    let tail = names(&sim.take_events());
    assert!(tail.contains(&"CommunicationRestored".to_string()));
    assert!(tail.contains(&"Authorized".to_string()));
}

#[test]
fn identity_not_renewed_for_a_year_expires_registration_and_resumes_evaluation() {
    let mut sim = Sim::new();
    sim.pool(ENHANCED, 10);
    sim.declare_use(ENHANCED, 5);
    sim.advance(days(10));
    let token = sim.token();
    sim.register(&token);
    let reg = sim.now;
    sim.run_until(reg + days(90));
    sim.link = Link::Down(smart_agent::SendError::Timeout);
    let not_after = reg + days(365);
    sim.run_until(not_after - TimeDelta::seconds(1));
    let renew_attempts = sim.attempts_of(RequestKind::RenewId, reg);
    assert_eq!(renew_attempts[0], days(180));
    assert!(renew_attempts.iter().all(|a| reg + *a < not_after));
    let st = sim.status();
    assert_eq!(st.registration.state, RegistrationState::Registered);
    assert_eq!(
        st.authorization.state,
        AuthorizationState::AuthorizationExpired
    );
    assert_eq!(st.evaluation.remaining, days(80));
    let failure = sim
        .transcript
        .iter()
        .find(|e| name(&e.kind) == "IdentityRenewalFailed")
        .unwrap();
    assert_eq!(
        failure.alarm().map(|a| a.name()),
        Some("SmartLicensingRenewRegistrationFailure")
    );

    sim.run_until(not_after);
    let st = sim.status();
    assert_eq!(
        st.registration.state,
        RegistrationState::RegistrationExpired
    );
    assert_eq!(
        st.registration.state.text(smart_agent::Vocabulary::Cli),
        "UNREGISTERED - REGISTRATION EXPIRED"
    );
    assert_eq!(st.authorization.state, AuthorizationState::EvalMode);
    assert!(st.evaluation.in_use);
    assert_eq!(st.evaluation.remaining, days(80));
    let lapse: Vec<_> = sim
        .transcript
        .iter()
        .filter(|e| name(&e.kind) == "RegistrationExpired")
        .collect();
    assert_eq!(lapse.len(), 1);
    assert_eq!(lapse[0].at, not_after);

    sim.run_until(not_after + days(1));
    assert_eq!(sim.status().evaluation.remaining, days(79));
    // Nothing more is sent for a lapsed identity.
    let after = sim
        .attempts
        .iter()
        .filter(|(at, _)| *at > not_after)
        .count();
    assert_eq!(after, 0);
}

#[test]
fn out_of_compliance_rechecks_every_12_hours_until_the_pool_grows() {
    let mut sim = Sim::new();
    sim.pool(ENHANCED, 2);
    sim.declare_use(ENHANCED, 5);
    let token = sim.token();
    sim.register(&token);
    let reg = sim.now;
    let st = sim.status();
    assert_eq!(st.authorization.state, AuthorizationState::OutOfCompliance);
    assert_eq!(st.authorization.since, Some(reg));
    assert_eq!(st.entitlements[0].status, TagStatus::OutOfCompliance);
    assert_eq!(st.authorization.next_communication, Some(reg + hours(12)));

    sim.run_until(reg + hours(30));
    assert_eq!(
        sim.attempts_of(RequestKind::Authorize, reg),
        [TimeDelta::zero(), hours(12), hours(24)]
    );
    // Still out of compliance: the state began at the first answer that said so.
    assert_eq!(sim.status().authorization.since, Some(reg));
    sim.pool(ENHANCED, 3);
    sim.run_until(reg + hours(37));
    let st = sim.status();
    assert_eq!(st.authorization.state, AuthorizationState::Authorized);
    assert_eq!(st.entitlements[0].status, TagStatus::InCompliance);
    assert_eq!(
        st.authorization.next_communication,
        Some(reg + hours(36) + days(30))
    );
    let changed = sim
        .transcript
        .iter()
        .filter(|e| name(&e.kind) == "EntitlementStatusChanged")
        .count();
    assert_eq!(changed, 2, "Waiting → OutOfCompliance, then → InCompliance");
}

#[test]
fn usage_changes_are_coalesced_for_60_seconds_into_one_report() {
    let mut sim = Sim::new();
    sim.pool(ENHANCED, 10);
    sim.declare_use(ENHANCED, 1);
    let token = sim.token();
    sim.register(&token);
    let start = sim.now;
    sim.advance(days(1));
    let changed = sim.now;
    for (i, n) in [2, 3, 4].into_iter().enumerate() {
        sim.now = changed + TimeDelta::seconds(10 * i as i64);
        sim.agent.set_usage(&tag(ENHANCED), n, sim.now).unwrap();
        sim.pump();
    }
    sim.run_until(changed + minutes(5));
    assert_eq!(
        sim.attempts_of(RequestKind::Authorize, start),
        [TimeDelta::zero(), days(1) + TimeDelta::seconds(60)]
    );
    let instance = &sim.manager.instances()[0];
    assert_eq!(instance.usage.get(ENHANCED), Some(&4));
}

/// A random source that fails while its switch is on.
struct Flaky {
    failing: std::sync::Arc<std::sync::atomic::AtomicBool>,
    inner: smart_agent::DeterministicRandom,
}

impl smart_agent::Random for Flaky {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), smart_agent::crypto::RandomError> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(smart_agent::crypto::RandomError);
        }
        self.inner.fill(dest)
    }
}

#[test]
fn a_failing_random_source_backs_off_like_a_send_failure_instead_of_spinning() {
    let failing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let manager = smart_agent::manager::Manager::new(
        smart_agent::Environment::Production,
        Box::new(smart_agent::DeterministicRandom::new(1)),
    )
    .unwrap();
    let flaky = Flaky {
        failing: failing.clone(),
        inner: smart_agent::DeterministicRandom::new(2),
    };
    let agent = smart_agent::Agent::new(
        config(UDI, manager.trust_anchors(), 2).with_random(Box::new(flaky)),
        t0(),
    )
    .unwrap();
    let mut sim = Sim::with(agent, manager);
    sim.pool(ENHANCED, 10);
    sim.declare_use(ENHANCED, 5);
    let token = sim.token();
    sim.register(&token);
    sim.take_events();

    failing.store(true, std::sync::atomic::Ordering::SeqCst);
    sim.agent.renew_auth(sim.now).unwrap();
    assert!(sim.agent.poll_transmit(sim.now).is_none());
    let (next, _) = sim.agent.poll_timeout().unwrap();
    assert_eq!(
        next,
        sim.now + minutes(15),
        "backed off, not due again at once"
    );
    let events: Vec<_> = std::iter::from_fn(|| sim.agent.poll_event()).collect();
    let failed = events
        .iter()
        .find(|e| matches!(e.kind, smart_agent::EventKind::AuthorizationFailed { .. }))
        .expect("the failure is raised");
    assert!(
        failed.to_string().contains("random source failed"),
        "{failed}"
    );

    failing.store(false, std::sync::atomic::Ordering::SeqCst);
    sim.advance(minutes(15));
    assert_eq!(sim.status().authorization.since, Some(sim.now));
}
