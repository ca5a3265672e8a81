//! Registration, tokens, force reregistration, deregistration and the 405s (SPEC §3, §9).

mod common;

use common::*;
use smart_agent::error::TOKEN_MESSAGE;
use smart_agent::manager::TokenOptions;
use smart_agent::status::Outcome;
use smart_agent::wire::RequestKind;
use smart_agent::{
    AuthorizationState, Error, Force, HostIdentity, RegistrationState, SendError, TransportSettings,
};

fn assert_refused_for_good(sim: &mut Sim) {
    let st = sim.status();
    assert_eq!(st.registration.state, RegistrationState::RegistrationFailed);
    assert_eq!(
        st.registration
            .state
            .text(smart_agent::Vocabulary::Expressway),
        "Unregistered: Registration Failed"
    );
    let initial = st.registration.initial_registration.unwrap();
    assert_eq!(
        initial.outcome,
        Outcome::Failed {
            reason: TOKEN_MESSAGE.into()
        }
    );
    assert_eq!(st.registration.next_registration_attempt, None);
    let events = sim.take_events();
    let failed = events
        .iter()
        .find(|e| name(&e.kind) == "RegistrationFailed")
        .expect("a RegistrationFailed event");
    assert_eq!(
        failed.alarm().map(|a| a.name()),
        Some("SmartLicensingRegistrationFailure")
    );
    // Permanent: nothing is retried.
    let before = sim.attempts.len();
    sim.advance(hours(2));
    assert_eq!(sim.attempts.len(), before);
}

#[test]
fn malformed_token_is_refused_locally_with_the_400_message() {
    let mut sim = Sim::new();
    let before = sim.agent.snapshot();
    for bad in ["", "has space", "semi;colon", &"a".repeat(257)] {
        let err = sim.agent.register(bad, Force::No, sim.now).unwrap_err();
        assert_eq!(err, Error::InvalidToken);
        assert_eq!(err.code().status(), 400);
        assert_eq!(err.to_string(), TOKEN_MESSAGE);
    }
    assert_eq!(sim.agent.snapshot(), before);
    assert!(sim.agent.poll_transmit(sim.now).is_none());
}

#[test]
fn unknown_token_fails_registration_with_the_seed_message() {
    let mut sim = Sim::new();
    sim.register("NjEwN2ZjZjEtZmI1Zi00ZGVj%0AunknownToken");
    assert_refused_for_good(&mut sim);
}

#[test]
fn expired_token_fails_registration() {
    let mut sim = Sim::new();
    let token = sim.token_with(TokenOptions {
        expires_after: days(1),
        ..TokenOptions::default()
    });
    sim.advance(days(2));
    sim.register(&token);
    assert_refused_for_good(&mut sim);
}

#[test]
fn used_up_token_fails_registration() {
    let mut sim = Sim::new();
    let token = sim.token_with(TokenOptions {
        max_uses: Some(1),
        ..TokenOptions::default()
    });
    sim.register(&token);
    sim.agent.deregister(sim.now).unwrap();
    sim.pump();
    sim.take_events();
    sim.register(&token);
    assert_refused_for_good(&mut sim);
}

#[test]
fn revoked_token_fails_registration() {
    let mut sim = Sim::new();
    let token = sim.token();
    sim.manager
        .revoke_token(&smart_agent::Token::parse(&token).unwrap())
        .unwrap();
    sim.register(&token);
    assert_refused_for_good(&mut sim);
}

#[test]
fn a_new_register_is_allowed_after_a_failed_one() {
    let mut sim = Sim::new();
    sim.register("unknownToken");
    assert_eq!(
        sim.status().registration.state,
        RegistrationState::RegistrationFailed
    );
    let token = sim.token();
    sim.register(&token);
    assert_eq!(
        sim.status().registration.state,
        RegistrationState::Registered
    );
}

#[test]
fn transient_failure_leaves_registration_pending_and_retries_every_15_minutes() {
    let mut sim = Sim::new();
    sim.declare_use(ENHANCED, 1);
    let token = sim.token();
    sim.link = Link::Down(SendError::Timeout);
    let start = sim.now;
    sim.register(&token);
    let st = sim.status();
    assert_eq!(
        st.registration.state,
        RegistrationState::RegistrationPending
    );
    let initial = st.registration.initial_registration.unwrap();
    assert_eq!(initial.at, start);
    assert_eq!(
        initial.outcome,
        Outcome::Failed {
            reason: "The requested operation was not successful due to a communication timeout."
                .into()
        }
    );
    assert_eq!(
        st.registration.next_registration_attempt,
        Some(start + minutes(15))
    );
    assert_eq!(st.authorization.state, AuthorizationState::EvalMode);

    let err = sim.agent.register(&token, Force::No, sim.now).unwrap_err();
    assert_eq!(err, Error::RegistrationInProgress);
    assert_eq!(err.code().status(), 405);
    assert_eq!(
        sim.agent.register(&token, Force::Yes, sim.now),
        Err(Error::RegistrationInProgress)
    );

    sim.run_until(start + minutes(61));
    assert_eq!(
        sim.attempts_of(RequestKind::Register, start),
        [
            minutes(0),
            minutes(15),
            minutes(30),
            minutes(45),
            minutes(60)
        ]
    );
    let events = sim.take_events();
    let retrying = events
        .iter()
        .filter(|e| name(&e.kind) == "RegistrationRetrying")
        .count();
    assert_eq!(retrying, 5);
    sim.link = Link::Up;
    sim.run_until(start + minutes(75));
    let st = sim.status();
    assert_eq!(st.registration.state, RegistrationState::Registered);
    assert_eq!(
        st.registration.initial_registration.unwrap().at,
        start + minutes(75)
    );
    assert_eq!(sim.manager.instances().len(), 1);
}

#[test]
fn first_attempt_in_flight_shows_pending_without_a_failure() {
    let mut sim = Sim::new();
    let token = sim.token();
    sim.agent.register(&token, Force::No, sim.now).unwrap();
    let tx = sim.agent.poll_transmit(sim.now).unwrap();
    assert_eq!(tx.kind, RequestKind::Register);
    let st = sim.status();
    assert_eq!(
        st.registration.state,
        RegistrationState::RegistrationPending
    );
    assert_eq!(st.registration.initial_registration, None);
    assert_eq!(st.registration.next_registration_attempt, None);
}

#[test]
fn register_while_registered_without_force_is_405() {
    let mut sim = registered();
    let token = sim.token();
    let before = sim.agent.snapshot();
    let err = sim.agent.register(&token, Force::No, sim.now).unwrap_err();
    assert_eq!(err.code().status(), 405);
    assert_eq!(
        err.to_string(),
        "Product is already registered on CSSM. To Re-register it use 'force' flag"
    );
    assert_eq!(sim.agent.snapshot(), before);
}

#[test]
fn force_reregistration_moves_the_instance_to_another_virtual_account() {
    let mut sim = registered();
    let old_piid = sim.manager.instances()[0].piid;
    sim.manager.add_smart_account("Other Company").unwrap();
    let other = sim
        .manager
        .add_virtual_account("Other Company", "Lab")
        .unwrap();
    sim.manager
        .add_licenses(&other, &tag(ENHANCED), 10, None, None)
        .unwrap();
    let token = sim
        .manager
        .create_token(&other, TokenOptions::default(), sim.now)
        .unwrap();
    sim.agent
        .register(token.expose(), Force::Yes, sim.now)
        .unwrap();
    sim.pump();
    let st = sim.status();
    assert_eq!(st.registration.state, RegistrationState::Registered);
    assert_eq!(
        st.registration.smart_account.as_deref(),
        Some("Other Company")
    );
    assert_eq!(st.registration.virtual_account.as_deref(), Some("Lab"));
    assert_eq!(st.authorization.state, AuthorizationState::Authorized);
    let instances = sim.manager.instances();
    assert_eq!(instances.len(), 1);
    assert_ne!(instances[0].piid, old_piid);
    assert_eq!(instances[0].virtual_account, other);
}

#[test]
fn failed_force_reregistration_keeps_the_old_identity() {
    let mut sim = registered();
    let before = sim.status();
    sim.agent
        .register("revokedOrUnknownToken", Force::Yes, sim.now)
        .unwrap();
    sim.pump();
    let events = names(&sim.take_events());
    assert!(events.contains(&"RegistrationFailed".to_string()));
    let st = sim.status();
    assert_eq!(st.registration.state, RegistrationState::Registered);
    assert_eq!(
        st.registration.virtual_account,
        before.registration.virtual_account
    );
    assert_eq!(st.registration.expires, before.registration.expires);
    assert_eq!(st.authorization.state, AuthorizationState::Authorized);
    // Still usable: renewals go out under the old identity.
    sim.agent.renew_auth(sim.now).unwrap();
    sim.pump();
    assert_eq!(
        sim.status().authorization.state,
        AuthorizationState::Authorized
    );
}

fn deregister_while_down(error: SendError, phrase: &str) {
    let mut sim = registered();
    sim.advance(days(5));
    sim.link = Link::Down(error);
    sim.agent.deregister(sim.now).unwrap();
    // Removed locally at once, back to evaluation.
    let st = sim.status();
    assert_eq!(st.registration.state, RegistrationState::Unregistered);
    assert_eq!(st.authorization.state, AuthorizationState::EvalMode);
    assert!(st.evaluation.in_use);
    sim.pump();
    let events = sim.take_events();
    let failed = events
        .iter()
        .find(|e| name(&e.kind) == "DeregistrationFailed")
        .unwrap();
    assert_eq!(
        failed.kind.to_string(),
        format!(
            "Deregistration has been completed on the Product Instance but was unable to deregister from Smart Software Licensing due to {phrase}"
        )
    );
    assert_eq!(
        failed.alarm().map(|a| a.name()),
        Some("SmartLicensingDeregistrationFailure")
    );
    // One best-effort request; the manager still lists the instance.
    sim.advance(days(1));
    assert_eq!(
        sim.attempts_of(RequestKind::Deregister, sim.now - days(2))
            .len(),
        1
    );
    assert_eq!(sim.manager.instances().len(), 1);
}

#[test]
fn deregister_with_manager_timing_out_completes_locally_with_event_and_alarm() {
    deregister_while_down(SendError::Timeout, "a communication timeout");
}

#[test]
fn deregister_with_connection_refused_completes_locally_with_event_and_alarm() {
    deregister_while_down(refused(), "communication send error");
}

#[test]
fn deregister_releases_licenses_on_the_manager() {
    let mut sim = registered();
    sim.agent.deregister(sim.now).unwrap();
    sim.pump();
    assert!(names(&sim.take_events()).contains(&"Deregistered".to_string()));
    assert!(sim.manager.instances().is_empty());
    let line = &sim.manager.licenses(&sim.va())[0];
    assert_eq!(line.in_use, 0);
}

#[test]
fn operations_that_need_a_registration_are_405_while_unregistered() {
    let mut sim = Sim::new();
    let before = sim.agent.snapshot();
    let cases = [
        (
            sim.agent.deregister(sim.now),
            "Deregistration is not allowed since product is in either unregistered state or is a Subscriber node",
        ),
        (
            sim.agent.renew_id(sim.now),
            "Renewal of ID is not allowed since product is in either unregistered state or is a Subscriber node",
        ),
        (
            sim.agent.renew_auth(sim.now),
            "Renewal of Authorization is not allowed since product is in either unregistered state or is a Subscriber node",
        ),
    ];
    for (result, message) in cases {
        let err = result.unwrap_err();
        assert_eq!(err.code().status(), 405);
        assert_eq!(err.to_string(), message);
    }
    assert_eq!(sim.agent.snapshot(), before);
}

#[test]
fn subscriber_node_refuses_licensing_operations_with_its_405s() {
    let mut sim = registered();
    sim.agent.set_subscriber(true, sim.now);
    let before = sim.agent.snapshot();
    let token = sim.token();
    let err = sim.agent.register(&token, Force::Yes, sim.now).unwrap_err();
    assert_eq!(err.code().status(), 405);
    assert_eq!(
        err.to_string(),
        "Smart Software Licensing operations are not allowed from Subscriber, licenses for this system are managed by Publisher"
    );
    assert_eq!(sim.agent.renew_id(sim.now), Err(Error::RenewIdNotAllowed));
    assert_eq!(
        sim.agent.renew_auth(sim.now),
        Err(Error::RenewAuthNotAllowed)
    );
    assert_eq!(
        sim.agent.deregister(sim.now),
        Err(Error::NotRegisteredForDeregister)
    );
    assert_eq!(
        sim.agent.set_transport(TransportSettings::Direct, sim.now),
        Err(Error::TransportSettingsLocked)
    );
    assert_eq!(sim.agent.snapshot(), before);
}

#[test]
fn transport_settings_are_locked_while_registered_and_free_after_deregistration() {
    let mut sim = registered();
    let settings = TransportSettings::proxy("proxy.example.com", "3128", None).unwrap();
    let err = sim
        .agent
        .set_transport(settings.clone(), sim.now)
        .unwrap_err();
    assert_eq!(err.code().status(), 405);
    assert_eq!(
        err.to_string(),
        "Edit Transport Settings operation is not allowed since product is in either Registered state or is a Subscriber node"
    );
    sim.agent.deregister(sim.now).unwrap();
    sim.pump();
    sim.agent.set_transport(settings.clone(), sim.now).unwrap();
    assert_eq!(sim.agent.transport_settings(), &settings);
}

#[test]
fn host_change_while_registered_renews_the_identity_at_once() {
    let mut sim = registered();
    sim.advance(days(3));
    let at = sim.now;
    let host = HostIdentity::new("ucm-pub.example.com", "192.0.2.10".parse().unwrap()).unwrap();
    sim.agent.set_host(host, sim.now);
    sim.pump();
    assert_eq!(sim.attempts_of(RequestKind::RenewId, at), [minutes(0)]);
    let st = sim.status();
    assert_eq!(st.registration.expires, Some(at + days(365)));
    assert_eq!(st.registration.next_renewal, Some(at + days(180)));
    assert_eq!(
        sim.manager.instances()[0].hostname.as_deref(),
        Some("ucm-pub.example.com")
    );
}

#[test]
fn manual_renewals_go_out_at_once() {
    let mut sim = registered();
    sim.advance(days(2));
    let at = sim.now;
    sim.agent.renew_id(sim.now).unwrap();
    sim.agent.renew_auth(sim.now).unwrap();
    sim.pump();
    assert_eq!(sim.attempts_of(RequestKind::RenewId, at), [minutes(0)]);
    assert_eq!(sim.attempts_of(RequestKind::Authorize, at), [minutes(0)]);
    assert_eq!(
        sim.status().authorization.next_communication,
        Some(at + days(30))
    );
}

#[test]
fn debug_output_events_and_status_never_show_the_token_or_key_seeds() {
    use smart_agent::Random;
    let mut sim = Sim::new();
    sim.pool(ENHANCED, 1);
    sim.declare_use(ENHANCED, 1);
    let token = sim.token();
    sim.agent.register(&token, Force::No, sim.now).unwrap();
    // The agent's random source (seed 2 in the harness) made the device key seed first.
    let mut seed = [0u8; 32];
    smart_agent::DeterministicRandom::new(2)
        .fill(&mut seed)
        .unwrap();
    let secrets = [
        token.clone(),
        seed.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        format!("{seed:?}"),
    ];
    let tx = sim.agent.poll_transmit(sim.now).unwrap();
    let decoded = smart_agent::wire::decode_request(&tx.body, 1 << 20).unwrap();
    let mut shown = format!(
        "{:?} {:?} {:?} {:?}",
        sim.agent,
        tx,
        sim.agent.snapshot_parts(),
        decoded
    );
    sim.agent
        .handle_response(tx.id, Err(SendError::Timeout), sim.now);
    while let Some(e) = sim.agent.poll_event() {
        shown.push_str(&format!("{e:?} {e}"));
    }
    sim.run_until(sim.now + minutes(15));
    for e in sim.take_events() {
        shown.push_str(&format!("{e:?} {e}"));
    }
    shown.push_str(&quick_xml::se::to_string_with_root("status", &sim.status()).unwrap());
    shown.push_str(&format!("{:?}", sim.status()));
    assert_eq!(
        sim.status().registration.state,
        RegistrationState::Registered
    );
    for secret in &secrets {
        assert!(!shown.contains(secret.as_str()), "{secret} shown");
    }
    // The secrets are really in the snapshot (so the check above is meaningful).
    let parts = sim.agent.snapshot_parts();
    assert!(parts.licensing.windows(32).any(|w| w == seed));
}

#[test]
fn at_most_one_request_is_on_the_wire() {
    let mut sim = registered();
    sim.agent.renew_auth(sim.now).unwrap();
    let tx = sim.agent.poll_transmit(sim.now).unwrap();
    sim.agent.set_usage(&tag(ENHANCED), 9, sim.now).unwrap();
    sim.agent.renew_id(sim.now).unwrap();
    sim.agent.deregister(sim.now).unwrap();
    let later = sim.now + minutes(5);
    sim.agent.handle_timeout(later);
    assert!(
        sim.agent.poll_transmit(later).is_none(),
        "a second request while one is in flight"
    );
    // Once the answer is in, the deregistration goes first.
    let answer = sim.manager.handle(&tx.body, sim.now);
    sim.agent.handle_response(tx.id, Ok(answer), later);
    let next = sim.agent.poll_transmit(later).unwrap();
    assert_eq!(next.kind, RequestKind::Deregister);
    let answer = sim.manager.handle(&next.body, later);
    sim.agent.handle_response(next.id, Ok(answer), later);
    assert!(sim.agent.poll_transmit(later).is_none());
    assert!(sim.manager.instances().is_empty());
}

#[test]
fn deregistering_during_a_force_reregistration_deregisters_both_identities() {
    let mut sim = registered();
    let token = sim.token();
    sim.agent.register(&token, Force::Yes, sim.now).unwrap();
    let tx = sim.agent.poll_transmit(sim.now).unwrap();
    assert_eq!(tx.kind, RequestKind::Register);
    sim.agent.deregister(sim.now).unwrap();
    let answer = sim.manager.handle(&tx.body, sim.now);
    sim.agent.handle_response(tx.id, Ok(answer), sim.now);
    sim.pump();
    assert_eq!(
        sim.status().registration.state,
        RegistrationState::Unregistered
    );
    assert_eq!(sim.attempts_of(RequestKind::Deregister, sim.now).len(), 2);
    assert!(
        sim.manager.instances().is_empty(),
        "{:?}",
        sim.manager.instances()
    );
}

#[test]
fn manual_renewal_made_while_a_request_is_in_flight_is_not_lost() {
    let mut sim = registered();
    sim.advance(days(1));
    let at = sim.now;
    sim.agent.renew_id(sim.now).unwrap();
    let tx = sim.agent.poll_transmit(sim.now).unwrap();
    assert_eq!(tx.kind, RequestKind::RenewId);
    sim.agent.renew_auth(sim.now).unwrap();
    sim.agent
        .handle_response(tx.id, Err(SendError::Timeout), sim.now);
    sim.pump();
    assert_eq!(sim.attempts_of(RequestKind::Authorize, at), [minutes(0)]);
}

#[test]
fn registration_near_year_9999_still_verifies() {
    let mut sim = Sim::new();
    let late: chrono::DateTime<chrono::Utc> = "9999-12-01T00:00:00Z".parse().unwrap();
    sim.now = late;
    let token = sim.token();
    sim.register(&token);
    let st = sim.status();
    assert_eq!(st.registration.state, RegistrationState::Registered);
    assert_eq!(
        st.registration.expires,
        Some("9999-12-31T23:59:59Z".parse().unwrap())
    );
}
