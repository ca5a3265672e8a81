//! The fuzz targets' seed corpus of real encoded values (requests, answers, snapshots) made by
//! this crate. `SMART_AGENT_WRITE_CORPUS=1 cargo test --all-features --test fuzz_corpus`
//! rewrites the `real_*` seeds; every run checks that the committed ones still decode, so the
//! corpus follows the formats.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use smart_agent::crypto::ManagerSigningKey;
use smart_agent::manager::Manager;
use smart_agent::wire::{decode_request, decode_response};
use smart_agent::{Agent, DeterministicRandom, Environment, Force, SendError, SnapshotParts};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The fixed manager key the snapshot seeds are signed with (the fuzz target trusts it).
fn fixture_key(write: bool) -> ManagerSigningKey {
    let path = fuzz_dir().join("fixtures/manager-key.pk8");
    if write && !path.exists() {
        let key = ManagerSigningKey::generate().unwrap();
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, key.pkcs8()).unwrap();
    }
    ManagerSigningKey::from_pkcs8(&fs::read(&path).unwrap()).unwrap()
}

/// Encodes parts for the `snapshot_parts` target: u32 licensing length, licensing, communication.
pub fn parts_input(parts: &SnapshotParts) -> Vec<u8> {
    let mut out = (parts.licensing.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&parts.licensing);
    out.extend_from_slice(&parts.communication);
    out
}

struct Corpus {
    requests: Vec<(String, Vec<u8>)>,
    responses: Vec<(String, Vec<u8>)>,
    snapshots: Vec<(String, Vec<u8>)>,
    parts: Vec<(String, Vec<u8>)>,
}

fn record_snapshot(c: &mut Corpus, name: &str, agent: &Agent) {
    c.snapshots.push((name.into(), agent.snapshot()));
    c.parts
        .push((name.into(), parts_input(&agent.snapshot_parts())));
}

fn make(write: bool) -> Corpus {
    let key = fixture_key(write);
    let manager = Manager::with_signing_key(
        Environment::Production,
        Box::new(DeterministicRandom::new(5)),
        key,
    )
    .unwrap();
    let agent = Agent::new(config(UDI, manager.trust_anchors(), 6), t0()).unwrap();
    let mut sim = Sim::with(agent, manager);
    let mut c = Corpus {
        requests: vec![],
        responses: vec![],
        snapshots: vec![],
        parts: vec![],
    };
    record_snapshot(&mut c, "fresh", &sim.agent);
    sim.pool(ENHANCED, 2);
    sim.declare_use(ENHANCED, 5);
    sim.declare_use(BASIC, 0);
    record_snapshot(&mut c, "evaluation", &sim.agent);
    let token = sim.token();
    sim.agent.register(&token, Force::No, sim.now).unwrap();
    let exchange = |sim: &mut Sim, c: &mut Corpus, name: &str| {
        let tx = sim.agent.poll_transmit(sim.now).unwrap();
        let answer = sim.manager.handle(&tx.body, sim.now);
        c.requests.push((name.into(), tx.body.clone()));
        c.responses.push((name.into(), answer.clone()));
        sim.agent.handle_response(tx.id, Ok(answer), sim.now);
    };
    exchange(&mut sim, &mut c, "register");
    exchange(&mut sim, &mut c, "authorize_out_of_compliance");
    record_snapshot(&mut c, "registered", &sim.agent);
    sim.agent.renew_id(sim.now).unwrap();
    exchange(&mut sim, &mut c, "renew_id");
    sim.agent.set_usage(&tag(ENHANCED), 7, sim.now).unwrap();
    let _ = sim.agent.poll_transmit(sim.now); // not due yet: coalescing
    sim.now += minutes(1);
    sim.agent.handle_timeout(sim.now);
    let tx = sim.agent.poll_transmit(sim.now).unwrap();
    record_snapshot(&mut c, "outstanding_authorize", &sim.agent);
    sim.agent
        .handle_response(tx.id, Err(SendError::Timeout), sim.now);
    record_snapshot(&mut c, "renewal_failing", &sim.agent);
    sim.manager.set_max_protocol_version(0);
    sim.agent.renew_auth(sim.now).unwrap();
    exchange(&mut sim, &mut c, "version_too_high");
    sim.manager.set_max_protocol_version(1);
    sim.agent.deregister(sim.now).unwrap();
    exchange(&mut sim, &mut c, "deregister");
    sim.agent
        .register("UnknownToken", Force::No, sim.now)
        .unwrap();
    exchange(&mut sim, &mut c, "register_token_invalid");
    record_snapshot(&mut c, "registration_failed", &sim.agent);
    c
}

fn seeds(target: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir().join("corpus").join(target);
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("real_")
        })
        .collect();
    files.sort();
    files
}

#[test]
fn committed_real_seeds_decode() {
    let write = std::env::var_os("SMART_AGENT_WRITE_CORPUS").is_some();
    if write {
        let c = make(true);
        for (target, items) in [
            ("request_decoder", &c.requests),
            ("response_decoder", &c.responses),
            ("snapshot_decoder", &c.snapshots),
            ("snapshot_parts", &c.parts),
        ] {
            let dir = fuzz_dir().join("corpus").join(target);
            fs::create_dir_all(&dir).unwrap();
            for old in seeds(target) {
                fs::remove_file(old).unwrap();
            }
            for (name, bytes) in items {
                fs::write(dir.join(format!("real_{name}")), bytes).unwrap();
            }
        }
    }
    let requests = seeds("request_decoder");
    let responses = seeds("response_decoder");
    let snapshots = seeds("snapshot_decoder");
    let parts = seeds("snapshot_parts");
    assert!(
        requests.len() >= 5 && responses.len() >= 5,
        "run with SMART_AGENT_WRITE_CORPUS=1"
    );
    assert!(snapshots.len() >= 5 && parts.len() == snapshots.len());
    for p in requests {
        decode_request(&fs::read(&p).unwrap(), 1 << 20).unwrap_or_else(|e| panic!("{p:?}: {e}"));
    }
    for p in responses {
        decode_response(&fs::read(&p).unwrap(), 1 << 20).unwrap_or_else(|e| panic!("{p:?}: {e}"));
    }
    let anchor = smart_agent::TrustAnchor::new(
        fixture_key(false).public_key().clone(),
        Environment::Production,
    );
    for p in snapshots {
        let cfg = config(UDI, vec![anchor.clone()], 1);
        Agent::restore(&fs::read(&p).unwrap(), cfg, t0()).unwrap_or_else(|e| panic!("{p:?}: {e}"));
    }
}
