//! License Reservation and export authorization keys on the manager's side (SPEC §6, §7),
//! driven through the reference manager's public API and a real agent: codes travel as the
//! text a person pastes, pools are checked after every step, and every refusal leaves the
//! pools and reservations as they were.

mod common;

use chrono::{DateTime, Utc};
use common::*;
use smart_agent::entitlement::EXPY_PLR_WITH_EXPORT_CONTROL;
use smart_agent::manager::{
    ManagerError, ReservedLicense, TokenOptions, DEFAULT_SMART_ACCOUNT, NO_SURPLUS_MESSAGE,
};
use smart_agent::{Agent, EventKind, Manager, ReservationKind};

/// A manager whose default Smart Account may reserve, with 10 Enhanced and 5 Basic, and an
/// agent in reservation mode that has printed its request code.
struct Air {
    manager: Manager,
    agent: Agent,
    request: String,
    now: DateTime<Utc>,
}

fn air() -> Air {
    let mut sim = Sim::new();
    sim.pool(ENHANCED, 10);
    sim.pool(BASIC, 5);
    sim.manager
        .set_reservation_allowed(DEFAULT_SMART_ACCOUNT, true)
        .unwrap();
    let now = sim.now;
    let mut agent = sim.agent;
    agent.reservation_enable(now).unwrap();
    let request = agent.reservation_request(now).unwrap().to_string();
    Air {
        manager: sim.manager,
        agent,
        request,
        now,
    }
}

fn enhanced(n: u32) -> ReservedLicense {
    ReservedLicense::perpetual(tag(ENHANCED), n)
}

/// (purchased, in use, reserved, balance) of `tag_text` in the default Virtual Account.
fn pool(manager: &Manager, tag_text: &str) -> (u32, u32, u32, u32) {
    let va = manager.default_virtual_account();
    let line = manager
        .licenses(&va)
        .into_iter()
        .find(|l| l.tag.as_str() == tag_text)
        .unwrap();
    (line.purchased, line.in_use, line.reserved, line.balance)
}

impl Air {
    fn authorize(&mut self, licenses: &[ReservedLicense]) -> Result<String, ManagerError> {
        let va = self.manager.default_virtual_account();
        let request = self.request.clone();
        self.manager
            .authorize_reservation(&va, &request, licenses, None, false, self.now)
            .map(|issued| {
                assert_eq!(issued.kind, ReservationKind::Specific);
                issued.code
            })
    }

    /// Installs `code` and confirms it on the manager, as the administrator would.
    fn install_and_confirm(&mut self, code: &str) {
        let installed = self.agent.reservation_install(code, self.now).unwrap();
        let confirmation = installed.confirmation.unwrap().to_string();
        let udi = self.agent.status(self.now).udi.long_form();
        self.manager
            .confirm_reservation(&udi, &confirmation)
            .unwrap();
    }
}

#[test]
fn an_slr_takes_its_licenses_out_of_the_pool_until_its_return_code_puts_them_back() {
    let mut air = air();
    let code = air.authorize(&[enhanced(4)]).unwrap();
    assert_eq!(pool(&air.manager, ENHANCED), (10, 4, 4, 6));
    air.install_and_confirm(&code);
    let reservations = air.manager.reservations();
    assert_eq!(reservations.len(), 1);
    assert!(!reservations[0].in_transit);
    assert_eq!(reservations[0].held, vec![(tag(ENHANCED), 4)]);

    let returned = air.agent.reservation_return(air.now).unwrap().to_string();
    let back = air.manager.return_reservation(&returned, air.now).unwrap();
    assert_eq!(back.freed, vec![(tag(ENHANCED), 4)]);
    assert_eq!(pool(&air.manager, ENHANCED), (10, 0, 0, 10));
    assert!(air.manager.reservations().is_empty());
}

#[test]
fn a_reservation_the_pool_cannot_spare_is_refused_with_the_seed_message_and_takes_nothing() {
    let mut air = air();
    let err = air.authorize(&[enhanced(11)]).unwrap_err();
    assert!(matches!(err, ManagerError::NoSurplus));
    assert_eq!(err.to_string(), NO_SURPLUS_MESSAGE);
    assert_eq!(pool(&air.manager, ENHANCED), (10, 0, 0, 10));
    assert!(air.manager.reservations().is_empty());
    // Exactly the surplus is fine.
    air.authorize(&[enhanced(10)]).unwrap();
    assert_eq!(pool(&air.manager, ENHANCED), (10, 10, 10, 0));
}

#[test]
fn an_account_not_entitled_to_reservation_is_refused() {
    let mut air = air();
    air.manager
        .set_reservation_allowed(DEFAULT_SMART_ACCOUNT, false)
        .unwrap();
    assert!(matches!(
        air.authorize(&[enhanced(1)]),
        Err(ManagerError::ReservationNotAllowed(_))
    ));
    assert!(air.manager.reservations().is_empty());
}

#[test]
fn a_second_code_for_the_same_instance_is_refused_until_the_first_is_returned() {
    let mut air = air();
    air.authorize(&[enhanced(2)]).unwrap();
    assert!(matches!(
        air.authorize(&[enhanced(1)]),
        Err(ManagerError::ReservationExists(_))
    ));
    assert_eq!(pool(&air.manager, ENHANCED), (10, 2, 2, 8));
}

#[test]
fn an_slr_update_holds_the_larger_count_until_its_confirmation_arrives() {
    let mut air = air();
    let first = air.authorize(&[enhanced(4)]).unwrap();
    air.install_and_confirm(&first);
    let udi = air.agent.status(air.now).udi.long_form();

    // Down to 2 Enhanced and up to 3 Basic: the old 4 stay held while in transit.
    air.now += hours(1);
    let update = air
        .manager
        .update_reservation(
            &udi,
            &[enhanced(2), ReservedLicense::perpetual(tag(BASIC), 3)],
            None,
            air.now,
        )
        .unwrap();
    assert!(air.manager.reservations()[0].in_transit);
    assert_eq!(pool(&air.manager, ENHANCED), (10, 4, 4, 6));
    assert_eq!(pool(&air.manager, BASIC), (5, 3, 3, 2));

    // A wrong confirmation settles nothing.
    assert!(air.manager.confirm_reservation(&udi, "0").is_err());
    assert!(air.manager.reservations()[0].in_transit);

    air.install_and_confirm(&update.code);
    assert!(!air.manager.reservations()[0].in_transit);
    assert_eq!(pool(&air.manager, ENHANCED), (10, 2, 2, 8));
    assert_eq!(pool(&air.manager, BASIC), (5, 3, 3, 2));
}

#[test]
fn an_update_beyond_the_surplus_is_refused_and_the_reservation_stays_as_it_was() {
    let mut air = air();
    let first = air.authorize(&[enhanced(4)]).unwrap();
    air.install_and_confirm(&first);
    let udi = air.agent.status(air.now).udi.long_form();
    let before = air.manager.reservations();
    let err = air
        .manager
        .update_reservation(&udi, &[enhanced(11)], None, air.now + hours(1))
        .unwrap_err();
    assert!(matches!(err, ManagerError::NoSurplus));
    assert_eq!(air.manager.reservations(), before);
    assert_eq!(pool(&air.manager, ENHANCED), (10, 4, 4, 6));
}

#[test]
fn forged_corrupted_and_replayed_return_codes_free_nothing() {
    let mut air = air();
    let code = air.authorize(&[enhanced(4)]).unwrap();
    air.install_and_confirm(&code);

    // A return code from another instance's reservation key, for a piid this manager never
    // issued; and the genuine code with one group damaged.
    let mut other = air_for("PID:UCM,SN:99999");
    let other_code = other
        .manager
        .authorize_reservation(
            &other.manager.default_virtual_account(),
            &other.request.clone(),
            &[enhanced(1)],
            None,
            false,
            other.now,
        )
        .unwrap()
        .code;
    other
        .agent
        .reservation_install(&other_code, other.now)
        .unwrap();
    let foreign = other
        .agent
        .reservation_return(other.now)
        .unwrap()
        .to_string();
    assert!(matches!(
        air.manager.return_reservation(&foreign, air.now),
        Err(ManagerError::UnknownReservation(_))
    ));

    let genuine = air.agent.reservation_return(air.now).unwrap().to_string();
    let damaged = damage(&genuine);
    assert!(air.manager.return_reservation(&damaged, air.now).is_err());
    assert_eq!(pool(&air.manager, ENHANCED), (10, 4, 4, 6));

    air.manager.return_reservation(&genuine, air.now).unwrap();
    assert_eq!(pool(&air.manager, ENHANCED), (10, 0, 0, 10));
    // Once only, and the returned request cannot be authorized again.
    assert!(matches!(
        air.manager.return_reservation(&genuine, air.now),
        Err(ManagerError::ReservationReturned)
    ));
    assert!(matches!(
        air.authorize(&[enhanced(1)]),
        Err(ManagerError::ReservationReturned)
    ));
    assert_eq!(pool(&air.manager, ENHANCED), (10, 0, 0, 10));
}

/// An [`Air`] for another UDI.
fn air_for(udi: &str) -> Air {
    let mut manager = Manager::new(
        smart_agent::Environment::Production,
        Box::new(smart_agent::DeterministicRandom::new(9)),
    )
    .unwrap();
    let va = manager.default_virtual_account();
    manager
        .add_licenses(&va, &tag(ENHANCED), 10, None, None)
        .unwrap();
    manager
        .set_reservation_allowed(DEFAULT_SMART_ACCOUNT, true)
        .unwrap();
    let mut agent = Agent::new(config(udi, manager.trust_anchors(), 8), t0()).unwrap();
    agent.reservation_enable(t0()).unwrap();
    let request = agent.reservation_request(t0()).unwrap().to_string();
    Air {
        manager,
        agent,
        request,
        now: t0(),
    }
}

/// The code with one base58 character of its middle replaced by another.
fn damage(code: &str) -> String {
    let mut chars: Vec<char> = code.chars().collect();
    let at = chars.len() / 2;
    let at = (at..chars.len())
        .find(|&i| chars[i].is_ascii_alphanumeric())
        .unwrap();
    chars[at] = if chars[at] == '2' { '3' } else { '2' };
    chars.into_iter().collect()
}

#[test]
fn a_code_issued_against_a_cancelled_request_is_returned_with_a_return_authorization() {
    let mut air = air();
    let code = air.authorize(&[enhanced(3)]).unwrap();
    air.agent.reservation_cancel(air.now).unwrap();
    let returned = air
        .agent
        .reservation_return_authorization(&code, air.now)
        .unwrap()
        .to_string();
    air.manager.return_reservation(&returned, air.now).unwrap();
    assert_eq!(pool(&air.manager, ENHANCED), (10, 0, 0, 10));
}

#[test]
fn a_plr_consumes_one_plr_entitlement_and_an_update_adds_one_more() {
    let mut air = air();
    let va = air.manager.default_virtual_account();
    let plr = tag(EXPY_PLR_WITH_EXPORT_CONTROL);
    air.manager.add_licenses(&va, &plr, 2, None, None).unwrap();
    let request = air.request.clone();
    let issued = air
        .manager
        .authorize_reservation(&va, &request, &[], Some(&plr), false, air.now)
        .unwrap();
    assert_eq!(issued.kind, ReservationKind::Universal);
    assert!(issued.code.starts_with('C'));
    let installed = air
        .agent
        .reservation_install(&issued.code, air.now)
        .unwrap();
    assert!(installed.confirmation.is_none());
    assert_eq!(
        pool(&air.manager, EXPY_PLR_WITH_EXPORT_CONTROL),
        (2, 1, 1, 1)
    );
    // PLR with export control allows export-controlled functionality (SPEC §6).
    assert!(air.agent.export_allowed(air.now));
    assert!(air.manager.reservations()[0].export_controlled);

    let udi = air.agent.status(air.now).udi.long_form();
    air.now += hours(1);
    let more = air
        .manager
        .update_reservation(&udi, &[], Some(&plr), air.now)
        .unwrap();
    air.agent.reservation_install(&more.code, air.now).unwrap();
    assert_eq!(
        pool(&air.manager, EXPY_PLR_WITH_EXPORT_CONTROL),
        (2, 2, 2, 0)
    );
    // None left: a third is refused with the surplus message.
    assert!(matches!(
        air.manager
            .update_reservation(&udi, &[], Some(&plr), air.now + hours(1)),
        Err(ManagerError::NoSurplus)
    ));

    let returned = air.agent.reservation_return(air.now).unwrap().to_string();
    air.manager.return_reservation(&returned, air.now).unwrap();
    assert_eq!(
        pool(&air.manager, EXPY_PLR_WITH_EXPORT_CONTROL),
        (2, 0, 0, 2)
    );
}

#[test]
fn an_export_restricted_account_cannot_reserve_with_export_nor_issue_export_tokens() {
    let mut air = air();
    air.manager
        .set_export_restricted(DEFAULT_SMART_ACCOUNT, true)
        .unwrap();
    let va = air.manager.default_virtual_account();
    let request = air.request.clone();
    assert!(matches!(
        air.manager
            .authorize_reservation(&va, &request, &[enhanced(1)], None, true, air.now),
        Err(ManagerError::ExportRestricted(_))
    ));
    assert!(air.manager.reservations().is_empty());
    // The token checkbox is ticked by default, but not for this account (SPEC §7): an
    // instance registered with its token is Not Allowed.
    let token = air
        .manager
        .create_token(&va, TokenOptions::default(), air.now)
        .unwrap();
    let agent = Agent::new(
        config("PID:UCM,SN:40002", air.manager.trust_anchors(), 12),
        air.now,
    )
    .unwrap();
    let mut sim = Sim::with(agent, air.manager);
    sim.now = air.now;
    sim.register(token.expose());
    assert_eq!(
        sim.status().registration.state,
        smart_agent::RegistrationState::Registered
    );
    assert!(!sim.agent.export_allowed(sim.now));
}

// ---------------------------------------------------------------------------------------------
// Export authorization keys
// ---------------------------------------------------------------------------------------------

const FEATURE: &str = "CUCM_Export_Restricted_Authorization_Key";

/// A registered agent of an export-restricted account whose Virtual Account holds `keys`
/// authorization keys for [`FEATURE`].
fn restricted(keys: u32) -> Sim {
    let mut sim = Scenario::new()
        .pool(ENHANCED, 10)
        .usage(ENHANCED, 2)
        .registered();
    sim.manager
        .set_export_restricted(DEFAULT_SMART_ACCOUNT, true)
        .unwrap();
    let va = sim.va();
    if keys > 0 {
        sim.manager.add_export_keys(&va, FEATURE, keys).unwrap();
    }
    sim
}

fn key_pool(sim: &Sim) -> (u32, u32) {
    let pools = sim.manager.export_key_pools(&sim.va());
    let pool = pools.iter().find(|p| p.feature == FEATURE).unwrap();
    (pool.total, pool.in_use)
}

fn export_events(sim: &mut Sim) -> Vec<EventKind> {
    sim.take_events().into_iter().map(|e| e.kind).collect()
}

#[test]
fn an_export_key_is_granted_from_the_pool_and_its_return_gives_it_back() {
    let mut sim = restricted(1);
    sim.agent.export_request(FEATURE, sim.now).unwrap();
    sim.pump();
    assert!(sim.agent.export_key_allowed(FEATURE, sim.now));
    assert_eq!(key_pool(&sim), (1, 1));
    sim.agent.export_return(FEATURE, sim.now).unwrap();
    sim.pump();
    assert!(!sim.agent.export_key_allowed(FEATURE, sim.now));
    assert_eq!(key_pool(&sim), (1, 0));
}

#[test]
fn an_empty_key_pool_is_a_permanent_refusal_with_the_managers_message() {
    let mut sim = restricted(0);
    let va = sim.va();
    sim.manager.add_export_keys(&va, FEATURE, 1).unwrap();
    // Another instance holds the only key.
    let mut second = Sim::with(
        Agent::new(
            config("PID:UCM,SN:40001", sim.manager.trust_anchors(), 11),
            sim.now,
        )
        .unwrap(),
        sim.manager,
    );
    second.now = sim.now;
    second.declare_use(ENHANCED, 1);
    let token = second.token();
    second.register(&token);
    second.agent.export_request(FEATURE, second.now).unwrap();
    second.pump();
    assert!(second.agent.export_key_allowed(FEATURE, second.now));
    sim.manager = second.manager;

    sim.take_events();
    sim.agent.export_request(FEATURE, sim.now).unwrap();
    sim.pump();
    assert!(!sim.agent.export_key_allowed(FEATURE, sim.now));
    let events = export_events(&mut sim);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, EventKind::ExportKeyRefused { .. })),
        "{events:?}"
    );
    // Permanent: nothing more is sent for it.
    sim.advance(days(1));
    assert!(sim.agent.poll_transmit(sim.now).is_none());
}

#[test]
fn a_manager_without_the_capability_answers_not_supported_and_the_agent_reports_it() {
    let mut sim = restricted(1);
    sim.manager.set_export_keys_supported(false).unwrap();
    sim.take_events();
    sim.agent.export_request(FEATURE, sim.now).unwrap();
    sim.pump();
    assert!(!sim.agent.export_key_allowed(FEATURE, sim.now));
    assert_eq!(key_pool(&sim), (1, 0));
    let events = export_events(&mut sim);
    let refusal = events
        .iter()
        .find_map(|e| match e {
            EventKind::ExportKeyRefused { message, .. } => Some(message.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no refusal in {events:?}"));
    assert!(refusal.contains("not supported"), "{refusal}");
}

#[test]
fn deregistration_gives_the_instances_keys_back_to_the_pool() {
    let mut sim = restricted(2);
    sim.agent.export_request(FEATURE, sim.now).unwrap();
    sim.pump();
    assert_eq!(key_pool(&sim), (2, 1));
    sim.agent.deregister(sim.now).unwrap();
    sim.pump();
    assert_eq!(key_pool(&sim), (2, 0));
    assert!(!sim.agent.export_key_allowed(FEATURE, sim.now));
}

#[test]
fn a_force_reregistration_frees_the_old_instances_keys_and_the_agent_drops_them() {
    let mut sim = restricted(1);
    sim.agent.export_request(FEATURE, sim.now).unwrap();
    sim.pump();
    assert_eq!(key_pool(&sim), (1, 1));
    let token = sim.token();
    sim.agent
        .register(&token, smart_agent::Force::Yes, sim.now)
        .unwrap();
    sim.pump();
    assert_eq!(key_pool(&sim), (1, 0));
    assert!(sim.agent.export_keys().is_empty());
    // And the freed key can be requested again under the new piid.
    sim.agent.export_request(FEATURE, sim.now).unwrap();
    sim.pump();
    assert!(sim.agent.export_key_allowed(FEATURE, sim.now));
    assert_eq!(key_pool(&sim), (1, 1));
}
