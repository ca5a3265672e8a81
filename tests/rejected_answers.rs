//! Answers the agent must reject (SPEC §9, §12). Each case starts from a genuine answer and
//! changes one thing; the licensing part stays byte-identical and only the communication part
//! records the failure.

mod common;

use common::*;
use smart_agent::crypto::{ManagerSigningKey, SignatureError};
use smart_agent::status::Outcome;
use smart_agent::wire::{self, AnswerError, RequestKind};
use smart_agent::{
    AuthorizationState, Environment, EventKind, FailureKind, Force, RegistrationState, TrustAnchor,
};

const UNKNOWN_ERROR: &str = "The requested operation was not successful due to an unknown error";

struct Keys {
    /// A production key the agent trusts besides the manager's (lets tests sign altered answers).
    trusted: ManagerSigningKey,
    /// A development key the agent knows as development.
    development: ManagerSigningKey,
}

fn registered() -> (Sim, Keys) {
    let keys = Keys {
        trusted: ManagerSigningKey::generate().unwrap(),
        development: ManagerSigningKey::generate().unwrap(),
    };
    let mut sim = Scenario::new()
        .trusting(vec![
            TrustAnchor::new(keys.trusted.public_key().clone(), Environment::Production),
            TrustAnchor::new(
                keys.development.public_key().clone(),
                Environment::Development,
            ),
        ])
        .pool(ENHANCED, 10)
        .usage(ENHANCED, 5)
        .registered();
    assert_eq!(
        sim.status().authorization.state,
        AuthorizationState::Authorized
    );
    sim.advance(days(1));
    sim.take_events();
    (sim, keys)
}

/// Sends a manual authorization, answers it with `alter(genuine answer)`, and checks that the
/// answer was rejected for `expected` with nothing but the communication part changed.
fn rejects(alter: impl FnOnce(Vec<u8>, &Keys) -> Vec<u8>, expected: FailureKind) {
    let (mut sim, keys) = registered();
    sim.agent.renew_auth(sim.now).unwrap();
    let tx = sim.agent.poll_transmit(sim.now).unwrap();
    assert_eq!(tx.kind, RequestKind::Authorize);
    let genuine = sim.manager.handle(&tx.body, sim.now);
    let before = sim.agent.snapshot_parts();
    let status_before = sim.status();
    sim.agent
        .handle_response(tx.id, Ok(alter(genuine, &keys)), sim.now);
    let after = sim.agent.snapshot_parts();
    assert_eq!(before.licensing, after.licensing, "licensing part changed");
    // The failure is recorded in the communication part: a restored agent still shows it.
    let restored = smart_agent::Agent::from_parts(
        &after,
        config(UDI, sim.manager.trust_anchors(), 77),
        sim.now,
    )
    .unwrap();
    assert_eq!(
        restored.status(sim.now).authorization.last_communication,
        sim.status().authorization.last_communication
    );

    let events: Vec<_> = std::iter::from_fn(|| sim.agent.poll_event()).collect();
    let failure = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::AuthorizationFailed { failure, .. } => Some(failure.clone()),
            _ => None,
        })
        .expect("an AuthorizationFailed event");
    assert_eq!(failure.kind, expected);
    assert_eq!(failure.message(), UNKNOWN_ERROR);
    assert!(failure.detail().is_some());
    let st = sim.status();
    assert_eq!(
        st.authorization.last_communication.unwrap().outcome,
        Outcome::Failed {
            reason: UNKNOWN_ERROR.into()
        }
    );
    assert_eq!(st.authorization.state, status_before.authorization.state);
    assert_eq!(
        st.authorization.deadline,
        status_before.authorization.deadline
    );
    // Retried on the §4 backoff.
    assert_eq!(
        st.authorization.next_communication,
        Some(sim.now + minutes(15))
    );
}

fn replace_first(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(text.contains(from), "{from} not in answer");
    text.replacen(from, to, 1).into_bytes()
}

fn element(bytes: &[u8], name: &str) -> String {
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let open = format!("<{name}>");
    let start = text.find(&open).unwrap() + open.len();
    let end = start + text[start..].find('<').unwrap();
    text[start..end].to_string()
}

#[test]
fn answer_signed_by_an_unknown_key_is_rejected() {
    rejects(
        |genuine, _| wire::resign(&genuine, &ManagerSigningKey::generate().unwrap()).unwrap(),
        FailureKind::Rejected(AnswerError::Signature(SignatureError::Untrusted)),
    );
}

#[test]
fn answer_signed_by_a_development_key_is_rejected_by_a_production_agent() {
    rejects(
        |genuine, keys| wire::resign(&genuine, &keys.development).unwrap(),
        FailureKind::Rejected(AnswerError::Signature(SignatureError::WrongEnvironment {
            signed: Environment::Development,
            expected: Environment::Production,
        })),
    );
}

#[test]
fn answer_naming_the_development_environment_is_rejected_by_a_production_agent() {
    rejects(
        |genuine, keys| {
            let dev = replace_first(
                &genuine,
                "<environment>production</environment>",
                "<environment>development</environment>",
            );
            wire::resign(&dev, &keys.trusted).unwrap()
        },
        FailureKind::Rejected(AnswerError::Signature(SignatureError::WrongEnvironment {
            signed: Environment::Development,
            expected: Environment::Production,
        })),
    );
}

#[test]
fn answer_with_another_nonce_is_rejected() {
    rejects(
        |genuine, keys| {
            let nonce = element(&genuine, "nonce");
            let other = "0".repeat(nonce.len());
            let altered = replace_first(&genuine, &nonce, &other);
            wire::resign(&altered, &keys.trusted).unwrap()
        },
        FailureKind::Rejected(AnswerError::NonceMismatch),
    );
}

#[test]
fn answer_with_another_piid_is_rejected() {
    rejects(
        |genuine, keys| {
            let piid = element(&genuine, "piid");
            let altered = replace_first(&genuine, &piid, "00000000-0000-4000-8000-000000000000");
            wire::resign(&altered, &keys.trusted).unwrap()
        },
        FailureKind::Rejected(AnswerError::PiidMismatch),
    );
}

#[test]
fn answer_with_one_flipped_byte_in_the_signed_span_is_rejected() {
    rejects(
        |genuine, _| {
            let mut altered = genuine.clone();
            let at = String::from_utf8(genuine)
                .unwrap()
                .find("<serverTime>")
                .unwrap()
                + "<serverTime>".len()
                + 3;
            altered[at] = if altered[at] == b'7' { b'8' } else { b'7' };
            altered
        },
        FailureKind::Rejected(AnswerError::Signature(SignatureError::Untrusted)),
    );
}

#[test]
fn truncated_answer_is_rejected() {
    rejects(
        |genuine, _| genuine[..genuine.len() * 2 / 3].to_vec(),
        FailureKind::Rejected(AnswerError::Truncated),
    );
}

#[test]
fn oversized_answer_is_rejected_before_parsing() {
    let max = smart_agent::Policy::default().max_answer_bytes;
    rejects(
        |mut genuine, _| {
            genuine.resize(max + 1, b' ');
            genuine
        },
        FailureKind::Rejected(AnswerError::Oversize { len: max + 1, max }),
    );
}

#[test]
fn grant_for_another_usage_report_is_rejected() {
    rejects(
        |genuine, keys| {
            // Re-sign the inner grant with a different sequence, then the envelope.
            let text = String::from_utf8(genuine).unwrap();
            let start = text.find("<grant>").unwrap();
            let end = text.find("</grant>").unwrap() + "</grant>".len();
            let seq = element(&text.as_bytes()[start..end], "sequence");
            let grant = text[start..end].replacen(
                &format!("<sequence>{seq}</sequence>"),
                "<sequence>999</sequence>",
                1,
            );
            let grant = wire::resign(grant.as_bytes(), &keys.trusted).unwrap();
            let altered = format!(
                "{}{}{}",
                &text[..start],
                String::from_utf8(grant).unwrap(),
                &text[end..]
            );
            wire::resign(altered.as_bytes(), &keys.trusted).unwrap()
        },
        FailureKind::Rejected(AnswerError::Grant(wire::GrantError::OtherReport)),
    );
}

#[test]
fn version_too_high_is_recorded_like_a_rejected_answer() {
    let (mut sim, _) = registered();
    sim.manager.set_max_protocol_version(0);
    sim.agent.renew_auth(sim.now).unwrap();
    let before = sim.agent.snapshot_parts();
    sim.pump();
    let after = sim.agent.snapshot_parts();
    assert_eq!(before.licensing, after.licensing);
    let failure = sim
        .take_events()
        .into_iter()
        .find_map(|e| match e.kind {
            EventKind::AuthorizationFailed { failure, .. } => Some(failure),
            _ => None,
        })
        .unwrap();
    assert_eq!(failure.kind, FailureKind::VersionTooHigh);
    assert_eq!(failure.message(), UNKNOWN_ERROR);
    assert_eq!(
        failure.detail().as_deref(),
        Some("protocol version not supported by the manager")
    );
    let st = sim.status();
    assert_eq!(st.authorization.state, AuthorizationState::Authorized);
    // Retried like any failed renewal: the §4 backoff (our reading of "the normal schedule").
    assert_eq!(
        st.authorization.next_communication,
        Some(sim.now + minutes(15))
    );
    assert_eq!(
        st.authorization.last_communication.unwrap().outcome,
        Outcome::Failed {
            reason: UNKNOWN_ERROR.into()
        }
    );
}

#[test]
fn a_grant_entry_that_fails_validation_makes_only_its_tag_invalid() {
    let (mut sim, keys) = registered();
    sim.pool(BASIC, 5);
    sim.declare_use(BASIC, 1);
    sim.agent.renew_auth(sim.now).unwrap();
    let tx = sim.agent.poll_transmit(sim.now).unwrap();
    let genuine = String::from_utf8(sim.manager.handle(&tx.body, sim.now)).unwrap();
    // Break the Basic entry's count inside the grant; re-sign grant and envelope with a key
    // the agent trusts, so that only entry validation can object.
    let start = genuine.find("<grant>").unwrap();
    let end = genuine.find("</grant>").unwrap() + "</grant>".len();
    let grant = &genuine[start..end];
    let basic_at = grant.find(BASIC).unwrap();
    let requested_at = basic_at + grant[basic_at..].find("<requested>1<").unwrap();
    let broken = format!(
        "{}<requested>one<{}",
        &grant[..requested_at],
        &grant[requested_at + "<requested>1<".len()..]
    );
    let grant = wire::resign(broken.as_bytes(), &keys.trusted).unwrap();
    let grant = String::from_utf8(grant).unwrap();
    let altered = format!("{}{}{}", &genuine[..start], grant, &genuine[end..]);
    let altered = wire::resign(altered.as_bytes(), &keys.trusted).unwrap();
    sim.agent.handle_response(tx.id, Ok(altered), sim.now);
    let st = sim.status();
    assert_eq!(
        st.entitlements[0].status,
        smart_agent::TagStatus::InCompliance
    );
    assert_eq!(st.entitlements[1].status, smart_agent::TagStatus::Invalid);
    assert_eq!(
        st.entitlements[1]
            .status
            .text(smart_agent::Vocabulary::Expressway),
        "Invalid"
    );
    // The rest of the grant applies.
    assert_eq!(st.authorization.state, AuthorizationState::Authorized);
    assert_eq!(st.authorization.since, Some(sim.now));
}

#[test]
fn rejected_registration_answer_keeps_the_registration_pending() {
    let mut sim = Sim::new();
    let token = sim.token();
    sim.agent.register(&token, Force::No, sim.now).unwrap();
    let tx = sim.agent.poll_transmit(sim.now).unwrap();
    let genuine = sim.manager.handle(&tx.body, sim.now);
    let before = sim.agent.snapshot_parts();
    let forged = wire::resign(&genuine, &ManagerSigningKey::generate().unwrap()).unwrap();
    sim.agent.handle_response(tx.id, Ok(forged), sim.now);
    assert_eq!(sim.agent.snapshot_parts().licensing, before.licensing);
    let st = sim.status();
    assert_eq!(
        st.registration.state,
        RegistrationState::RegistrationPending
    );
    assert_eq!(
        st.registration.next_registration_attempt,
        Some(sim.now + minutes(15))
    );
    // The retry carries the same device key, so the manager sees the same registration.
    sim.run_until(sim.now + minutes(15));
    assert_eq!(
        sim.status().registration.state,
        RegistrationState::Registered
    );
    assert_eq!(sim.manager.instances().len(), 1);
}

#[test]
fn answer_to_a_stale_transmit_is_ignored_without_recording_anything() {
    let (mut sim, _) = registered();
    sim.agent.renew_auth(sim.now).unwrap();
    let tx = sim.agent.poll_transmit(sim.now).unwrap();
    let before = sim.agent.snapshot();
    let stale = smart_agent::TransmitId(tx.id.0 + 100);
    sim.agent
        .handle_response(stale, Ok(b"<garbage/>".to_vec()), sim.now + hours(5));
    assert_eq!(sim.agent.snapshot(), before);
}
