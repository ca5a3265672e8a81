//! Export control in the agent (SPEC §7): the signed flag, export authorization keys with
//! retries and cancel, refusals, restore, deregistration. Key answers come from a manager key
//! the agent trusts besides the reference manager's (which does not grant keys unless it is
//! given key pools), so every case can be built exactly.

mod common;

use common::*;
use smart_agent::codes::ExportKey;
use smart_agent::crypto::ManagerSigningKey;
use smart_agent::manager::{codes, TokenOptions};
use smart_agent::wire::{self, decode_request, RequestKind, Response, ResponseStatus};
use smart_agent::{
    Agent, Environment, Error, EventKind, RegistrationState, SendError, Transmit, TrustAnchor, Uuid,
};

const FEATURE: &str = "CUCM_Export_Restricted_Authorization_Key";

fn exporter() -> (ManagerSigningKey, TrustAnchor) {
    let key = ManagerSigningKey::generate().unwrap();
    let anchor = TrustAnchor::new(key.public_key().clone(), Environment::Production);
    (key, anchor)
}

/// Answers an export request or return the way a manager with key pools would.
fn answer(
    key: &ManagerSigningKey,
    tx: &Transmit,
    status: ResponseStatus,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<u8> {
    let parsed = decode_request(&tx.body, 1 << 20).unwrap();
    let request = parsed.request;
    let mut documents = Vec::new();
    if request.kind == RequestKind::ExportRequest && status == ResponseStatus::Ok {
        let feature = request.body.as_export().unwrap().feature.clone();
        let issued = ExportKey::issue(
            Uuid([7; 16]),
            &feature,
            request.piid.unwrap(),
            &request.udi,
            now,
            Environment::Production,
            key,
        )
        .unwrap();
        documents.push(issued.to_string());
    }
    let response = Response {
        kind: request.kind,
        version: wire::PROTOCOL_VERSION,
        nonce: request.nonce,
        piid: request.piid,
        status,
        server_time: now,
        environment: Environment::Production,
    };
    let docs: Vec<&[u8]> = documents.iter().map(|d| d.as_bytes()).collect();
    wire::encode_response(&response, &docs, key).unwrap()
}

fn exporting() -> (Sim, ManagerSigningKey) {
    let (key, anchor) = exporter();
    let sim = Scenario::new()
        .trusting(vec![anchor])
        .pool(ENHANCED, 10)
        .usage(ENHANCED, 5)
        .token(TokenOptions {
            export_controlled: false,
            ..TokenOptions::default()
        })
        .registered();
    (sim, key)
}

fn events(agent: &mut Agent) -> Vec<EventKind> {
    std::iter::from_fn(|| agent.poll_event())
        .map(|e| e.kind)
        .collect()
}

/// Sends what is due and answers export requests with `status` (others go to the manager).
fn exchange(sim: &mut Sim, key: &ManagerSigningKey, status: ResponseStatus) -> Vec<RequestKind> {
    let mut kinds = Vec::new();
    while let Some(tx) = sim.agent.poll_transmit(sim.now) {
        kinds.push(tx.kind);
        let bytes = match tx.kind {
            RequestKind::ExportRequest | RequestKind::ExportReturn => {
                answer(key, &tx, status.clone(), sim.now)
            }
            _ => sim.manager.handle(&tx.body, sim.now),
        };
        sim.agent.handle_response(tx.id, Ok(bytes), sim.now);
    }
    kinds
}

#[test]
fn the_token_flag_decides_export_and_evaluation_never_allows_it() {
    let allowed = Scenario::new()
        .pool(ENHANCED, 10)
        .usage(ENHANCED, 5)
        .token(TokenOptions {
            export_controlled: true,
            ..TokenOptions::default()
        })
        .registered();
    assert!(allowed.agent.export_allowed(allowed.now));
    assert!(allowed.status().registration.export_controlled);
    // The checkbox is ticked by default (004:279): Not Allowed needs it cleared.
    let not = Scenario::new()
        .pool(ENHANCED, 10)
        .usage(ENHANCED, 5)
        .token(TokenOptions {
            export_controlled: false,
            ..TokenOptions::default()
        })
        .registered();
    assert!(!not.agent.export_allowed(not.now));
    let eval = Scenario::new().usage(ENHANCED, 5).evaluation();
    assert!(!eval.agent.export_allowed(eval.now));
}

#[test]
fn deregistering_an_allowed_instance_raises_the_not_allowed_alert_and_a_plain_one_does_not() {
    for flag in [true, false] {
        let mut sim = Scenario::new()
            .pool(ENHANCED, 10)
            .usage(ENHANCED, 5)
            .token(TokenOptions {
                export_controlled: flag,
                ..TokenOptions::default()
            })
            .registered();
        sim.agent.deregister(sim.now).unwrap();
        let alerts = events(&mut sim.agent)
            .into_iter()
            .filter(|e| *e == EventKind::ExportControlNotAllowed)
            .count();
        assert_eq!(alerts, usize::from(flag));
        assert!(!sim.agent.export_allowed(sim.now));
    }
}

#[test]
fn a_dormant_identity_that_allowed_export_raises_the_alert() {
    let sim = Scenario::new()
        .pool(ENHANCED, 10)
        .usage(ENHANCED, 5)
        .token(TokenOptions {
            export_controlled: true,
            ..TokenOptions::default()
        })
        .registered();
    let (_, stranger) = exporter();
    let mut agent = Agent::restore(
        &sim.agent.snapshot(),
        config(UDI, vec![stranger], 3),
        sim.now,
    )
    .unwrap();
    assert!(events(&mut agent).contains(&EventKind::ExportControlNotAllowed));
    assert!(!agent.export_allowed(sim.now));
}

#[test]
fn a_granted_key_allows_its_feature_and_verifies_offline_only_for_this_instance() {
    let (mut sim, key) = exporting();
    sim.agent.export_request(FEATURE, sim.now).unwrap();
    assert_eq!(
        exchange(&mut sim, &key, ResponseStatus::Ok),
        vec![RequestKind::ExportRequest]
    );
    assert!(sim.agent.export_key_allowed(FEATURE, sim.now));
    assert!(!sim
        .agent
        .export_key_allowed("EXPY_Export_Limit_Key", sim.now));
    assert!(
        events(&mut sim.agent).contains(&EventKind::ExportKeyGranted {
            feature: FEATURE.into()
        })
    );
    // The flag is a separate question.
    assert!(!sim.agent.export_allowed(sim.now));
    // Kept verbatim and re-verified at restore.
    let anchors = {
        let mut a = sim.manager.trust_anchors();
        a.push(TrustAnchor::new(
            key.public_key().clone(),
            Environment::Production,
        ));
        a
    };
    let restored = Agent::restore(&sim.agent.snapshot(), config(UDI, anchors, 4), sim.now).unwrap();
    assert!(restored.export_key_allowed(FEATURE, sim.now));
    // Without the key's anchor it is kept but does not allow the feature.
    let untrusted = Agent::restore(
        &sim.agent.snapshot(),
        config(UDI, sim.manager.trust_anchors(), 5),
        sim.now,
    )
    .unwrap();
    assert!(!untrusted.export_key_allowed(FEATURE, sim.now));
    let back = Agent::restore(
        &untrusted.snapshot(),
        config(
            UDI,
            {
                let mut a = sim.manager.trust_anchors();
                a.push(TrustAnchor::new(
                    key.public_key().clone(),
                    Environment::Production,
                ));
                a
            },
            6,
        ),
        sim.now,
    )
    .unwrap();
    assert!(back.export_key_allowed(FEATURE, sim.now));
}

#[test]
fn a_request_retries_with_the_backoff_while_the_manager_is_down_and_cancel_stops_it() {
    let (mut sim, key) = exporting();
    sim.agent.export_request(FEATURE, sim.now).unwrap();
    let started = sim.now;
    let mut attempts = Vec::new();
    for _ in 0..3 {
        let tx = sim
            .agent
            .poll_transmit(sim.now)
            .expect("the request is due");
        assert_eq!(tx.kind, RequestKind::ExportRequest);
        attempts.push(sim.now - started);
        sim.agent
            .handle_response(tx.id, Err(SendError::Timeout), sim.now);
        let (next, _) = sim.agent.poll_timeout().unwrap();
        sim.now = next;
        sim.agent.handle_timeout(sim.now);
    }
    assert_eq!(attempts, vec![minutes(0), minutes(15), minutes(45)]);
    // The manager is back: the retry succeeds.
    exchange(&mut sim, &key, ResponseStatus::Ok);
    assert!(sim.agent.export_key_allowed(FEATURE, sim.now));

    // A return that keeps failing, then cancelled: no more attempts.
    sim.agent.export_return(FEATURE, sim.now).unwrap();
    let tx = sim.agent.poll_transmit(sim.now).unwrap();
    assert_eq!(tx.kind, RequestKind::ExportReturn);
    sim.agent
        .handle_response(tx.id, Err(SendError::Timeout), sim.now);
    sim.agent.export_cancel(sim.now).unwrap();
    sim.now += hours(48);
    sim.agent.handle_timeout(sim.now);
    let kinds: Vec<_> = std::iter::from_fn(|| {
        let tx = sim.agent.poll_transmit(sim.now)?;
        let kind = tx.kind;
        let bytes = sim.manager.handle(&tx.body, sim.now);
        sim.agent.handle_response(tx.id, Ok(bytes), sim.now);
        Some(kind)
    })
    .collect();
    assert!(!kinds.contains(&RequestKind::ExportReturn), "{kinds:?}");
    assert!(sim.agent.export_key_allowed(FEATURE, sim.now), "still held");
}

#[test]
fn a_returned_key_no_longer_allows_its_feature() {
    let (mut sim, key) = exporting();
    sim.agent.export_request(FEATURE, sim.now).unwrap();
    exchange(&mut sim, &key, ResponseStatus::Ok);
    sim.agent.export_return(FEATURE, sim.now).unwrap();
    exchange(&mut sim, &key, ResponseStatus::Ok);
    assert!(!sim.agent.export_key_allowed(FEATURE, sim.now));
    assert!(
        events(&mut sim.agent).contains(&EventKind::ExportKeyReturned {
            feature: FEATURE.into()
        })
    );
    let before = sim.agent.snapshot();
    let err = sim.agent.export_return(FEATURE, sim.now).unwrap_err();
    assert_eq!(err, Error::ExportKeyNotHeld(FEATURE.into()));
    assert_eq!(sim.agent.snapshot(), before);
}

#[test]
fn a_permanent_refusal_is_reported_with_the_managers_message_and_not_retried() {
    for code in [
        codes::NOT_SUPPORTED,
        codes::NOT_RESTRICTED,
        codes::NO_KEYS_AVAILABLE,
    ] {
        let (mut sim, key) = exporting();
        sim.agent.export_request(FEATURE, sim.now).unwrap();
        exchange(
            &mut sim,
            &key,
            ResponseStatus::Failed {
                code: code.into(),
                message: format!("{code} message"),
            },
        );
        let refused = events(&mut sim.agent)
            .into_iter()
            .find(|e| matches!(e, EventKind::ExportKeyRefused { .. }))
            .expect("refused");
        assert_eq!(
            refused.to_string(),
            format!("Export authorization key for {FEATURE} refused: {code} message")
        );
        sim.now += days(2);
        sim.agent.handle_timeout(sim.now);
        assert!(std::iter::from_fn(|| sim.agent.poll_transmit(sim.now))
            .all(|tx| tx.kind != RequestKind::ExportRequest));
    }
}

/// The refusal the reference manager gives this registered agent's export key request.
fn reference_refusal(sim: &mut Sim) -> String {
    sim.agent.export_request(FEATURE, sim.now).unwrap();
    sim.pump();
    sim.take_events()
        .into_iter()
        .find(|e| matches!(e.kind, EventKind::ExportKeyRefused { .. }))
        .expect("refused")
        .to_string()
}

#[test]
fn a_reference_manager_of_an_unrestricted_account_says_keys_are_not_needed() {
    let mut sim = registered();
    let refused = reference_refusal(&mut sim);
    assert!(
        refused.ends_with(
            "The Smart Account is not under export restrictions: export-controlled \
             functionality follows the registration token"
        ),
        "{refused}"
    );
}

#[test]
fn the_reference_manager_without_the_capability_says_not_supported() {
    let mut sim = registered();
    sim.manager
        .set_export_restricted(smart_agent::manager::DEFAULT_SMART_ACCOUNT, true)
        .unwrap();
    sim.manager.set_export_keys_supported(false).unwrap();
    sim.agent.export_request(FEATURE, sim.now).unwrap();
    sim.pump();
    let refused = sim
        .take_events()
        .into_iter()
        .find(|e| matches!(e.kind, EventKind::ExportKeyRefused { .. }))
        .expect("refused");
    assert!(
        refused.to_string().ends_with(
            "Export authorization keys are not supported by this Smart Software Manager"
        ),
        "{refused}"
    );
}

#[test]
fn export_keys_are_refused_while_unregistered_and_in_reservation_mode() {
    let mut sim = Scenario::new().usage(ENHANCED, 1).evaluation();
    let before = sim.agent.snapshot();
    let err = sim.agent.export_request(FEATURE, sim.now).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Export authorization keys are available only to a registered product instance"
    );
    sim.agent.reservation_enable(sim.now).unwrap();
    let before_reserved = sim.agent.snapshot();
    assert_eq!(
        sim.agent.export_request(FEATURE, sim.now),
        Err(Error::ExportKeysNotAvailable)
    );
    assert_eq!(
        sim.agent.export_cancel(sim.now),
        Err(Error::ExportKeysNotAvailable)
    );
    assert_eq!(sim.agent.snapshot(), before_reserved);
    assert_ne!(before, before_reserved);
    assert_eq!(
        sim.agent.export_request("bad feature!", sim.now),
        Err(Error::ExportKeysNotAvailable)
    );
    let (mut registered, _) = exporting();
    let before = registered.agent.snapshot();
    assert_eq!(
        registered
            .agent
            .export_request("bad feature!", registered.now),
        Err(Error::InvalidFeature)
    );
    assert_eq!(registered.agent.snapshot(), before);
}

#[test]
fn deregistration_returns_the_keys_with_the_deregister_and_drops_them() {
    let (mut sim, key) = exporting();
    sim.agent.export_request(FEATURE, sim.now).unwrap();
    exchange(&mut sim, &key, ResponseStatus::Ok);
    sim.agent.deregister(sim.now).unwrap();
    assert!(!sim.agent.export_key_allowed(FEATURE, sim.now));
    let tx = sim.agent.poll_transmit(sim.now).unwrap();
    assert_eq!(tx.kind, RequestKind::Deregister);
    let parsed = decode_request(&tx.body, 1 << 20).unwrap();
    let returned = &parsed.request.body.as_deregister().unwrap().export_keys;
    assert_eq!(returned, &vec![Uuid([7; 16]).to_string()]);
    assert_eq!(
        sim.status().registration.state,
        RegistrationState::Unregistered
    );
}

#[test]
fn an_identity_with_its_export_flag_flipped_and_resigned_by_an_untrusted_key_is_rejected() {
    let (signer, anchor) = exporter();
    let mut sim = Scenario::new()
        .trusting(vec![anchor])
        .pool(ENHANCED, 10)
        .usage(ENHANCED, 5)
        .evaluation();
    let token = sim.token_with(TokenOptions {
        export_controlled: false,
        ..TokenOptions::default()
    });
    sim.agent
        .register(&token, smart_agent::Force::No, sim.now)
        .unwrap();
    let tx = sim.agent.poll_transmit(sim.now).unwrap();
    let genuine = String::from_utf8(sim.manager.handle(&tx.body, sim.now)).unwrap();
    let (start, end) = (
        genuine.find("<identity>").unwrap(),
        genuine.find("</identity>").unwrap() + "</identity>".len(),
    );
    let identity = genuine[start..end].replace(
        "<exportControlled>false</exportControlled>",
        "<exportControlled>true</exportControlled>",
    );
    assert_ne!(
        identity,
        genuine[start..end],
        "the flag is in the certificate"
    );
    let stranger = ManagerSigningKey::generate().unwrap();
    let identity =
        String::from_utf8(wire::resign(identity.as_bytes(), &stranger).unwrap()).unwrap();
    let altered = format!("{}{identity}{}", &genuine[..start], &genuine[end..]);
    // The envelope itself is signed by a trusted key: only the certificate is untrusted.
    let forged = wire::resign(altered.as_bytes(), &signer).unwrap();
    let before = sim.agent.snapshot_parts();
    sim.agent.handle_response(tx.id, Ok(forged), sim.now);
    assert_eq!(sim.agent.snapshot_parts().licensing, before.licensing);
    let st = sim.status();
    assert_eq!(
        st.registration.state,
        RegistrationState::RegistrationPending
    );
    assert!(!sim.agent.export_allowed(sim.now));
}

#[test]
fn export_key_status_lists_requests_with_their_retry_keys_held_and_returns() {
    use smart_agent::{ExportKeyState, ExportKeyStatus};
    let (mut sim, key) = exporting();
    assert_eq!(sim.agent.export_key_status(), vec![]);
    sim.agent.export_request(FEATURE, sim.now).unwrap();
    let requested = ExportKeyStatus {
        feature: FEATURE.into(),
        state: ExportKeyState::Requested,
        issued: None,
        next_attempt: None,
    };
    assert_eq!(sim.agent.export_key_status(), vec![requested.clone()]);
    // A failed attempt: the retry time is shown.
    let tx = sim.agent.poll_transmit(sim.now).unwrap();
    sim.agent
        .handle_response(tx.id, Err(SendError::Timeout), sim.now);
    let retry = sim.agent.poll_timeout().unwrap().0;
    assert_eq!(retry, sim.now + minutes(15));
    assert_eq!(
        sim.agent.export_key_status(),
        vec![ExportKeyStatus {
            next_attempt: Some(retry),
            ..requested
        }]
    );
    sim.now = retry;
    sim.agent.handle_timeout(sim.now);
    exchange(&mut sim, &key, ResponseStatus::Ok);
    let held = ExportKeyStatus {
        feature: FEATURE.into(),
        state: ExportKeyState::Held,
        issued: Some(retry),
        next_attempt: None,
    };
    assert_eq!(sim.agent.export_key_status(), vec![held.clone()]);
    sim.agent.export_return(FEATURE, sim.now).unwrap();
    assert_eq!(
        sim.agent.export_key_status(),
        vec![ExportKeyStatus {
            state: ExportKeyState::Returning,
            ..held
        }]
    );
    exchange(&mut sim, &key, ResponseStatus::Ok);
    assert_eq!(sim.agent.export_key_status(), vec![]);
}
