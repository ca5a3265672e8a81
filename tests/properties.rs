//! Property tests over random operation sequences (SPEC §12): every locally rejected call
//! leaves `snapshot()` byte-identical, and `restore(snapshot())` shows the same status and
//! writes the same bytes.

mod common;

use std::cell::Cell;

use chrono::TimeDelta;
use common::*;
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use smart_agent::manager::Manager;
use smart_agent::{
    Agent, DeterministicRandom, Environment, Force, HostIdentity, ProductKey, Protection,
    TransportSettings,
};

const TAGS: [&str; 4] = [ENHANCED, BASIC, CUWL, ENHANCED_PLUS];

#[derive(Clone, Debug)]
enum Op {
    Declare(usize),
    /// Index 4 is never declared.
    SetUsage(usize, u32),
    Register {
        token: u8,
        force: bool,
    },
    RenewId,
    RenewAuth,
    Deregister,
    Transport(u8),
    Subscriber(bool),
    Privacy(bool),
    Host(u8),
    Advance(u32),
    LinkUp(bool),
    /// 0 enable, 1 request, 2 cancel, 3 disable, 4 return, 5 install junk,
    /// 6 return-authorization of junk.
    Reservation(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..4).prop_map(Op::Declare),
        (0usize..5, 0u32..8).prop_map(|(i, n)| Op::SetUsage(i, n)),
        (0u8..3, any::<bool>()).prop_map(|(token, force)| Op::Register { token, force }),
        Just(Op::RenewId),
        Just(Op::RenewAuth),
        Just(Op::Deregister),
        (0u8..3).prop_map(Op::Transport),
        any::<bool>().prop_map(Op::Subscriber),
        any::<bool>().prop_map(Op::Privacy),
        (0u8..2).prop_map(Op::Host),
        (1u32..60 * 24 * 40).prop_map(Op::Advance),
        any::<bool>().prop_map(Op::LinkUp),
        (0u8..7).prop_map(Op::Reservation),
    ]
}

fn config_for(manager: &Manager, protection: &Protection) -> smart_agent::Config {
    config(UDI, manager.trust_anchors(), 11).with_protection(protection.clone())
}

/// Runs `ops`, each at `sim.now + offset`; returns how many calls the agent rejected.
fn run(ops: &[(Op, TimeDelta)], protection: Protection) -> usize {
    let manager = Manager::new(
        Environment::Production,
        Box::new(DeterministicRandom::new(3)),
    )
    .unwrap();
    let agent = Agent::new(config_for(&manager, &protection), t0()).unwrap();
    let mut sim = Sim::with(agent, manager);
    sim.pool(ENHANCED, 5);
    sim.pool(BASIC, 5);
    let valid_token = sim.token();
    let rejections = Cell::new(0usize);
    for (op, offset) in ops {
        let before = sim.agent.snapshot();
        // Ahead of or behind the clock: a rejected call that recorded it would show.
        let now = sim.now + *offset;
        let check = |result: Result<(), smart_agent::Error>, sim: &Sim| {
            if result.is_err() {
                rejections.set(rejections.get() + 1);
                assert_eq!(
                    sim.agent.snapshot(),
                    before,
                    "{op:?} was rejected but changed the snapshot"
                );
            }
        };
        match op {
            Op::Declare(i) => sim.agent.declare(tag(TAGS[*i]), now),
            Op::SetUsage(i, n) => {
                let t = if *i < 4 {
                    tag(TAGS[*i])
                } else {
                    tag("regid.2020-01.com.cisco.UCM_Never,12.0_00000000-0000-4000-8000-000000000009")
                };
                let r = sim.agent.set_usage(&t, *n, now);
                check(r, &sim);
            }
            Op::Register { token, force } => {
                let text = match token {
                    0 => valid_token.as_str(),
                    1 => "not a token!",
                    _ => "UnknownButWellFormed",
                };
                let force = if *force { Force::Yes } else { Force::No };
                let r = sim.agent.register(text, force, now);
                check(r, &sim);
            }
            Op::RenewId => {
                let r = sim.agent.renew_id(now);
                check(r, &sim);
            }
            Op::RenewAuth => {
                let r = sim.agent.renew_auth(now);
                check(r, &sim);
            }
            Op::Deregister => {
                let r = sim.agent.deregister(now);
                check(r, &sim);
            }
            Op::Transport(mode) => {
                let settings = match mode {
                    0 => TransportSettings::Direct,
                    1 => TransportSettings::on_prem("https://ssm.example.com:8443/SmartTransport")
                        .unwrap(),
                    _ => TransportSettings::proxy("proxy.example.com", "3128", None).unwrap(),
                };
                let r = sim.agent.set_transport(settings, now);
                check(r, &sim);
            }
            Op::Subscriber(on) => sim.agent.set_subscriber(*on, now),
            Op::Privacy(on) => sim.agent.set_privacy(*on, now),
            Op::Host(i) => {
                let name = ["ucm-pub.example.com", "ucm-sub.example.com"][*i as usize];
                let host = HostIdentity::new(name, "192.0.2.10".parse().unwrap()).unwrap();
                sim.agent.set_host(host, now);
            }
            Op::Advance(minutes_ahead) => sim.advance(minutes(i64::from(*minutes_ahead))),
            Op::LinkUp(up) => {
                sim.link = if *up { Link::Up } else { Link::Down(refused()) };
            }
            Op::Reservation(step) => {
                let agent = &mut sim.agent;
                let r = match step {
                    0 => agent.reservation_enable(now),
                    1 => agent.reservation_request(now).map(drop),
                    2 => agent.reservation_cancel(now),
                    3 => agent.reservation_disable(now),
                    4 => agent.reservation_return(now).map(drop),
                    5 => agent.reservation_install("CAVfS8-tqmsHn", now).map(drop),
                    _ => agent
                        .reservation_return_authorization("<specificPLR/>", now)
                        .map(drop),
                };
                check(r, &sim);
            }
        }
        sim.pump();
        let snapshot = sim.agent.snapshot();
        let restored =
            Agent::restore(&snapshot, config_for(&sim.manager, &protection), sim.now).unwrap();
        assert_eq!(restored.status(sim.now), sim.status(), "after {op:?}");
        // The current version reads back byte-identically (SPEC §12).
        assert_eq!(restored.snapshot(), snapshot, "after {op:?}");
    }
    rejections.get()
}

fn offset() -> impl Strategy<Value = TimeDelta> {
    prop_oneof![Just(TimeDelta::zero()), Just(minutes(90)), Just(-hours(2))]
}

/// Runs the property over random sequences and checks that rejections really happened.
fn check(protection: Protection) {
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 48,
        ..ProptestConfig::default()
    });
    let rejected = Cell::new(0usize);
    let sequences = proptest::collection::vec((op(), offset()), 1..40);
    let result = runner.run(&sequences, |ops| {
        rejected.set(rejected.get() + run(&ops, protection.clone()));
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    assert!(
        rejected.get() > 0,
        "no call was rejected: the property was never exercised"
    );
}

#[test]
fn rejected_calls_leave_the_integrity_checked_snapshot_byte_identical() {
    check(Protection::Integrity);
}

#[test]
fn rejected_calls_leave_the_sealed_snapshot_byte_identical() {
    check(Protection::Sealed(ProductKey::new([42; 32])));
}

/// A fixed sequence known to contain rejections, in both modes.
#[test]
fn the_property_runs_see_rejections() {
    let ops = [
        Op::RenewId,
        Op::Register {
            token: 1,
            force: false,
        },
        Op::SetUsage(4, 1),
        Op::Declare(0),
        Op::SetUsage(0, 2),
        Op::Register {
            token: 0,
            force: false,
        },
        Op::Register {
            token: 0,
            force: false,
        },
        Op::Transport(2),
        Op::Subscriber(true),
        Op::Deregister,
    ];
    let ops: Vec<_> = ops.into_iter().map(|op| (op, -hours(2))).collect();
    assert_eq!(run(&ops, Protection::Integrity), 6);
    assert_eq!(run(&ops, Protection::Sealed(ProductKey::new([1; 32]))), 6);
}
