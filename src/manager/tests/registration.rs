//! Registration, identity renewal and deregistration.

use super::*;

#[test]
fn register_issues_a_365_day_identity_in_the_tokens_account() {
    let mut m = manager();
    m.add_smart_account("BU Production Test").unwrap();
    let va = m
        .add_virtual_account("BU Production Test", "TAC-CollabTesting")
        .unwrap();
    let token = m.create_token(&va, TokenOptions::default(), t0()).unwrap();
    let mut d = Device::new(1);
    let (_, cert) = identity(register(&mut m, &mut d, &token, t0()));
    assert_eq!(cert.udi, d.udi);
    assert_eq!(cert.public_key, d.key.public_key());
    assert_eq!(cert.not_before, t0());
    assert_eq!(cert.not_after, t0() + days(365));
    assert_eq!(cert.smart_account, "BU Production Test");
    assert_eq!(cert.virtual_account, "TAC-CollabTesting");
    // The token's export checkbox is ticked by default (004:279).
    assert!(cert.export_controlled);
    assert_eq!(cert.environment, Environment::Development);
    let instances = m.instances();
    assert_eq!(instances.len(), 1);
    let info = &instances[0];
    assert_eq!(info.piid, cert.piid);
    assert_eq!(info.virtual_account, va);
    assert_eq!(info.hostname.as_deref(), Some("ucm-1.example.com"));
    assert_eq!(info.ip.as_deref(), Some("192.0.2.10"));
    assert_eq!(info.registered_at, t0());
    assert_eq!(info.identity_not_after, t0() + days(365));
    assert_eq!(info.last_contact, t0());
    assert_eq!(info.last_usage_sequence, None);
}

#[test]
fn export_flag_comes_from_the_token() {
    let mut m = manager();
    let va = m.default_virtual_account();
    let options = TokenOptions {
        export_controlled: true,
        ..TokenOptions::default()
    };
    let token = m.create_token(&va, options, t0()).unwrap();
    let (_, cert) = identity(register(&mut m, &mut Device::new(1), &token, t0()));
    assert!(cert.export_controlled);
    assert!(m.instances()[0].export_controlled);
}

#[test]
fn piids_are_random_version_4_uuids() {
    let mut m = manager();
    let token = m
        .create_token(&m.default_virtual_account(), TokenOptions::default(), t0())
        .unwrap();
    let (_, a) = identity(register(&mut m, &mut Device::new(1), &token, t0()));
    let (_, b) = identity(register(&mut m, &mut Device::new(2), &token, t0()));
    assert_ne!(a.piid, b.piid);
    assert_eq!(a.piid.0[6] >> 4, 4);
}

fn refused_token(m: &mut Manager, token: &Token, now: DateTime<Utc>) -> String {
    let (code, message) = failure(register(m, &mut Device::new(9), token, now));
    assert_eq!(code, codes::TOKEN_INVALID);
    message
}

#[test]
fn expired_token_is_refused_with_token_invalid() {
    let mut m = manager();
    let options = TokenOptions {
        expires_after: days(1),
        ..TokenOptions::default()
    };
    let token = m
        .create_token(&m.default_virtual_account(), options, t0())
        .unwrap();
    let message = refused_token(&mut m, &token, t0() + days(1));
    assert!(message.contains("expired"), "{message}");
    assert!(m.instances().is_empty());
}

#[test]
fn used_up_token_is_refused() {
    let mut m = manager();
    let options = TokenOptions {
        max_uses: Some(1),
        ..TokenOptions::default()
    };
    let token = m
        .create_token(&m.default_virtual_account(), options, t0())
        .unwrap();
    identity(register(&mut m, &mut Device::new(1), &token, t0()));
    let message = refused_token(&mut m, &token, t0());
    assert!(message.contains("no uses left"), "{message}");
    assert_eq!(m.instances().len(), 1);
}

#[test]
fn revoked_token_is_refused() {
    let mut m = manager();
    let token = m
        .create_token(&m.default_virtual_account(), TokenOptions::default(), t0())
        .unwrap();
    m.revoke_token(&token).unwrap();
    let message = refused_token(&mut m, &token, t0());
    assert!(message.contains("revoked"), "{message}");
}

#[test]
fn unknown_token_is_refused() {
    let mut m = manager();
    let token = Token::parse("NjEwN2ZjZjEtZmI1Zi00%0AOTQ3ODV8").unwrap();
    let message = refused_token(&mut m, &token, t0());
    assert!(message.contains("not known"), "{message}");
    assert_eq!(m.revoke_token(&token), Err(ManagerError::UnknownToken));
}

#[test]
fn register_is_idempotent_for_same_udi_and_key() {
    let mut m = manager();
    let options = TokenOptions {
        max_uses: Some(1),
        ..TokenOptions::default()
    };
    let token = m
        .create_token(&m.default_virtual_account(), options, t0())
        .unwrap();
    let mut d = Device::new(1);
    let (first, cert) = identity(register(&mut m, &mut d, &token, t0()));
    // The answer was lost; the device resends its registration (fresh nonce) an hour later.
    let later = t0() + TimeDelta::hours(1);
    d.piid = None;
    let (again, same) = identity(register(&mut m, &mut d, &token, later));
    assert_eq!(again, first);
    assert_eq!(same, cert);
    let instances = m.instances();
    assert_eq!(instances.len(), 1);
    assert_eq!(instances[0].last_contact, later);
    // The single use was not consumed twice: a third device is refused, the same one not.
    refused_token(&mut m, &token, later);
    // A repeat is the same device (same key) asking again: answered even after the token was
    // revoked or expired, so a crash-resend is never refused.
    m.revoke_token(&token).unwrap();
    let after_expiry = t0() + TimeDelta::days(31);
    let (still, _) = identity(register(&mut m, &mut d, &token, after_expiry));
    assert_eq!(still, first);
    assert_eq!(m.instances().len(), 1);
}

#[test]
fn reregistration_with_a_new_key_replaces_the_instance() {
    let mut m = manager();
    let va = m.default_virtual_account();
    let basic = catalogue::UCM_BASIC;
    m.add_licenses(&va, &tag(basic), 5, None, None).unwrap();
    m.add_smart_account("Other").unwrap();
    let other = m.add_virtual_account("Other", "Lab").unwrap();
    let token = m.create_token(&va, TokenOptions::default(), t0()).unwrap();
    let moving = m
        .create_token(&other, TokenOptions::default(), t0())
        .unwrap();
    let mut d = Device::new(1);
    let (_, old) = identity(register(&mut m, &mut d, &token, t0()));
    grant(authorize(&mut m, &mut d, 1, &[(basic, 3)], t0()));
    assert_eq!(m.licenses(&va)[0].in_use, 3);
    // Force reregistration: the device makes a new key and uses a token of another account.
    d.key = DeviceKey::from_seed([42; 32]);
    let (_, new) = identity(register(&mut m, &mut d, &moving, t0() + days(2)));
    assert_ne!(new.piid, old.piid);
    assert_eq!(new.virtual_account, "Lab");
    let instances = m.instances();
    assert_eq!(instances.len(), 1);
    assert_eq!(instances[0].piid, new.piid);
    assert_eq!(instances[0].virtual_account, other);
    assert_eq!(m.licenses(&va)[0].in_use, 0);
}

#[test]
fn register_signed_by_another_key_is_bad_signature() {
    let mut m = manager();
    let token = m
        .create_token(&m.default_virtual_account(), TokenOptions::default(), t0())
        .unwrap();
    let mut d = Device::new(1);
    let body = d.register_body(&token);
    d.key = DeviceKey::from_seed([2; 32]);
    let (code, _) = failure(exchange(&mut m, &mut d, body, t0()));
    assert_eq!(code, codes::BAD_SIGNATURE);
    assert!(m.instances().is_empty());
}

#[test]
fn renew_id_issues_a_new_identity_for_the_same_piid() {
    let (mut m, mut d, _) = registered(&[]);
    let piid = d.piid;
    let later = t0() + days(180);
    d.hostname = Some("renamed.example.com".into());
    let (_, cert) = identity(exchange(&mut m, &mut d, RequestBody::renew_id(), later));
    assert_eq!(Some(cert.piid), piid);
    assert_eq!(cert.not_before, later);
    assert_eq!(cert.not_after, later + days(365));
    let info = &m.instances()[0];
    assert_eq!(info.identity_not_after, later + days(365));
    assert_eq!(info.hostname.as_deref(), Some("renamed.example.com"));
    assert_eq!(info.last_contact, later);
    assert_eq!(info.registered_at, t0());
}

#[test]
fn host_name_is_kept_when_the_request_withholds_it() {
    let (mut m, mut d, _) = registered(&[]);
    d.hostname = None;
    identity(exchange(&mut m, &mut d, RequestBody::renew_id(), t0()));
    assert_eq!(
        m.instances()[0].hostname.as_deref(),
        Some("ucm-1.example.com")
    );
}

#[test]
fn expired_identity_cannot_be_renewed() {
    let (mut m, mut d, _) = registered(&[]);
    let lapsed = t0() + days(365);
    let (code, _) = failure(exchange(&mut m, &mut d, RequestBody::renew_id(), lapsed));
    assert_eq!(code, codes::IDENTITY_EXPIRED);
    let (code, _) = failure(authorize(&mut m, &mut d, 1, &[], lapsed));
    assert_eq!(code, codes::IDENTITY_EXPIRED);
}

#[test]
fn lapsed_instance_registers_again_with_a_new_identity() {
    let (mut m, mut d, _) = registered(&[]);
    let old = d.piid;
    let lapsed = t0() + days(400);
    let token = m
        .create_token(
            &m.default_virtual_account(),
            TokenOptions::default(),
            lapsed,
        )
        .unwrap();
    let (_, cert) = identity(register(&mut m, &mut d, &token, lapsed));
    assert_ne!(Some(cert.piid), old);
    assert_eq!(cert.not_after, lapsed + days(365));
    assert_eq!(m.instances().len(), 1);
}

#[test]
fn deregister_releases_licenses() {
    let enhanced = catalogue::UCM_ENHANCED;
    let (mut m, mut d, _) = registered(&[(enhanced, 10)]);
    grant(authorize(&mut m, &mut d, 1, &[(enhanced, 4)], t0()));
    let va = m.default_virtual_account();
    assert_eq!(m.licenses(&va)[0].balance, 6);
    let answer = exchange(&mut m, &mut d, RequestBody::deregister(), t0());
    assert_eq!(answer, Answer::Done);
    assert!(m.instances().is_empty());
    assert_eq!(m.licenses(&va)[0].balance, 10);
}

#[test]
fn requests_from_unknown_instances_are_refused() {
    let (mut m, _, _) = registered(&[]);
    let mut stranger = Device::new(5);
    stranger.piid = Some(Uuid([5; 16]));
    let (code, _) = failure(exchange(
        &mut m,
        &mut stranger,
        RequestBody::renew_id(),
        t0(),
    ));
    assert_eq!(code, codes::UNKNOWN_INSTANCE);
    stranger.piid = None;
    let (code, _) = failure(authorize(&mut m, &mut stranger, 1, &[], t0()));
    assert_eq!(code, codes::UNKNOWN_INSTANCE);
}

#[test]
fn request_signed_by_another_key_or_from_another_udi_is_refused() {
    let (mut m, mut d, _) = registered(&[]);
    let key = d.key.clone();
    d.key = DeviceKey::from_seed([8; 32]);
    let (code, _) = failure(exchange(&mut m, &mut d, RequestBody::renew_id(), t0()));
    assert_eq!(code, codes::BAD_SIGNATURE);
    d.key = key;
    d.udi = "PID:UCM,SN:other".parse().unwrap();
    let (code, _) = failure(exchange(&mut m, &mut d, RequestBody::renew_id(), t0()));
    assert_eq!(code, codes::UDI_MISMATCH);
}
