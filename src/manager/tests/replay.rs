//! Replays and oversized fields change nothing (SPEC §12: device keys are single-use; every
//! stored field is bounded).

use super::*;
use crate::wire::ResponseStatus;
use catalogue::{UCM_BASIC, UCM_ENHANCED};

/// Everything a request may change, to compare before and after.
fn records(m: &Manager) -> (String, Vec<InstanceInfo>, Vec<LicenseLine>) {
    (
        m.dump(),
        m.instances(),
        m.licenses(&m.default_virtual_account()),
    )
}

/// The answer to `raw`, verified as the agent would for `kind` (nonce and piid read back).
fn answer_to(m: &mut Manager, raw: &[u8], now: DateTime<Utc>) -> Answer {
    let answer = m.handle(raw, now);
    let parsed = decode_response(&answer, MAX_REQUEST_LEN).unwrap();
    let (kind, nonce, piid) = (
        parsed.response.kind,
        parsed.response.nonce.clone(),
        parsed.response.piid,
    );
    verify(m, &answer, kind, &nonce, piid)
}

#[test]
fn a_captured_register_replayed_after_a_force_reregistration_is_refused() {
    let (mut m, mut d, token) = registered(&[(UCM_BASIC, 10)]);
    grant(authorize(&mut m, &mut d, 1, &[(UCM_BASIC, 3)], t0()));
    // The register an attacker captured, signed by the first key.
    let (captured, _) = d.request(d.register_body(&token), t0());
    // The device re-registers with a new key (force).
    d.key = DeviceKey::from_seed([42; 32]);
    d.piid = None;
    let (_, current) = identity(register(&mut m, &mut d, &token, t0() + days(1)));
    grant(authorize(
        &mut m,
        &mut d,
        1,
        &[(UCM_BASIC, 4)],
        t0() + days(1),
    ));
    let before = records(&m);
    let (code, message) = failure(answer_to(&mut m, &captured, t0() + days(2)));
    assert_eq!(code, codes::KEY_RETIRED);
    assert!(
        message.contains("replaced by a newer registration"),
        "{message}"
    );
    assert_eq!(records(&m), before);
    // The device's current registration still works.
    let g = grant(authorize(
        &mut m,
        &mut d,
        2,
        &[(UCM_BASIC, 4)],
        t0() + days(2),
    ));
    assert_eq!(Some(g.piid), Some(current.piid));
}

#[test]
fn a_captured_register_replayed_after_a_deregistration_brings_back_no_ghost() {
    let (mut m, mut d, token) = registered(&[(UCM_BASIC, 10)]);
    let (captured, _) = d.request(d.register_body(&token), t0());
    assert_eq!(
        exchange(&mut m, &mut d, RequestBody::deregister(), t0()),
        Answer::Done
    );
    let before = records(&m);
    let (code, message) = failure(answer_to(&mut m, &captured, t0() + days(1)));
    assert_eq!(code, codes::KEY_RETIRED);
    assert!(message.contains("removed by a deregistration"), "{message}");
    assert_eq!(records(&m), before);
    assert!(m.instances().is_empty());
}

#[test]
fn a_replayed_deregister_is_answered_ok_and_changes_nothing() {
    let (mut m, mut d, _) = registered(&[(UCM_BASIC, 10)]);
    let (deregister, _) = d.request(RequestBody::deregister(), t0());
    assert_eq!(answer_to(&mut m, &deregister, t0()), Answer::Done);
    let before = records(&m);
    // The same bytes again, and a resend with a fresh nonce (the agent after a crash).
    assert_eq!(answer_to(&mut m, &deregister, t0() + days(1)), Answer::Done);
    assert_eq!(
        exchange(&mut m, &mut d, RequestBody::deregister(), t0() + days(1)),
        Answer::Done
    );
    assert_eq!(records(&m), before);
}

#[test]
fn a_deregister_of_a_superseded_registration_is_answered_ok_and_keeps_the_current_one() {
    let (mut m, mut d, token) = registered(&[(UCM_BASIC, 10)]);
    let (old_deregister, _) = d.request(RequestBody::deregister(), t0());
    d.key = DeviceKey::from_seed([42; 32]);
    d.piid = None;
    identity(register(&mut m, &mut d, &token, t0()));
    let before = records(&m);
    assert_eq!(answer_to(&mut m, &old_deregister, t0()), Answer::Done);
    assert_eq!(records(&m), before);
    assert_eq!(m.instances().len(), 1);
}

#[test]
fn requests_signed_by_a_superseded_key_are_refused_as_retired() {
    let (mut m, mut d, token) = registered(&[(UCM_BASIC, 10)]);
    let old = Device {
        udi: d.udi.clone(),
        key: d.key.clone(),
        piid: d.piid,
        nonces: 100,
        version: PROTOCOL_VERSION,
        hostname: None,
    };
    d.key = DeviceKey::from_seed([42; 32]);
    d.piid = None;
    identity(register(&mut m, &mut d, &token, t0()));
    let before = records(&m);
    // An agent restored from an old backup renews with its old identity.
    let mut old = old;
    for body in [RequestBody::renew_id(), usage_body(5, &[(UCM_BASIC, 9)])] {
        let (code, _) = failure(exchange(&mut m, &mut old, body, t0() + days(1)));
        assert_eq!(code, codes::KEY_RETIRED);
    }
    assert_eq!(records(&m), before);
    // Naming the retired piid without its key proves nothing: an unknown instance.
    let mut stranger = Device::new(9);
    stranger.piid = old.piid;
    let (code, _) = failure(exchange(
        &mut m,
        &mut stranger,
        RequestBody::renew_id(),
        t0(),
    ));
    assert_eq!(code, codes::UNKNOWN_INSTANCE);
}

#[test]
fn crash_resends_stay_idempotent() {
    let (mut m, mut d, token) = registered(&[(UCM_BASIC, 10)]);
    let (first, _) = identity(register(&mut m, &mut d, &token, t0()));
    d.piid = None;
    let (again, _) = identity(register(&mut m, &mut d, &token, t0() + TimeDelta::hours(1)));
    assert_eq!(again, first);
    grant(authorize(&mut m, &mut d, 3, &[(UCM_BASIC, 2)], t0()));
    let g = grant(authorize(&mut m, &mut d, 3, &[(UCM_BASIC, 2)], t0()));
    assert_eq!(entry(&g, UCM_BASIC).authorized, 2);
    assert_eq!(m.instances()[0].usage_reports_counted, 1);
    assert_eq!(m.instances().len(), 1);
}

#[test]
fn requests_are_not_refused_for_being_old() {
    // The CLI's catch-up re-sends its requests with their original times.
    let (mut m, mut d, _) = registered(&[(UCM_BASIC, 10)]);
    let (raw, _) = d.request(usage_body(1, &[(UCM_BASIC, 2)]), t0() - days(300));
    let g = grant(answer_to(&mut m, &raw, t0()));
    assert_eq!(entry(&g, UCM_BASIC).authorized, 2);
    let ancient: DateTime<Utc> = "0001-01-01T00:00:00Z".parse().unwrap();
    let (raw, _) = d.request(usage_body(2, &[(UCM_BASIC, 3)]), ancient);
    let g = grant(answer_to(&mut m, &raw, t0()));
    assert_eq!(entry(&g, UCM_BASIC).authorized, 3);
}

/// A request from `d` with `hostname` and `ip` as given.
fn with_host(d: &mut Device, body: RequestBody, hostname: String, ip: String) -> Vec<u8> {
    d.nonces += 1;
    let kind = if body.as_register().is_some() {
        RequestKind::Register
    } else {
        RequestKind::Authorize
    };
    let request = Request {
        kind,
        version: PROTOCOL_VERSION,
        nonce: format!("{:016x}", d.nonces),
        piid: d.piid,
        udi: d.udi.clone(),
        sent_at: t0(),
        hostname: Some(hostname),
        ip: Some(ip),
        body,
    };
    encode_request(&request, &d.key)
}

#[test]
fn oversized_fields_are_refused_and_the_state_does_not_grow() {
    let (mut m, mut d, token) = registered(&[(UCM_BASIC, 10)]);
    let long = |n: usize| "h".repeat(n);
    let before = records(&m);
    let mut cases: Vec<(Vec<u8>, &str)> = Vec::new();
    let mut fresh = Device::new(7);
    let body = fresh.register_body(&token);
    cases.push((
        with_host(&mut fresh, body, long(1 << 19), "192.0.2.1".into()),
        "the host name is 524288 bytes long; at most 255 are accepted",
    ));
    let body = usage_body(9, &[(UCM_BASIC, 1)]);
    cases.push((
        with_host(&mut d, body, long(256), "192.0.2.1".into()),
        "the host name is 256 bytes long; at most 255 are accepted",
    ));
    let body = usage_body(9, &[(UCM_BASIC, 1)]);
    cases.push((
        with_host(&mut d, body, "ok.example".into(), "1".repeat(65)),
        "the IP address is 65 bytes long; at most 64 are accepted",
    ));
    let body = usage_body(9, &[(UCM_BASIC, 1)]);
    cases.push((
        with_host(&mut d, body, "tab\there".into(), "192.0.2.1".into()),
        "the host name contains control characters",
    ));
    let many: Vec<String> = (0..=MAX_TAGS_PER_REPORT)
        .map(|i| format!("regid.2020-01.com.cisco.T{i},1.0_3585abe5-bf6a-49ed-a8d6-a17463d0e734"))
        .collect();
    let usage: Vec<(&str, u32)> = many.iter().map(|t| (t.as_str(), 1)).collect();
    cases.push((
        d.request(usage_body(9, &usage), t0()).0,
        "the usage report names 257 entitlement tags; at most 256 are accepted",
    ));
    for (raw, expected) in cases {
        let answer = m.handle(&raw, t0());
        let parsed = decode_response(&answer, MAX_REQUEST_LEN).unwrap();
        match parsed.response.status {
            ResponseStatus::Failed { code, message } => {
                assert_eq!(code, codes::MALFORMED);
                assert_eq!(message, expected);
            }
            other => panic!("accepted: {other:?}"),
        }
        assert_eq!(records(&m), before);
    }
    // At the limits, accepted.
    let body = usage_body(9, &[(UCM_BASIC, 1)]);
    let raw = with_host(&mut d, body, long(255), "1".repeat(64));
    grant(answer_to(&mut m, &raw, t0()));
    let usage: Vec<(&str, u32)> = many[..MAX_TAGS_PER_REPORT]
        .iter()
        .map(|t| (t.as_str(), 1))
        .collect();
    let g = grant(authorize(&mut m, &mut d, 10, &usage, t0()));
    assert_eq!(g.entries.len(), MAX_TAGS_PER_REPORT);
}

#[test]
fn instances_short_of_a_tag_share_what_the_account_serves() {
    // SPEC §4: every instance reporting a tag the account cannot fully serve is out of
    // compliance, with its proportional share rounded down, whatever the registration order.
    let (mut m, mut a, token) = registered(&[(UCM_ENHANCED, 5)]);
    let mut b = Device::new(2);
    identity(register(&mut m, &mut b, &token, t0()));
    grant(authorize(&mut m, &mut a, 1, &[(UCM_ENHANCED, 2)], t0()));
    let gb = grant(authorize(&mut m, &mut b, 1, &[(UCM_ENHANCED, 6)], t0()));
    let eb = entry(&gb, UCM_ENHANCED);
    assert_eq!(
        (eb.authorized, eb.status),
        (3, crate::wire::GrantStatus::OutOfCompliance)
    );
    // A renews and learns the account is short: 2 × 5 / 8 = 1.
    let ga = grant(authorize(&mut m, &mut a, 2, &[(UCM_ENHANCED, 2)], t0()));
    let ea = entry(&ga, UCM_ENHANCED);
    assert_eq!(
        (ea.authorized, ea.status),
        (1, crate::wire::GrantStatus::OutOfCompliance)
    );
    let va = m.default_virtual_account();
    let line = &m.licenses(&va)[0];
    assert_eq!((line.in_use, line.balance), (5, 0));
    assert_eq!(m.instance_count(), 2);
    let listed: Vec<Option<Uuid>> = m.instances_of(&va).iter().map(|i| Some(i.piid)).collect();
    assert_eq!(listed, vec![a.piid, b.piid]);
    assert!(m
        .instances_of(&VirtualAccountId::new("no", "such"))
        .is_empty());
}
