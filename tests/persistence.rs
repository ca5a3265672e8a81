//! Snapshots, crashes, restores and key rotation (SPEC §12).

mod common;

use common::*;
use smart_agent::wire::{decode_request, RequestKind};
use smart_agent::{
    Agent, AuthorizationState, EventKind, ProductKey, Protection, RegistrationState, RestoreError,
    SnapshotError, TagStatus, TrustAnchor,
};

fn restore(sim: &Sim, snapshot: &[u8], anchors: Vec<TrustAnchor>, seed: u64) -> Agent {
    Agent::restore(snapshot, config(UDI, anchors, seed), sim.now).unwrap()
}

#[test]
fn lost_answer_after_a_crash_is_resent_with_a_new_nonce_and_counted_once() {
    let mut sim = registered();
    sim.advance(days(1));
    sim.agent.set_usage(&tag(ENHANCED), 7, sim.now).unwrap();
    sim.now += minutes(1);
    sim.agent.handle_timeout(sim.now);
    let counted_before = sim.manager.instances()[0].usage_reports_counted;
    let received_before = sim.manager.requests_received();

    let tx = sim.agent.poll_transmit(sim.now).unwrap();
    assert_eq!(tx.kind, RequestKind::Authorize);
    let persisted = sim.agent.snapshot();
    let first = decode_request(&tx.body, 1 << 20).unwrap().request;
    let _lost_answer = sim.manager.handle(&tx.body, sim.now);
    // Crash. The product restarts from the snapshot it took after poll_transmit.
    let mut agent = restore(&sim, &persisted, sim.manager.trust_anchors(), 99);
    let tx2 = agent
        .poll_transmit(sim.now)
        .expect("the outstanding request is re-sent");
    let second = decode_request(&tx2.body, 1 << 20).unwrap().request;
    assert_ne!(first.nonce, second.nonce);
    assert_eq!(first.body.as_authorize(), second.body.as_authorize());
    assert_eq!(second.body.as_authorize().unwrap().usage[0].count, 7);
    let answer = sim.manager.handle(&tx2.body, sim.now);
    agent.handle_response(tx2.id, Ok(answer), sim.now);

    assert_eq!(sim.manager.requests_received(), received_before + 2);
    let instance = &sim.manager.instances()[0];
    assert_eq!(instance.usage_reports_counted, counted_before + 1);
    assert_eq!(
        instance.last_usage_sequence,
        Some(first.body.as_authorize().unwrap().sequence)
    );
    let st = agent.status(sim.now);
    assert_eq!(st.authorization.state, AuthorizationState::Authorized);
    assert_eq!(st.authorization.since, Some(sim.now));
}

#[test]
fn restore_of_a_snapshot_gives_the_same_status_and_snapshot() {
    let sim = registered();
    let bytes = sim.agent.snapshot();
    let agent = restore(&sim, &bytes, sim.manager.trust_anchors(), 5);
    assert_eq!(agent.status(sim.now), sim.status());
    assert_eq!(agent.snapshot(), bytes);
}

#[test]
fn corrupt_wrong_magic_and_newer_snapshots_are_typed_errors() {
    let sim = registered();
    let bytes = sim.agent.snapshot();
    let open = |b: &[u8]| Agent::restore(b, config(UDI, sim.manager.trust_anchors(), 1), sim.now);
    assert!(matches!(
        open(b"GARBAGE!garbage"),
        Err(RestoreError::Snapshot(SnapshotError::WrongMagic))
    ));
    let mut newer = bytes.clone();
    newer[9] = 9;
    assert!(matches!(
        open(&newer),
        Err(RestoreError::Snapshot(SnapshotError::UnsupportedVersion(9)))
    ));
    let mut flipped = bytes.clone();
    let mid = bytes.len() / 2;
    flipped[mid] ^= 0x40;
    assert!(matches!(
        open(&flipped),
        Err(RestoreError::Snapshot(SnapshotError::Corrupt(_)))
    ));
    assert!(matches!(
        open(&bytes[..bytes.len() - 1]),
        Err(RestoreError::Snapshot(SnapshotError::Corrupt(_)))
    ));
}

#[test]
fn sealed_snapshots_hide_secrets_and_open_only_with_the_product_key() {
    let manager = smart_agent::manager::Manager::new(
        smart_agent::Environment::Production,
        Box::new(smart_agent::DeterministicRandom::new(1)),
    )
    .unwrap();
    let key = Protection::Sealed(ProductKey::new([7; 32]));
    let anchors = manager.trust_anchors();
    let cfg = || config(UDI, anchors.clone(), 2).with_protection(key.clone());
    let agent = Agent::new(cfg(), t0()).unwrap();
    let mut sim = Sim::with(agent, manager);
    sim.pool(ENHANCED, 10);
    sim.declare_use(ENHANCED, 5);
    let token = sim.token();
    sim.register(&token);
    let bytes = sim.agent.snapshot();
    assert_eq!(bytes, sim.agent.snapshot(), "sealing is deterministic");
    assert!(!bytes.windows(token.len()).any(|w| w == token.as_bytes()));
    assert!(!bytes.windows(8).any(|w| w == b"identity"));
    let restored = Agent::restore(&bytes, cfg(), sim.now).unwrap();
    assert_eq!(restored.status(sim.now), sim.status());
    let wrong = config(UDI, sim.manager.trust_anchors(), 2)
        .with_protection(Protection::Sealed(ProductKey::new([8; 32])));
    assert!(matches!(
        Agent::restore(&bytes, wrong, sim.now),
        Err(RestoreError::Snapshot(SnapshotError::Corrupt(_)))
    ));
    let plain = config(UDI, sim.manager.trust_anchors(), 2);
    assert!(matches!(
        Agent::restore(&bytes, plain, sim.now),
        Err(RestoreError::Snapshot(SnapshotError::ProtectionMismatch))
    ));
}

#[test]
fn time_passing_alone_never_rewrites_the_licensing_part() {
    let mut sim = Sim::new();
    sim.declare_use(ENHANCED, 1);
    let before = sim.agent.snapshot_parts().licensing;
    sim.advance(days(120)); // past every warning and the evaluation's end
    assert_eq!(
        sim.status().authorization.state,
        AuthorizationState::EvalExpired
    );
    assert_eq!(sim.agent.snapshot_parts().licensing, before);
    let mut sim = registered();
    let before = sim.agent.snapshot_parts().licensing;
    sim.link = Link::Down(smart_agent::SendError::Timeout);
    sim.advance(days(400)); // deadline and identity lapse pass, renewals fail
    assert_eq!(
        sim.status().registration.state,
        RegistrationState::RegistrationExpired
    );
    assert_eq!(sim.agent.snapshot_parts().licensing, before);
}

#[test]
fn rotated_keys_drop_the_untrusted_grant_to_not_applicable_until_a_new_answer() {
    let mut sim = registered(); // identity signed by K1
    let k1 = sim.manager.trust_anchor();
    let k2 = sim.manager.rotate_signing_key().unwrap();
    // The product learns the new key and restarts with {K1, K2}.
    sim.agent = restore(&sim, &sim.agent.snapshot(), vec![k1.clone(), k2], 6);
    sim.agent.renew_auth(sim.now).unwrap();
    sim.pump(); // grant signed by K2
    assert_eq!(sim.status().authorization.since, Some(sim.now));
    let snapshot = sim.agent.snapshot();
    let k3 = sim.manager.rotate_signing_key().unwrap();

    let mut agent = restore(&sim, &snapshot, vec![k1.clone(), k3.clone()], 7);
    let events: Vec<_> = std::iter::from_fn(|| agent.poll_event()).collect();
    assert!(matches!(events[0].kind, EventKind::GrantDropped { .. }));
    let st = agent.status(sim.now);
    assert_eq!(st.registration.state, RegistrationState::Registered);
    assert_eq!(st.authorization.state, AuthorizationState::NotApplicable);
    assert_eq!(
        st.authorization
            .state
            .text(smart_agent::Vocabulary::Expressway),
        "Not Applicable"
    );
    // Asked at once; a rejected answer leaves it so.
    let tx = agent
        .poll_transmit(sim.now)
        .expect("an immediate authorization");
    assert_eq!(tx.kind, RequestKind::Authorize);
    let answer = sim.manager.handle(&tx.body, sim.now);
    agent.handle_response(tx.id, Ok(answer[..answer.len() / 2].to_vec()), sim.now);
    assert_eq!(
        agent.status(sim.now).authorization.state,
        AuthorizationState::NotApplicable
    );
    // The K3-signed answer to the retry is accepted.
    let retry = sim.now + minutes(15);
    agent.handle_timeout(retry);
    let tx = agent.poll_transmit(retry).unwrap();
    let answer = sim.manager.handle(&tx.body, retry);
    agent.handle_response(tx.id, Ok(answer), retry);
    let st = agent.status(retry);
    assert_eq!(st.authorization.state, AuthorizationState::Authorized);
    assert_eq!(st.entitlements[0].status, TagStatus::InCompliance);

    // Without K1 the identity itself is untrusted: dropped, unregistered.
    let mut agent = restore(&sim, &snapshot, vec![k3], 8);
    let events: Vec<_> = std::iter::from_fn(|| agent.poll_event()).collect();
    assert!(events
        .iter()
        .any(|e| matches!(e.kind, EventKind::IdentityDropped { .. })));
    let st = agent.status(sim.now);
    assert_eq!(st.registration.state, RegistrationState::Unregistered);
    assert_eq!(st.authorization.state, AuthorizationState::EvalMode);
    assert!(agent.poll_transmit(sim.now).is_none());
}

#[test]
fn snapshot_restored_under_another_udi_is_unregistered_with_its_evaluation_kept() {
    let mut sim = Sim::new();
    sim.pool(ENHANCED, 10);
    sim.declare_use(ENHANCED, 5);
    sim.advance(days(12));
    let token = sim.token();
    sim.register(&token);
    sim.advance(days(3));
    let snapshot = sim.agent.snapshot();
    let other = "PID:UCM,SN:99999,UUID:00000000000040008000000000000001";
    let agent = Agent::restore(
        &snapshot,
        config(other, sim.manager.trust_anchors(), 3),
        sim.now,
    )
    .unwrap();
    let st = agent.status(sim.now);
    assert_eq!(st.udi.to_string(), other);
    assert_eq!(st.registration.state, RegistrationState::Unregistered);
    assert_eq!(st.authorization.state, AuthorizationState::EvalMode);
    assert_eq!(st.evaluation.remaining, days(78));
    assert!(st.evaluation.in_use);
}

#[test]
fn restore_after_a_lapse_abandons_the_outstanding_request_and_registers_again() {
    let mut sim = registered();
    sim.advance(days(100));
    sim.agent.renew_auth(sim.now).unwrap();
    let _tx = sim.agent.poll_transmit(sim.now).unwrap();
    let persisted = sim.agent.snapshot();
    // Down for a year: the identity lapses while the authorize is outstanding.
    sim.now += days(400);
    sim.agent = restore(&sim, &persisted, sim.manager.trust_anchors(), 21);
    let st = sim.status();
    assert_eq!(
        st.registration.state,
        RegistrationState::RegistrationExpired
    );
    assert!(
        sim.agent.poll_transmit(sim.now).is_none(),
        "nothing to send for a lapsed identity"
    );
    assert_ne!(
        sim.agent.poll_timeout().map(|(_, r)| r),
        Some(smart_agent::TimerReason::Transmit),
        "no busy loop on an unsendable request"
    );
    let token = sim.token();
    sim.register(&token);
    assert_eq!(
        sim.status().registration.state,
        RegistrationState::Registered
    );
    assert_eq!(
        sim.status().authorization.state,
        AuthorizationState::Authorized
    );
}

#[test]
fn dropping_a_lapsed_identity_at_restore_does_not_forgive_evaluation_time() {
    let mut sim = registered(); // evaluation never counted: 90 days left
    let snapshot = sim.agent.snapshot();
    let not_after = sim.now + days(365);
    let later = not_after + days(10);
    sim.now = later;
    let other_key = smart_agent::crypto::ManagerSigningKey::generate().unwrap();
    let untrusted = vec![TrustAnchor::new(
        other_key.public_key().clone(),
        smart_agent::Environment::Production,
    )];
    let agent = restore(&sim, &snapshot, untrusted, 22);
    assert_eq!(agent.status(later).evaluation.remaining, days(80));
    let other = "PID:UCM,SN:1";
    let agent = Agent::restore(
        &snapshot,
        config(other, sim.manager.trust_anchors(), 23),
        later,
    )
    .unwrap();
    assert_eq!(agent.status(later).evaluation.remaining, days(80));
}

#[test]
fn settings_read_back_byte_identically() {
    let mut sim = Sim::new();
    let proxy = smart_agent::TransportSettings::proxy("Proxy.Example.COM", "443", Some(("u", "p")))
        .unwrap();
    sim.agent.set_transport(proxy, sim.now).unwrap();
    let host =
        smart_agent::HostIdentity::new("UCM-Pub.example.com", "2001:db8::7".parse().unwrap())
            .unwrap();
    sim.agent.set_host(host, sim.now);
    let bytes = sim.agent.snapshot();
    let agent = restore(&sim, &bytes, sim.manager.trust_anchors(), 24);
    assert_eq!(agent.snapshot(), bytes);
    assert_eq!(agent.transport_settings(), sim.agent.transport_settings());
}

#[test]
fn restore_with_an_unusable_configuration_is_a_typed_error() {
    let sim = registered();
    let bytes = sim.agent.snapshot();
    let r = Agent::restore(&bytes, config(UDI, vec![], 1), sim.now);
    assert!(
        matches!(
            r,
            Err(RestoreError::Config(
                smart_agent::ConfigError::NoTrustAnchors
            ))
        ),
        "{:?}",
        r.map(|_| ())
    );
    let looping = smart_agent::Policy {
        backoff_initial: chrono::TimeDelta::zero(),
        ..smart_agent::Policy::default()
    };
    let cfg = config(UDI, sim.manager.trust_anchors(), 1).with_policy(looping);
    assert!(matches!(
        Agent::restore(&bytes, cfg, sim.now),
        Err(RestoreError::Config(smart_agent::ConfigError::Policy(_)))
    ));
}

fn drain(agent: &mut Agent) -> Vec<EventKind> {
    std::iter::from_fn(|| agent.poll_event())
        .map(|e| e.kind)
        .collect()
}

#[test]
fn an_identity_restored_without_its_anchor_stays_dormant_and_comes_back_with_it() {
    let mut sim = registered(); // identity and grant signed by K1
    let k1 = sim.manager.trust_anchor();
    let registered_on = sim.status().registration.initial_registration;
    let instances = sim.manager.instances().len();
    let stranger = smart_agent::manager::Manager::new(
        smart_agent::Environment::Production,
        Box::new(smart_agent::DeterministicRandom::new(99)),
    )
    .unwrap()
    .trust_anchor();

    // Misconfigured: only a key that signed nothing of ours.
    let mut agent = restore(&sim, &sim.agent.snapshot(), vec![stranger.clone()], 9);
    assert!(drain(&mut agent)
        .iter()
        .any(|e| matches!(e, EventKind::IdentityDropped { .. })));
    let st = agent.status(sim.now);
    assert_eq!(st.registration.state, RegistrationState::Unregistered);
    assert!(
        agent.poll_transmit(sim.now).is_none(),
        "a dormant identity is never sent"
    );
    // The misconfigured run writes its snapshot; a second restore like it is quiet.
    let dormant = agent.snapshot();
    let mut again = restore(&sim, &dormant, vec![stranger], 10);
    assert!(drain(&mut again).is_empty());
    assert_eq!(again.snapshot(), dormant);

    // Fixed: the same registration is registered again and renewals continue.
    sim.agent = restore(&sim, &dormant, vec![k1], 11);
    assert!(drain(&mut sim.agent)
        .iter()
        .any(|e| matches!(e, EventKind::IdentityReinstated)));
    let st = sim.status();
    assert_eq!(st.registration.state, RegistrationState::Registered);
    assert_eq!(st.registration.initial_registration, registered_on);
    assert_eq!(st.authorization.state, AuthorizationState::Authorized);
    sim.advance(days(31));
    let st = sim.status();
    assert_eq!(st.authorization.state, AuthorizationState::Authorized);
    assert!(st.authorization.since.unwrap() > sim.now - days(2));
    // The manager still knows the one instance it registered (a renewal naming another piid
    // would have been refused as unknown).
    assert_eq!(sim.manager.instances().len(), instances);
}

#[test]
fn a_new_registration_replaces_a_dormant_identity_for_good() {
    let mut sim = registered();
    let k1 = sim.manager.trust_anchor();
    let old_registration = sim.status().registration.initial_registration;
    let k2 = sim.manager.rotate_signing_key().unwrap();
    // Restarted trusting only K2: the K1 identity is dormant; the product registers anew.
    sim.agent = restore(&sim, &sim.agent.snapshot(), vec![k2.clone()], 12);
    assert_eq!(
        sim.status().registration.state,
        RegistrationState::Unregistered
    );
    sim.now += days(1);
    let token = sim.token();
    sim.register(&token);
    let new_registration = sim.status().registration.initial_registration;
    assert_ne!(new_registration, old_registration);
    // Trusting K1 again brings nothing back: the new registration stands.
    let agent = restore(&sim, &sim.agent.snapshot(), vec![k1, k2], 13);
    let st = agent.status(sim.now);
    assert_eq!(st.registration.state, RegistrationState::Registered);
    assert_eq!(st.registration.initial_registration, new_registration);
}

#[test]
fn an_untrusted_grant_is_kept_and_comes_back_once_it_verifies() {
    let mut sim = registered(); // identity signed by K1
    let k1 = sim.manager.trust_anchor();
    let k2 = sim.manager.rotate_signing_key().unwrap();
    sim.agent = restore(
        &sim,
        &sim.agent.snapshot(),
        vec![k1.clone(), k2.clone()],
        14,
    );
    sim.agent.renew_auth(sim.now).unwrap();
    sim.pump(); // grant signed by K2
    let authorized_at = sim.status().authorization.since;
    // Without K2: NOT APPLICABLE, and the request it makes at once is lost (no answer).
    let mut agent = restore(&sim, &sim.agent.snapshot(), vec![k1.clone()], 15);
    assert_eq!(
        agent.status(sim.now).authorization.state,
        AuthorizationState::NotApplicable
    );
    let tx = agent.poll_transmit(sim.now).unwrap();
    agent.handle_response(tx.id, Err(smart_agent::SendError::Timeout), sim.now);
    // With K2 again: the kept grant verifies and is in force.
    let agent = restore(&sim, &agent.snapshot(), vec![k1, k2], 16);
    let st = agent.status(sim.now);
    assert_eq!(st.authorization.state, AuthorizationState::Authorized);
    assert_eq!(st.authorization.since, authorized_at);
}

#[test]
fn another_udis_identity_is_kept_dormant_and_comes_back_under_its_own_udi() {
    let sim = registered();
    let registered_on = sim.status().registration.initial_registration;
    let other = "PID:UCM,SN:99999,UUID:00000000000040008000000000000001";
    let moved = Agent::restore(
        &sim.agent.snapshot(),
        config(other, sim.manager.trust_anchors(), 17),
        sim.now,
    )
    .unwrap();
    assert_eq!(
        moved.status(sim.now).registration.state,
        RegistrationState::Unregistered
    );
    // Moved back to the instance it belongs to: registered again, same registration.
    let back = restore(&sim, &moved.snapshot(), sim.manager.trust_anchors(), 18);
    let st = back.status(sim.now);
    assert_eq!(st.registration.state, RegistrationState::Registered);
    assert_eq!(st.registration.initial_registration, registered_on);
}
