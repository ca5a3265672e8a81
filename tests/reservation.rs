//! License Reservation in the agent (SPEC §6): the flow, every install check and refusal with
//! its message (and the snapshot byte-identical after each), term expiry, evaluation. Codes are
//! issued here with a manager signing key the agent trusts, and travel as text only.

mod common;

use chrono::{DateTime, NaiveDate, Utc};
use common::*;
use smart_agent::codes::{
    AuthorizationCode, LicenseType, PlrClaims, PlrCode, PlrEntitlement, RequestCode, ReturnCode,
    ReturnKind, SlrClaims, SlrCode, SlrEntitlement,
};
use smart_agent::crypto::ManagerSigningKey;
use smart_agent::entitlement::EXPY_PLR_WITH_EXPORT_CONTROL;
use smart_agent::{
    Agent, AuthorizationState, Environment, Error, EventKind, RegistrationState, ReservationKind,
    TagStatus, TrustAnchor, Udi, Uuid,
};

const PIID: Uuid = Uuid([0x42; 16]);

struct Bench {
    key: ManagerSigningKey,
    agent: Agent,
    now: DateTime<Utc>,
}

fn signing_key() -> ManagerSigningKey {
    ManagerSigningKey::generate().unwrap()
}

fn anchor(key: &ManagerSigningKey) -> TrustAnchor {
    TrustAnchor::new(key.public_key().clone(), Environment::Production)
}

impl Bench {
    fn new() -> Bench {
        let key = signing_key();
        let agent = Agent::new(config(UDI, vec![anchor(&key)], 5), t0()).unwrap();
        let mut bench = Bench {
            key,
            agent,
            now: t0(),
        };
        bench.agent.declare(tag(ENHANCED), bench.now);
        bench.agent.set_usage(&tag(ENHANCED), 5, bench.now).unwrap();
        bench
    }

    fn status(&self) -> smart_agent::Status {
        self.agent.status(self.now)
    }

    fn events(&mut self) -> Vec<EventKind> {
        std::iter::from_fn(|| self.agent.poll_event())
            .map(|e| e.kind)
            .collect()
    }

    /// Enables reservation mode and returns the request code as the product prints it.
    fn request(&mut self) -> String {
        self.agent.reservation_enable(self.now).unwrap();
        self.agent
            .reservation_request(self.now)
            .unwrap()
            .to_string()
    }

    fn restore(&self, anchors: Vec<TrustAnchor>, at: DateTime<Utc>) -> Agent {
        Agent::restore(&self.agent.snapshot(), config(UDI, anchors, 6), at).unwrap()
    }
}

fn slr_entitlement(tag_text: &str, count: u32) -> SlrEntitlement {
    SlrEntitlement {
        tag: tag(tag_text),
        count,
        start_date: None,
        end_date: None,
        license_type: LicenseType::Perpetual,
        display_name: "UC Manager Enhanced License (12.x)".into(),
        tag_description: "UC Manager Enhanced License".into(),
        subscription_id: None,
    }
}

/// What the manager does with a pasted request code: an SLR code for its UDI and key.
fn authorize_slr(
    key: &ManagerSigningKey,
    request: &str,
    entitlements: Vec<SlrEntitlement>,
    issued: DateTime<Utc>,
) -> String {
    let request = RequestCode::parse(request).unwrap();
    let claims = SlrClaims {
        piid: PIID,
        timestamp: issued,
        udi: request.udi().clone(),
        reservation_key: request.reservation_key_hash(),
        environment: Environment::Production,
        export_controlled: false,
        entitlements,
    };
    SlrCode::issue(&claims, key).unwrap().to_string()
}

fn authorize_plr(
    key: &ManagerSigningKey,
    request: &str,
    entitlements: Vec<PlrEntitlement>,
    issued: DateTime<Utc>,
) -> String {
    let request = RequestCode::parse(request).unwrap();
    let claims = PlrClaims {
        piid: PIID,
        timestamp: issued,
        udi: request.udi().clone(),
        reservation_key: request.reservation_key_hash(),
        environment: Environment::Production,
        export_controlled: false,
        entitlements,
    };
    PlrCode::issue(&claims, key).unwrap().to_string()
}

fn reservation_key_of(request: &str) -> [u8; 32] {
    *RequestCode::parse(request).unwrap().reservation_key()
}

#[test]
fn slr_round_trip_installs_confirms_and_returns_with_copied_codes_only() {
    let mut b = Bench::new();
    let request = b.request();
    assert!(request.starts_with("CB-PUCM,S37624,U6fe83addc80240bc92dc071ac7a37624-"));
    assert_eq!(
        b.status().registration.state,
        RegistrationState::ReservationInProgress
    );
    assert_eq!(
        b.status().reservation.request_code.as_deref(),
        Some(&request[..])
    );
    // The same code until cancel.
    assert_eq!(
        b.agent.reservation_request(b.now).unwrap().to_string(),
        request
    );

    let code = authorize_slr(&b.key, &request, vec![slr_entitlement(ENHANCED, 10)], b.now);
    b.now += minutes(5);
    let installed = b.agent.reservation_install(&code, b.now).unwrap();
    assert_eq!(installed.kind, ReservationKind::Specific);
    let confirmation = installed.confirmation.unwrap();
    let AuthorizationCode::Slr(slr) = AuthorizationCode::parse(&code).unwrap() else {
        panic!("an SLR code")
    };
    assert_eq!(
        confirmation,
        slr.confirmation_code(),
        "the manager recomputes it"
    );
    assert_eq!(confirmation.to_string().len(), 8);
    let st = b.status();
    assert_eq!(
        st.registration.state,
        RegistrationState::SpecificReservation
    );
    assert_eq!(
        st.authorization.state,
        AuthorizationState::AuthorizedReserved
    );
    assert_eq!(st.authorization.since, Some(b.now));
    assert_eq!(st.entitlements[0].status, TagStatus::ReservedInCompliance);
    assert_eq!(
        st.entitlements[0].display_name.as_deref(),
        Some("UC Manager Enhanced License (12.x)")
    );
    assert_eq!(st.reservation.request_code, None);
    assert!(b.events().contains(&EventKind::ReservationInstalled {
        kind: ReservationKind::Specific
    }));

    b.now += days(3);
    let returned = b.agent.reservation_return(b.now).unwrap().to_string();
    let parsed = ReturnCode::parse(&returned).unwrap();
    assert_eq!(parsed.kind(), ReturnKind::Installed);
    assert_eq!(parsed.piid(), PIID);
    assert_eq!(parsed.verify(&reservation_key_of(&request)), Ok(()));
    let st = b.status();
    assert_eq!(st.registration.state, RegistrationState::Unregistered);
    assert!(st.reservation.enabled);
    assert_eq!(st.authorization.state, AuthorizationState::EvalMode);
    assert!(b.events().contains(&EventKind::ReservationReturned));
}

#[test]
fn evaluation_does_not_count_while_a_reservation_is_installed_and_resumes_after_return() {
    let mut b = Bench::new();
    b.now += days(10);
    let request = b.request();
    let code = authorize_slr(&b.key, &request, vec![slr_entitlement(ENHANCED, 10)], b.now);
    b.agent.reservation_install(&code, b.now).unwrap();
    assert_eq!(b.status().evaluation.remaining, days(80));
    b.now += days(30);
    assert_eq!(b.status().evaluation.remaining, days(80));
    assert!(!b.status().evaluation.in_use);
    b.agent.reservation_return(b.now).unwrap();
    b.now += days(5);
    assert_eq!(b.status().evaluation.remaining, days(75));
}

#[test]
fn a_short_slr_is_not_authorized_reserved_and_never_borrows_another_tier() {
    let mut b = Bench::new();
    let request = b.request();
    let code = authorize_slr(
        &b.key,
        &request,
        vec![
            slr_entitlement(ENHANCED, 3),
            slr_entitlement(ENHANCED_PLUS, 10),
        ],
        b.now,
    );
    b.agent.reservation_install(&code, b.now).unwrap();
    let st = b.status();
    assert_eq!(
        st.authorization.state,
        AuthorizationState::NotAuthorizedReserved
    );
    assert_eq!(st.authorization.since, None);
    assert_eq!(st.entitlements[0].status, TagStatus::NotAuthorized);
}

#[test]
fn plr_codes_add_to_one_set_and_a_return_returns_the_whole_set() {
    let mut b = Bench::new();
    let request = b.request();
    let first = authorize_plr(
        &b.key,
        &request,
        vec![PlrEntitlement {
            tag: tag(BASIC),
            count: 1,
        }],
        b.now,
    );
    let installed = b.agent.reservation_install(&first, b.now).unwrap();
    assert_eq!(installed.kind, ReservationKind::Universal);
    assert_eq!(
        installed.confirmation, None,
        "PLR prints no confirmation code"
    );
    b.now += hours(1);
    let second = authorize_plr(
        &b.key,
        &request,
        vec![PlrEntitlement {
            tag: tag(EXPY_PLR_WITH_EXPORT_CONTROL),
            count: 1,
        }],
        b.now,
    );
    b.agent.reservation_install(&second, b.now).unwrap();
    let st = b.status();
    assert_eq!(
        st.registration.state,
        RegistrationState::UniversalReservation
    );
    assert_eq!(
        st.authorization.state,
        AuthorizationState::AuthorizedReserved
    );
    assert_eq!(st.authorization.since, Some(b.now), "the latest install");
    // PLR covers every tag, whatever the code lists.
    assert_eq!(st.entitlements[0].status, TagStatus::ReservedInCompliance);
    let reserved = st.reservation.installed.unwrap();
    assert_eq!(reserved.entitlements.len(), 2);
    assert!(st.registration.export_controlled, "the export-control PLR");
    let returned =
        ReturnCode::parse(&b.agent.reservation_return(b.now).unwrap().to_string()).unwrap();
    assert_eq!(returned.verify(&reservation_key_of(&request)), Ok(()));
    assert!(b.status().reservation.installed.is_none());
}

#[test]
fn an_slr_update_replaces_the_code_and_yields_a_new_confirmation() {
    let mut b = Bench::new();
    let request = b.request();
    let first = authorize_slr(&b.key, &request, vec![slr_entitlement(ENHANCED, 3)], b.now);
    let c1 = b
        .agent
        .reservation_install(&first, b.now)
        .unwrap()
        .confirmation;
    b.now += days(1);
    let newer = authorize_slr(&b.key, &request, vec![slr_entitlement(ENHANCED, 8)], b.now);
    let c2 = b
        .agent
        .reservation_install(&newer, b.now)
        .unwrap()
        .confirmation;
    assert_ne!(c1, c2);
    assert_eq!(
        b.status().authorization.state,
        AuthorizationState::AuthorizedReserved
    );
    // The older code again is refused, and changes nothing.
    let before = b.agent.snapshot();
    assert_eq!(
        b.agent.reservation_install(&first, b.now + days(1)),
        Err(Error::ReservationCodeOlder)
    );
    assert_eq!(b.agent.snapshot(), before);
}

#[test]
fn request_authorize_cancel_then_return_authorization_gives_a_return_code() {
    let mut b = Bench::new();
    let request = b.request();
    let code = authorize_slr(&b.key, &request, vec![slr_entitlement(ENHANCED, 2)], b.now);
    b.agent.reservation_cancel(b.now).unwrap();
    assert_eq!(
        b.status().registration.state,
        RegistrationState::Unregistered
    );
    // The cancelled request's code no longer installs…
    assert_eq!(
        b.agent.reservation_install(&code, b.now),
        Err(Error::NoReservationRequest)
    );
    // …but a return code can be made for it, signed by the cancelled request's key.
    let ret = b
        .agent
        .reservation_return_authorization(&code, b.now)
        .unwrap();
    let ret = ReturnCode::parse(&ret.to_string()).unwrap();
    assert_eq!(ret.kind(), ReturnKind::Authorization);
    assert_eq!(ret.verify(&reservation_key_of(&request)), Ok(()));
    // The key is retired: a second return-authorization is refused.
    assert_eq!(
        b.agent.reservation_return_authorization(&code, b.now),
        Err(Error::ReservationCodeMismatch)
    );
    // A new request makes a new key and a new code.
    let again = b.agent.reservation_request(b.now).unwrap().to_string();
    assert_ne!(again, request);
}

/// Asserts that `call` is refused with `expected` and leaves the whole snapshot as it was.
fn refused<T: std::fmt::Debug>(
    b: &mut Bench,
    expected: Error,
    message: &str,
    call: impl FnOnce(&mut Agent, DateTime<Utc>) -> Result<T, Error>,
) {
    let before = b.agent.snapshot();
    let later = b.now + hours(2);
    let err = call(&mut b.agent, later).unwrap_err();
    assert_eq!(err, expected);
    assert_eq!(err.to_string(), message);
    assert_eq!(b.agent.snapshot(), before, "{message}");
}

#[test]
fn every_refusal_has_its_message_and_changes_nothing() {
    let mut b = Bench::new();
    refused(
        &mut b,
        Error::ReservationNotEnabled,
        "License Reservation is not enabled",
        |a, t| a.reservation_request(t),
    );
    refused(
        &mut b,
        Error::ReservationNotEnabled,
        "License Reservation is not enabled",
        |a, t| a.reservation_disable(t),
    );
    b.agent.reservation_enable(b.now).unwrap();
    refused(
        &mut b,
        Error::NoReservationRequest,
        "There is no reservation request in progress",
        |a, t| a.reservation_install("CAAAAA", t),
    );
    refused(
        &mut b,
        Error::NoReservationInstalled,
        "No reservation authorization code is installed",
        |a, t| a.reservation_return(t),
    );
    refused(
        &mut b,
        Error::RegistrationInReservationMode,
        "Smart Software Licensing registration operations are not allowed while License \
         Reservation is enabled. Return an installed code with license smart reservation \
         return, or disable License Reservation",
        |a, t| a.register("NjEwN2ZjZjEtZmI1Zi00ZGVj", smart_agent::Force::No, t),
    );
    let request = b.agent.reservation_request(b.now).unwrap().to_string();
    // Install checks.
    refused(
        &mut b,
        Error::ReservationCode(
            AuthorizationCode::parse("<specificPLR><authorizationCode>").unwrap_err(),
        ),
        "The Reservation Authorization Code is not valid: it is truncated",
        |a, t| a.reservation_install("<specificPLR><authorizationCode>", t),
    );
    let stranger = signing_key();
    let untrusted = authorize_slr(
        &stranger,
        &request,
        vec![slr_entitlement(ENHANCED, 1)],
        b.now,
    );
    refused(
        &mut b,
        Error::ReservationCode(smart_agent::codes::CodeError::UntrustedAuthorization(
            smart_agent::crypto::SignatureError::Untrusted,
        )),
        "The Reservation Authorization Code is not signed by a trusted Smart Software Manager",
        |a, t| a.reservation_install(&untrusted, t),
    );
    let other_udi: Udi = "PID:UCM,SN:99999".parse().unwrap();
    let other_request = RequestCode::new(
        other_udi,
        *RequestCode::parse(&request).unwrap().reservation_key(),
    )
    .to_string();
    let for_other = authorize_slr(
        &b.key,
        &other_request,
        vec![slr_entitlement(ENHANCED, 1)],
        b.now,
    );
    refused(
        &mut b,
        Error::ReservationForAnotherInstance("PID:UCM,SN:99999".into()),
        "The Reservation Authorization Code is for another product instance: PID:UCM,SN:99999",
        |a, t| a.reservation_install(&for_other, t),
    );
    let someone_else = RequestCode::new(
        UDI.parse().unwrap(),
        smart_agent::crypto::DeviceKey::from_seed([7; 32]).public_key(),
    )
    .to_string();
    let wrong_key = authorize_slr(
        &b.key,
        &someone_else,
        vec![slr_entitlement(ENHANCED, 1)],
        b.now,
    );
    refused(
        &mut b,
        Error::ReservationCodeMismatch,
        "The Reservation Authorization Code does not match the Reservation Request Code",
        |a, t| a.reservation_install(&wrong_key, t),
    );
    let good = authorize_slr(&b.key, &request, vec![slr_entitlement(ENHANCED, 5)], b.now);
    b.agent.reservation_install(&good, b.now).unwrap();
    refused(
        &mut b,
        Error::ReservationInstalled,
        "A reservation authorization code is installed. Install a newer code to update it, or \
         return it first",
        |a, t| a.reservation_request(t),
    );
    refused(
        &mut b,
        Error::ReservationInstalledCannotDisable,
        "License Reservation cannot be disabled while an authorization code is installed. \
         Return it first",
        |a, t| a.reservation_disable(t),
    );
    let plr = authorize_plr(
        &b.key,
        &request,
        vec![PlrEntitlement {
            tag: tag(BASIC),
            count: 1,
        }],
        b.now,
    );
    refused(
        &mut b,
        Error::SlrInstalled,
        "A Specific License Reservation is installed; return it first",
        |a, t| a.reservation_install(&plr, t),
    );
}

#[test]
fn enable_is_refused_while_registered_and_registration_commands_while_reserving() {
    let mut sim = registered();
    let before = sim.agent.snapshot();
    let err = sim.agent.reservation_enable(sim.now).unwrap_err();
    assert_eq!(
        err.to_string(),
        "License Reservation cannot be enabled while the product is registered. Deregister it \
         first"
    );
    assert_eq!(sim.agent.snapshot(), before);
}

#[test]
fn rewriting_only_the_outer_udi_changes_nothing() {
    let mut b = Bench::new();
    let request = b.request();
    let code = authorize_slr(&b.key, &request, vec![slr_entitlement(ENHANCED, 5)], b.now);
    let outer = code.rfind("<udi>").unwrap();
    let rewritten = format!("{}<udi>P:UCM,S:99999</udi></specificPLR>", &code[..outer]);
    let installed = b.agent.reservation_install(&rewritten, b.now).unwrap();
    let AuthorizationCode::Slr(slr) = AuthorizationCode::parse(&code).unwrap() else {
        panic!("an SLR code")
    };
    assert_eq!(installed.confirmation, Some(slr.confirmation_code()));
}

#[test]
fn line_breaks_pasted_into_an_slr_code_still_install() {
    let mut b = Bench::new();
    let request = b.request();
    let code = authorize_slr(&b.key, &request, vec![slr_entitlement(ENHANCED, 5)], b.now);
    let pasted: String = code
        .chars()
        .enumerate()
        .flat_map(|(i, c)| {
            let br = if i % 70 == 69 { Some('\n') } else { None };
            std::iter::once(c).chain(br)
        })
        .collect();
    assert!(b.agent.reservation_install(&pasted, b.now).is_ok());
}

#[test]
fn a_term_license_past_its_end_date_counts_until_restore_then_raises_its_alarm_once() {
    let mut b = Bench::new();
    let request = b.request();
    let mut term = slr_entitlement(ENHANCED, 10);
    term.license_type = LicenseType::Term;
    term.start_date = NaiveDate::from_ymd_opt(2027, 1, 1);
    term.end_date = NaiveDate::from_ymd_opt(2027, 2, 1);
    let code = authorize_slr(&b.key, &request, vec![term], b.now);
    b.agent.reservation_install(&code, b.now).unwrap();
    let anchors = vec![anchor(&b.key)];
    // Past the end date, but not restarted: still counted.
    b.now = "2027-03-01T00:00:00Z".parse().unwrap();
    assert_eq!(
        b.status().authorization.state,
        AuthorizationState::AuthorizedReserved
    );
    // The next restart stops counting it, with the alarm.
    b.agent = b.restore(anchors.clone(), b.now);
    let events = b.events();
    let alarm = events
        .iter()
        .find(|e| matches!(e, EventKind::ReservedLicenseExpired { .. }))
        .expect("the alarm");
    assert!(alarm.to_string().contains("2027-Feb-01"), "{alarm}");
    assert_eq!(
        b.status().authorization.state,
        AuthorizationState::NotAuthorizedReserved
    );
    assert_eq!(b.status().entitlements[0].status, TagStatus::NotAuthorized);
    let reserved = b.status().reservation.installed.unwrap();
    assert!(reserved.entitlements[0].expired);
    // Raised once: the next restart is quiet and byte-identical.
    let snapshot = b.agent.snapshot();
    let mut again = b.restore(anchors, b.now + days(1));
    assert!(std::iter::from_fn(|| again.poll_event()).next().is_none());
    assert_eq!(again.snapshot(), snapshot);
}

#[test]
fn an_installed_code_no_key_verifies_is_kept_unused_and_comes_back() {
    let mut b = Bench::new();
    let request = b.request();
    let code = authorize_slr(&b.key, &request, vec![slr_entitlement(ENHANCED, 5)], b.now);
    b.agent.reservation_install(&code, b.now).unwrap();
    let good = vec![anchor(&b.key)];
    let stranger = vec![anchor(&signing_key())];
    let mut moved = b.restore(stranger.clone(), b.now);
    let events: Vec<_> = std::iter::from_fn(|| moved.poll_event()).collect();
    assert!(events
        .iter()
        .any(|e| matches!(e.kind, EventKind::ReservationUntrusted { .. })));
    let st = moved.status(b.now);
    assert_eq!(st.registration.state, RegistrationState::Unregistered);
    assert_eq!(st.authorization.state, AuthorizationState::EvalMode);
    b.agent = moved;
    let back = b.restore(good, b.now);
    assert_eq!(
        back.status(b.now).authorization.state,
        AuthorizationState::AuthorizedReserved
    );
}

#[test]
fn only_the_16_most_recent_kept_keys_survive_and_dropping_one_is_an_event() {
    let mut b = Bench::new();
    b.agent.reservation_enable(b.now).unwrap();
    let first = b.agent.reservation_request(b.now).unwrap().to_string();
    let first_code = authorize_slr(&b.key, &first, vec![slr_entitlement(ENHANCED, 1)], b.now);
    b.agent.reservation_cancel(b.now).unwrap();
    for _ in 0..smart_agent::agent::KEPT_KEYS {
        b.agent.reservation_request(b.now).unwrap();
        b.agent.reservation_cancel(b.now).unwrap();
    }
    assert!(b
        .events()
        .contains(&EventKind::ReservationKeysDropped { count: 1 }));
    assert_eq!(
        b.agent.reservation_return_authorization(&first_code, b.now),
        Err(Error::ReservationCodeMismatch)
    );
}

#[test]
fn kept_keys_survive_disable() {
    let mut b = Bench::new();
    let request = b.request();
    let code = authorize_slr(&b.key, &request, vec![slr_entitlement(ENHANCED, 1)], b.now);
    b.agent.reservation_disable(b.now).unwrap();
    assert_eq!(
        b.status().registration.state,
        RegistrationState::Unregistered
    );
    assert!(!b.status().reservation.enabled);
    b.agent.reservation_enable(b.now).unwrap();
    assert!(b
        .agent
        .reservation_return_authorization(&code, b.now)
        .is_ok());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    #[test]
    fn a_code_for_another_udi_never_installs(serial in "[A-Za-z0-9]{1,12}") {
        let mut b = Bench::new();
        let request = b.request();
        let other: Udi = format!("PID:UCM,SN:{serial}").parse().unwrap();
        proptest::prop_assume!(other != UDI.parse::<Udi>().unwrap());
        let key = *RequestCode::parse(&request).unwrap().reservation_key();
        let for_other = authorize_slr(
            &b.key,
            &RequestCode::new(other.clone(), key).to_string(),
            vec![slr_entitlement(ENHANCED, 1)],
            b.now,
        );
        let before = b.agent.snapshot();
        proptest::prop_assert_eq!(
            b.agent.reservation_install(&for_other, b.now),
            Err(Error::ReservationForAnotherInstance(other.long_form()))
        );
        proptest::prop_assert_eq!(b.agent.snapshot(), before);
    }
}
