//! Atomicity, malformed input, protocol versions, key rotation and statistics.

use proptest::prelude::*;

use super::*;
use crate::wire::{parse_identity, ResponseStatus};
use catalogue::{UCM_BASIC, UCM_ENHANCED};

/// Everything observable about a manager, to compare before and after a request.
fn observe(
    m: &Manager,
) -> (
    String,
    Vec<InstanceInfo>,
    Vec<LicenseLine>,
    Vec<TrustAnchor>,
) {
    (
        m.dump(),
        m.instances(),
        m.licenses(&m.default_virtual_account()),
        m.trust_anchors(),
    )
}

/// Checks that an answer is signed by the manager's current key, whatever it echoes, and
/// returns its envelope.
fn signed_envelope(m: &Manager, raw: &[u8]) -> Response {
    let parsed = decode_response(raw, MAX_REQUEST_LEN).unwrap();
    let response = parsed.response.clone();
    let expected = Expected {
        kind: response.kind,
        nonce: &response.nonce,
        piid: response.piid,
    };
    verify_response(&parsed, &[m.trust_anchor()], m.environment(), &expected).unwrap();
    response
}

fn request_with(d: &mut Device, body: RequestBody, now: DateTime<Utc>) -> Vec<u8> {
    d.request(body, now).0
}

#[test]
fn failed_request_leaves_manager_unchanged() {
    let (mut m, mut d, _) = registered(&[(UCM_ENHANCED, 10)]);
    grant(authorize(
        &mut m,
        &mut d,
        1,
        &[(UCM_ENHANCED, 4), (UCM_BASIC, 2)],
        t0(),
    ));
    let va = m.default_virtual_account();
    let one_use = TokenOptions {
        max_uses: Some(1),
        ..TokenOptions::default()
    };
    let used = m.create_token(&va, one_use, t0()).unwrap();
    identity(register(&mut m, &mut Device::new(2), &used, t0()));
    let revoked = m.create_token(&va, TokenOptions::default(), t0()).unwrap();
    m.revoke_token(&revoked).unwrap();
    let short = TokenOptions {
        expires_after: days(1),
        ..TokenOptions::default()
    };
    let expired = m.create_token(&va, short, t0()).unwrap();
    let unknown = Token::parse("bm90LWEtdG9rZW4%0A").unwrap();

    let mut cases: Vec<(&str, Vec<u8>, DateTime<Utc>, &str)> = Vec::new();
    let valid = request_with(&mut d, usage_body(9, &[(UCM_ENHANCED, 9)]), t0());
    cases.push((
        "garbage",
        b"\x00\xffnot xml".to_vec(),
        t0(),
        codes::MALFORMED,
    ));
    cases.push((
        "truncated",
        valid[..valid.len() / 2].to_vec(),
        t0(),
        codes::MALFORMED,
    ));
    let mut oversize = valid.clone();
    oversize.resize(MAX_REQUEST_LEN + 1, b' ');
    cases.push(("oversize", oversize, t0(), codes::MALFORMED));
    let mut flipped = valid.clone();
    let at = flipped.windows(8).position(|w| w == b"<count>9").unwrap() + 7;
    flipped[at] = b'8';
    cases.push(("tampered", flipped, t0(), codes::BAD_SIGNATURE));
    let mut newer = Device::new(1);
    newer.piid = d.piid;
    newer.version = PROTOCOL_VERSION + 1;
    let body = usage_body(9, &[(UCM_ENHANCED, 9)]);
    cases.push((
        "version too high",
        request_with(&mut newer, body, t0()),
        t0(),
        "VERSION_TOO_HIGH",
    ));
    for (name, token) in [
        ("used-up token", &used),
        ("revoked token", &revoked),
        ("expired token", &expired),
        ("unknown token", &unknown),
    ] {
        let mut fresh = Device::new(3);
        let body = fresh.register_body(token);
        cases.push((
            name,
            request_with(&mut fresh, body, t0() + days(2)),
            t0() + days(2),
            codes::TOKEN_INVALID,
        ));
    }
    let mut forger = Device::new(4);
    let body = forger.register_body(&revoked);
    forger.key = DeviceKey::from_seed([44; 32]);
    cases.push((
        "register bad signature",
        request_with(&mut forger, body, t0()),
        t0(),
        codes::BAD_SIGNATURE,
    ));
    let mut stranger = Device::new(5);
    stranger.piid = Some(Uuid([5; 16]));
    let body = usage_body(9, &[]);
    cases.push((
        "unknown instance",
        request_with(&mut stranger, body, t0()),
        t0(),
        codes::UNKNOWN_INSTANCE,
    ));
    let mut impostor = Device::new(1);
    impostor.piid = d.piid;
    impostor.key = DeviceKey::from_seed([6; 32]);
    let body = usage_body(9, &[]);
    cases.push((
        "bad signature",
        request_with(&mut impostor, body, t0()),
        t0(),
        codes::BAD_SIGNATURE,
    ));
    let mut moved = Device::new(1);
    moved.piid = d.piid;
    moved.udi = "PID:UCM,SN:moved".parse().unwrap();
    let body = usage_body(9, &[]);
    cases.push((
        "udi mismatch",
        request_with(&mut moved, body, t0()),
        t0(),
        codes::UDI_MISMATCH,
    ));
    let body = usage_body(9, &[(UCM_BASIC, 1), (UCM_BASIC, 2)]);
    cases.push((
        "duplicate tag",
        request_with(&mut d, body, t0()),
        t0(),
        codes::MALFORMED,
    ));
    let lapsed = t0() + days(366);
    let body = RequestBody::renew_id();
    cases.push((
        "expired identity",
        request_with(&mut d, body, lapsed),
        lapsed,
        codes::IDENTITY_EXPIRED,
    ));
    let body = usage_body(9, &[(UCM_BASIC, 1)]);
    cases.push((
        "authorize when expired",
        request_with(&mut d, body, lapsed),
        lapsed,
        codes::IDENTITY_EXPIRED,
    ));

    for (name, raw, now, expected) in cases {
        let before = observe(&m);
        let received = m.requests_received();
        let answer = m.handle(&raw, now);
        let envelope = signed_envelope(&m, &answer);
        let code = match envelope.status {
            ResponseStatus::Failed { code, .. } => code,
            ResponseStatus::VersionTooHigh => "VERSION_TOO_HIGH".to_string(),
            ResponseStatus::Ok => panic!("{name} was accepted"),
        };
        assert_eq!(code, expected, "{name}");
        assert_eq!(observe(&m), before, "{name} changed the manager");
        assert_eq!(m.requests_received(), received + 1, "{name}");
    }
}

#[test]
fn version_too_high_changes_nothing() {
    let (mut m, mut d, token) = registered(&[(UCM_BASIC, 1)]);
    m.set_max_protocol_version(0);
    let before = observe(&m);
    let answer = authorize(&mut m, &mut d, 1, &[(UCM_BASIC, 1)], t0());
    assert_eq!(answer, Answer::VersionTooHigh);
    let mut fresh = Device::new(2);
    assert_eq!(
        register(&mut m, &mut fresh, &token, t0()),
        Answer::VersionTooHigh
    );
    assert_eq!(observe(&m), before);
    m.set_max_protocol_version(PROTOCOL_VERSION);
    grant(authorize(&mut m, &mut d, 1, &[(UCM_BASIC, 1)], t0()));
}

#[test]
fn unparseable_request_gets_a_signed_malformed_answer() {
    let mut m = manager();
    let raw = m.handle(b"definitely not a request", t0());
    let (code, message) = failure(verify(&m, &raw, RequestKind::Register, "", None));
    assert_eq!(code, codes::MALFORMED);
    // The manager read a request, not an answer (issue 10: it said "malformed answer").
    assert!(message.starts_with("malformed request: "), "{message}");
    // A truncated request still has its type, nonce and piid echoed where readable.
    let (_, mut d, _) = registered(&[]);
    let (valid, nonce) = d.request(usage_body(1, &[]), t0());
    let cut = valid.len() - 20;
    let raw = m.handle(&valid[..cut], t0());
    let (code, message) = failure(verify(&m, &raw, RequestKind::Authorize, &nonce, d.piid));
    assert_eq!(code, codes::MALFORMED);
    assert_eq!(message, "request is truncated");
    assert_eq!(m.requests_received(), 2);
}

#[test]
fn answers_verify_with_current_anchor_after_rotation() {
    let (mut m, mut d, token) = registered(&[(UCM_BASIC, 1)]);
    let (first_identity, _) = identity(exchange(&mut m, &mut d, RequestBody::renew_id(), t0()));
    let old = m.trust_anchor();
    let new = m.rotate_signing_key().unwrap();
    assert_ne!(old, new);
    assert_eq!(m.trust_anchor(), new);
    assert_eq!(m.trust_anchors(), vec![old.clone(), new.clone()]);
    // `exchange` verifies every answer, and the grant inside, with the new anchor only.
    let g = grant(authorize(&mut m, &mut d, 1, &[(UCM_BASIC, 1)], t0()));
    assert_eq!(g.entries.len(), 1);
    let (renewed, _) = identity(exchange(&mut m, &mut d, RequestBody::renew_id(), t0()));
    let env = m.environment();
    let verifies = |raw: &[u8], anchor: &TrustAnchor| {
        parse_identity(raw, Some((std::slice::from_ref(anchor), env))).is_ok()
    };
    assert!(verifies(&renewed, &new));
    assert!(!verifies(&renewed, &old));
    // An identity issued before the rotation still verifies with the retired anchor.
    assert!(verifies(&first_identity, &old));
    assert!(!verifies(&first_identity, &new));
    // A repeated registration answers the stored identity: the envelope is signed with the
    // new key, the identity verifies with the list of anchors.
    let mut other = Device::new(2);
    identity(register(&mut m, &mut other, &token, t0()));
    m.rotate_signing_key().unwrap();
    let (raw, nonce) = other.request(other.register_body(&token), t0());
    let answer = m.handle(&raw, t0());
    let parsed = decode_response(&answer, MAX_REQUEST_LEN).unwrap();
    let expected = Expected {
        kind: RequestKind::Register,
        nonce: &nonce,
        piid: None,
    };
    assert!(verify_response(&parsed, &m.trust_anchors(), env, &expected).is_ok());
}

#[test]
fn a_manager_restarted_with_its_key_keeps_its_anchor() {
    let first = manager();
    let key = crate::crypto::ManagerSigningKey::from_pkcs8(first.signing_key().pkcs8()).unwrap();
    let random = Box::new(DeterministicRandom::new(8));
    let again = Manager::with_signing_key(Environment::Development, random, key).unwrap();
    assert_eq!(again.trust_anchor(), first.trust_anchor());
    assert_eq!(again.trust_anchors(), vec![first.trust_anchor()]);
}

#[test]
fn requests_received_counts_every_call() {
    let (mut m, mut d, _) = registered(&[]);
    assert_eq!(m.requests_received(), 1);
    m.handle(b"", t0());
    failure(exchange(
        &mut m,
        &mut Device::new(7),
        RequestBody::renew_id(),
        t0(),
    ));
    grant(authorize(&mut m, &mut d, 1, &[], t0()));
    assert_eq!(m.requests_received(), 4);
}

#[test]
fn development_answers_never_verify_as_production() {
    let (mut m, mut d, _) = registered(&[]);
    let (raw, nonce) = d.request(RequestBody::renew_id(), t0());
    let answer = m.handle(&raw, t0());
    let parsed = decode_response(&answer, MAX_REQUEST_LEN).unwrap();
    let production = TrustAnchor::new(m.trust_anchor().key, Environment::Production);
    let expected = Expected {
        kind: RequestKind::RenewId,
        nonce: &nonce,
        piid: d.piid,
    };
    assert!(verify_response(&parsed, &[production], Environment::Production, &expected).is_err());
}

#[test]
fn administration_refusals_change_nothing() {
    let mut m = manager();
    let before = observe(&m);
    let missing = VirtualAccountId::new(DEFAULT_SMART_ACCOUNT, "missing");
    assert_eq!(
        m.create_token(&missing, TokenOptions::default(), t0()),
        Err(ManagerError::UnknownVirtualAccount(missing.clone()))
    );
    assert!(m
        .add_licenses(&missing, &tag(UCM_BASIC), 1, None, None)
        .is_err());
    assert!(m.add_smart_account(DEFAULT_SMART_ACCOUNT).is_err());
    assert!(m
        .add_virtual_account(DEFAULT_SMART_ACCOUNT, DEFAULT_VIRTUAL_ACCOUNT)
        .is_err());
    assert_eq!(observe(&m), before);
    assert_eq!(m.virtual_accounts(), vec![m.default_virtual_account()]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_bytes_get_one_signed_answer(raw in proptest::collection::vec(any::<u8>(), 0..400)) {
        let mut m = manager();
        let before = observe(&m);
        let answer = m.handle(&raw, t0());
        let envelope = signed_envelope(&m, &answer);
        prop_assert_ne!(envelope.status, ResponseStatus::Ok);
        prop_assert_eq!(observe(&m), before);
    }

    #[test]
    fn a_damaged_request_changes_nothing(at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let (mut m, mut d, _) = registered(&[(UCM_BASIC, 1)]);
        let (mut raw, _) = d.request(usage_body(1, &[(UCM_BASIC, 1)]), t0());
        let i = at.index(raw.len());
        prop_assume!(raw[i] != byte);
        raw[i] = byte;
        // The damage may still leave a valid request only if it misses every signed byte,
        // which is impossible: everything but the signature is signed.
        let before = observe(&m);
        let answer = m.handle(&raw, t0());
        let envelope = signed_envelope(&m, &answer);
        prop_assert_ne!(envelope.status, ResponseStatus::Ok);
        prop_assert_eq!(observe(&m), before);
    }
}
