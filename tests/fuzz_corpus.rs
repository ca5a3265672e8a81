//! The fuzz targets' seed corpus: real encoded values made by this crate (`real_*`) and copies
//! of the golden files of every released format (`golden_*`), for every target.
//! `SMART_AGENT_WRITE_CORPUS=1 cargo test --all-features --test fuzz_corpus` rewrites both
//! (`SMART_AGENT_WRITE_CORPUS=TARGET,…` only those targets' seeds);
//! every run checks that the committed ones still go as deep as they did when they were made
//! (requests and answers decode, snapshots restore, codes parse, answers to the waiting agent
//! are taken), so the corpus follows the formats. Other files in `fuzz/corpus/` (hand-written
//! seeds) are left alone. The seeds are made with the same code the targets run
//! (`fuzz/fuzz_targets/support/`, included here), so they fit the targets' input layouts.
#![cfg(feature = "manager")]

#[path = "../fuzz/fuzz_targets/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use chrono::TimeDelta;
use smart_agent::codes::{
    ConfirmationCode, ExportKey, LicenseType, PlrClaims, PlrCode, PlrEntitlement, RequestCode,
    ReturnCode, ReturnKind, SlrClaims, SlrCode, SlrEntitlement,
};
use smart_agent::crypto::DeviceKey;
use smart_agent::manager::{catalogue, Manager, STATE_MAGIC};
use smart_agent::snapshot::{self, Protection};
use smart_agent::wire::{decode_request, decode_response};
use smart_agent::{
    Agent, DeterministicRandom, Environment, Force, ProductKey, SendError, Tag, Udi, Uuid,
};

use support::agent_ops::{how, op};
use support::answers::{self, Nested};
use support::sim::{ExportAnswer, Fate, World, FEATURES, TAGS};
use support::snapshot::parts_input;
use support::{config_for, signing_key, UDI, UDIS};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// Seeds by target: (file name without prefix, bytes).
#[derive(Default)]
struct Corpus(BTreeMap<&'static str, Vec<(String, Vec<u8>)>>);

impl Corpus {
    fn add(&mut self, target: &'static str, name: impl Into<String>, bytes: impl Into<Vec<u8>>) {
        self.0
            .entry(target)
            .or_default()
            .push((name.into(), bytes.into()));
    }

    fn text(&mut self, target: &'static str, name: impl Into<String>, text: &str) {
        self.add(target, name, text.as_bytes().to_vec());
    }

    /// A snapshot under every snapshot target.
    fn snapshot(&mut self, name: &str, snapshot: &[u8], parts: &snapshot::SnapshotParts) {
        self.add("snapshot_decoder", name, snapshot);
        self.add("snapshot_container", name, snapshot);
        let profile = profile_of(&parts.licensing);
        self.add("snapshot_parts", name, parts_input(profile, parts));
    }
}

/// The index in `UDIS` of the UDI a licensing part was written for.
fn profile_of(licensing: &[u8]) -> u8 {
    let found = UDIS.iter().position(|u| {
        let udi: Udi = u.parse().unwrap();
        [udi.long_form(), udi.code_form()]
            .iter()
            .any(|f| licensing.windows(f.len()).any(|w| w == f.as_bytes()))
    });
    found.unwrap_or(0) as u8
}

fn exchange(w: &mut World, c: &mut Corpus, name: &str) {
    let tx = w.agent.poll_transmit(w.now).expect("a request is due");
    let answer = w.genuine_answer(&tx, ExportAnswer::Ok);
    c.add("request_decoder", name, tx.body.clone());
    c.add("response_decoder", name, answer.clone());
    w.deliver(tx.id, Ok(answer));
}

fn record(w: &World, c: &mut Corpus, name: &str) {
    c.snapshot(name, &w.agent.snapshot(), &w.agent.snapshot_parts());
}

fn tag(s: &str) -> Tag {
    Tag::parse(s).unwrap()
}

/// Requests, answers and snapshots of one agent's life (and the manager's state after it).
fn lifecycle(c: &mut Corpus) {
    let mut w = World::new(6);
    record(&w, c, "fresh");
    w.agent.declare(tag(TAGS[0]), w.now);
    w.agent.set_usage(&tag(TAGS[0]), 5, w.now).unwrap();
    w.agent.declare(tag(TAGS[1]), w.now);
    record(&w, c, "evaluation");
    let token = w.token.clone();
    w.agent.register(&token, Force::No, w.now).unwrap();
    exchange(&mut w, c, "register");
    exchange(&mut w, c, "authorize_out_of_compliance");
    record(&w, c, "registered");
    w.agent.renew_id(w.now).unwrap();
    exchange(&mut w, c, "renew_id");
    w.agent.set_usage(&tag(TAGS[0]), 7, w.now).unwrap();
    w.now += TimeDelta::minutes(1);
    w.agent.handle_timeout(w.now);
    let tx = w.agent.poll_transmit(w.now).unwrap();
    record(&w, c, "outstanding_authorize");
    w.deliver(tx.id, Err(SendError::Timeout));
    record(&w, c, "renewal_failing");
    w.manager.set_max_protocol_version(0);
    w.agent.renew_auth(w.now).unwrap();
    exchange(&mut w, c, "version_too_high");
    w.manager.set_max_protocol_version(1);
    c.add("manager_state", "registered", w.manager.save_state());
    w.agent.deregister(w.now).unwrap();
    exchange(&mut w, c, "deregister");
    w.agent.register("UnknownToken", Force::No, w.now).unwrap();
    exchange(&mut w, c, "register_token_invalid");
    record(&w, c, "registration_failed");
    c.add("manager_state", "deregistered", w.manager.save_state());
    c.text("registration_token", "token", &w.token);
    c.text("registration_token", "export_token", &w.export_token);
}

/// An export-controlled agent that takes a key, returns it and asks again.
fn export(c: &mut Corpus) {
    let mut w = World::registered(7, true);
    w.agent.export_request(FEATURES[0], w.now).unwrap();
    let tx = w.agent.poll_transmit(w.now).unwrap();
    let answer = w.genuine_answer(&tx, ExportAnswer::Ok);
    c.add("request_decoder", "export_request", tx.body.clone());
    c.add("response_decoder", "export_request", answer.clone());
    let key = answers::nested(&answer, Nested::ExportKey.root()).unwrap();
    c.add("export_key", "granted", key);
    assert_eq!(w.deliver(tx.id, Ok(answer)), Fate::Taken);
    record(&w, c, "export_key_held");
    w.agent.export_return(FEATURES[0], w.now).unwrap();
    exchange(&mut w, c, "export_return");
    w.agent.export_request(FEATURES[1], w.now).unwrap();
    let tx = w.agent.poll_transmit(w.now).unwrap();
    let refused = w.genuine_answer(&tx, ExportAnswer::NoKeys);
    c.add("response_decoder", "export_refused", refused.clone());
    w.deliver(tx.id, Ok(refused));
    let key = ExportKey::issue(
        Uuid([7; 16]),
        FEATURES[1],
        Uuid([0x42; 16]),
        &UDI.parse().unwrap(),
        w.now,
        Environment::Production,
        &signing_key(),
    )
    .unwrap();
    c.text("export_key", "issued", &key.to_string());
}

fn slr_entitlement(tag_text: &str, count: u32, term: bool, w: &World) -> SlrEntitlement {
    let today = w.now.date_naive();
    SlrEntitlement {
        tag: tag(tag_text),
        count,
        start_date: term.then_some(today),
        end_date: term.then(|| today + TimeDelta::days(365)),
        license_type: if term {
            LicenseType::Term
        } else {
            LicenseType::Perpetual
        },
        display_name: "UC Manager Enhanced License (12.x)".into(),
        tag_description: "UC Manager Enhanced License".into(),
        subscription_id: term.then(|| "Sub123456".to_string()),
    }
}

/// Reservations: the request code, SLR and PLR codes installed, confirmation and return codes.
fn reservation(c: &mut Corpus) {
    for plr in [false, true] {
        let mut w = World::new(8);
        w.agent.declare(tag(TAGS[0]), w.now);
        w.agent.set_usage(&tag(TAGS[0]), 4, w.now).unwrap();
        w.agent.reservation_enable(w.now).unwrap();
        let request = w.agent.reservation_request(w.now).unwrap();
        c.text("request_code", "agent", &request.to_string());
        let kind = if plr { "plr" } else { "slr" };
        let code = if plr {
            let claims = PlrClaims {
                piid: Uuid([0x42; 16]),
                timestamp: w.now,
                udi: request.udi().clone(),
                reservation_key: request.reservation_key_hash(),
                environment: Environment::Production,
                export_controlled: false,
                entitlements: vec![
                    PlrEntitlement {
                        tag: tag(TAGS[0]),
                        count: 5,
                    },
                    PlrEntitlement {
                        tag: tag(TAGS[1]),
                        count: 2,
                    },
                ],
            };
            let code = PlrCode::issue(&claims, &w.key).unwrap().to_string();
            c.text("plr_code", "installed", &code);
            code
        } else {
            let claims = SlrClaims {
                piid: Uuid([0x42; 16]),
                timestamp: w.now,
                udi: request.udi().clone(),
                reservation_key: request.reservation_key_hash(),
                environment: Environment::Production,
                export_controlled: false,
                entitlements: vec![
                    slr_entitlement(TAGS[0], 5, false, &w),
                    slr_entitlement(TAGS[1], 2, true, &w),
                ],
            };
            let code = SlrCode::issue(&claims, &w.key).unwrap();
            c.text(
                "confirmation_code",
                "installed",
                &code.confirmation_code().to_string(),
            );
            let code = code.to_string();
            c.text("slr_code", "installed", &code);
            code
        };
        w.agent.reservation_install(&code, w.now).unwrap();
        record(&w, c, &format!("reserved_{kind}"));
        let returned = w.agent.reservation_return(w.now).unwrap();
        c.text(
            "return_code",
            format!("agent_{kind}"),
            &returned.to_string(),
        );
        record(&w, c, &format!("returned_{kind}"));
    }
    let key = DeviceKey::from_seed(support::codes::RETURN_KEY_SEED);
    let at = support::now();
    for (name, kind) in [
        ("installed", ReturnKind::Installed),
        ("authorization", ReturnKind::Authorization),
    ] {
        let code = ReturnCode::sign(kind, Uuid([0x42; 16]), at, &key);
        c.text("return_code", name, &code.to_string());
    }
    let foreign = RequestCode::new(
        "PID:Expressway,SN:1A2B3C4D,UUID:00000000000040008000000000000001"
            .parse()
            .unwrap(),
        key.public_key(),
    );
    c.text("request_code", "expressway", &foreign.to_string());
    let claims = PlrClaims {
        piid: Uuid([0x43; 16]),
        timestamp: at,
        udi: foreign.udi().clone(),
        reservation_key: foreign.reservation_key_hash(),
        environment: Environment::Production,
        export_controlled: true,
        entitlements: vec![PlrEntitlement {
            tag: tag(smart_agent::entitlement::EXPY_PLR_WITH_EXPORT_CONTROL),
            count: 1,
        }],
    };
    let code = PlrCode::issue(&claims, &signing_key()).unwrap();
    c.text("plr_code", "expressway_export", &code.to_string());
    c.text("confirmation_code", "short", "4ef63f1");
}

/// The nested documents of genuine answers to the answer targets' waiting agent, in every
/// mode: `real_taken` (to the agent, as signed), `real_resigned` (to the agent, re-signed),
/// `real_parsed` (decoded only).
fn nested_documents(c: &mut Corpus) {
    for (target, nested) in [
        ("answer_identity", Nested::Identity),
        ("answer_grant", Nested::Grant),
        ("answer_export_key", Nested::ExportKey),
    ] {
        let (mut w, tx) = answers::prepare(nested);
        let answer = w.genuine_answer(&tx, ExportAnswer::Ok);
        let doc = answers::nested(&answer, nested.root()).expect("the answer carries it");
        for (name, mode) in [("taken", 1u8), ("resigned", 3), ("parsed", 0)] {
            let mut input = vec![mode];
            input.extend_from_slice(&doc);
            c.add(target, name, input);
        }
    }
}

fn script(ops: &[&[u8]]) -> Vec<u8> {
    ops.concat()
}

/// Operation sequences for the stateful target (`support::agent_ops` documents the layout).
fn agent_scripts(c: &mut Corpus) {
    use op::*;
    let usage: &[&[u8]] = &[
        &[DECLARE, 0],
        &[SET_USAGE, 0, 3],
        &[DECLARE, 1],
        &[SET_USAGE, 1, 1],
    ];
    let mut happy = usage.to_vec();
    happy.extend_from_slice(&[
        &[REGISTER, 0],
        &[PUMP],
        &[FORWARD, 6],
        &[PUMP],
        &[TO_DEADLINE, 0],
        &[PUMP],
        &[RESTORE],
        &[PUMP],
        &[FORWARD, 9],
        &[TO_DEADLINE, 0],
        &[PUMP],
        &[SET_USAGE, 0, 9],
        &[FORWARD, 2],
        &[PUMP],
        &[DEREGISTER],
        &[PUMP],
    ]);
    c.add("agent_ops", "registered_life", script(&happy));

    let mut faults = usage.to_vec();
    faults.extend_from_slice(&[
        &[REGISTER, 0],
        &[EXCHANGE, how::LOST_REQUEST, 1],
        &[TO_DEADLINE, 0],
        &[EXCHANGE, how::FLIPPED, 0, 200, 1],
        &[TO_DEADLINE, 0],
        &[EXCHANGE, how::TRUNCATED, 1, 0],
        &[TO_DEADLINE, 0],
        &[EXCHANGE, how::GENUINE, 0],
        &[EXCHANGE, how::RESIGNED, 0, 120, 4],
        &[TO_DEADLINE, 0],
        &[EXCHANGE, how::LATE, 0],
        &[TO_DEADLINE, 0],
        &[EXCHANGE, how::DUPLICATED, 0],
        &[DELIVER_LATE],
        &[RENEW_AUTH],
        &[EXCHANGE, how::ARBITRARY, 4, b'<', b'r', b'/', b'>'],
        &[BACK, 6],
        &[RENEW_ID],
        &[EXCHANGE, how::SPLICED, 0, 90, 3, b'&', b'#', b';'],
        &[RESTORE],
        &[EXCHANGE, how::LOST_ANSWER],
        &[FORWARD, 8],
        &[FORWARD, 8],
        &[PUMP],
    ]);
    c.add("agent_ops", "faults", script(&faults));

    for (name, spec) in [("slr", 0u8), ("plr", 1u8)] {
        let install = [RESERVATION_INSTALL, spec, 5, 0, 0, 0];
        let again = [RESERVATION_INSTALL, spec | 32, 6, 1, 0, 0];
        let mistyped = [RESERVATION_INSTALL, spec | 8, 6, 0, 40, b'x'];
        let never_installed = [RESERVATION_RETURN_AUTHORIZATION, spec, 2, 0, 0, 0];
        let mut ops = usage.to_vec();
        ops.extend_from_slice(&[
            &[RESERVATION_ENABLE],
            &[RESERVATION_REQUEST],
            &[PERSIST],
            &install,
            &[FORWARD, 10],
            &[RESTORE],
            &again,
            &mistyped,
            &[RESERVATION_RETURN],
            &[RESERVATION_DISABLE],
            &[RESERVATION_ENABLE],
            &[RESERVATION_REQUEST],
            &never_installed,
            &[RESERVATION_CANCEL],
            &[RESERVATION_DISABLE],
            &[REGISTER, 0],
            &[PUMP],
        ]);
        c.add("agent_ops", format!("reservation_{name}"), script(&ops));
    }
    let mut term = usage.to_vec();
    term.extend_from_slice(&[
        &[RESERVATION_ENABLE],
        &[RESERVATION_REQUEST],
        &[RESERVATION_INSTALL, 128, 3, 0, 0, 0],
        &[FORWARD, 5],
        &[RESTORE],
        &[TO_DEADLINE, 0],
        &[TO_DEADLINE, 0],
    ]);
    c.add("agent_ops", "reservation_term", script(&term));

    let mut export = usage.to_vec();
    export.extend_from_slice(&[
        &[REGISTER, 1],
        &[PUMP],
        &[EXPORT_REQUEST, 0],
        &[EXCHANGE, how::GENUINE, 0],
        &[EXPORT_REQUEST, 1],
        &[EXCHANGE, how::GENUINE, 1],
        &[RESTORE],
        &[EXPORT_RETURN, 0],
        &[EXCHANGE, how::LOST_REQUEST, 0],
        &[TO_DEADLINE, 0],
        &[EXCHANGE, how::GENUINE, 0],
        &[EXPORT_REQUEST, 0],
        &[EXCHANGE, how::GENUINE, 3],
        &[EXPORT_CANCEL],
        &[EXPORT_REQUEST, 2],
        &[DEREGISTER],
        &[PUMP],
    ]);
    c.add("agent_ops", "export", script(&export));

    let mut evaluation = usage.to_vec();
    evaluation.extend_from_slice(&[
        &[FORWARD, 8],
        &[TO_DEADLINE, 0],
        &[TO_DEADLINE, 0],
        &[BACK, 4],
        &[TO_DEADLINE, 0],
        &[REGISTER, 2],
        &[PUMP],
        &[REGISTER, 3],
        &[REGISTER, 0],
        &[EXCHANGE, how::LOST_REQUEST, 0],
        &[TO_DEADLINE, 0],
        &[PUMP],
        &[FORWARD, 11],
        &[TO_DEADLINE, 0],
        &[PUMP],
    ]);
    c.add("agent_ops", "evaluation", script(&evaluation));

    let settings: &[&[u8]] = &[
        &[SETTINGS, 0, 1],
        &[SETTINGS, 1, 5],
        &[SETTINGS, 3, 1],
        &[SETTINGS, 4, 0],
        &[DECLARE, 0],
        &[SET_USAGE, 0, 1],
        &[REGISTER, 0],
        &[PUMP],
        &[SETTINGS, 1, 6],
        &[SETTINGS, 0, 0],
        &[PUMP],
        &[SETTINGS, 2, 0],
        &[RENEW_AUTH],
        &[REGISTER, 4],
        &[SETTINGS, 2, 1],
        &[SETTINGS, 3, 2],
        &[REGISTER, 4],
        &[PUMP],
    ];
    c.add("agent_ops", "settings", script(settings));
}

/// UDIs in every spelling, the catalogue's tags.
fn text_values(c: &mut Corpus) {
    let full: Udi = Udi::new("Expressway")
        .unwrap()
        .with_serial("1A2B3C4D")
        .unwrap()
        .with_version_id("V01")
        .unwrap()
        .with_uuid(Uuid([0x6f; 16]))
        .with_host_id("h.1")
        .unwrap()
        .with_mac("0050.56a1.b2c3")
        .unwrap();
    for (name, udi) in [("seed", UDI.parse::<Udi>().unwrap()), ("full", full)] {
        c.text("udi", format!("{name}_long"), &udi.long_form());
        c.text("udi", format!("{name}_code"), &udi.code_form());
        c.text("udi", format!("{name}_request"), &udi.request_form());
    }
    c.text("udi", "pid_only", "PID:UCM");
    for (i, entry) in catalogue::catalogue().iter().enumerate().take(12) {
        c.text(
            "entitlement_tag",
            format!("catalogue_{i:02}"),
            entry.tag.as_str(),
        );
    }
    c.text("entitlement_tag", "unknown", TAGS[2]);
    c.text(
        "registration_token",
        "seed_doc",
        "NjEwN2ZjZjEtZmI1Zi00%0AOTQ3ODV8",
    );
}

/// Copies of committed fixtures: every golden agent snapshot of v1, v2 and v3 (all snapshot
/// targets), the golden manager states (whole, and as the payload the manager-state target
/// wraps), and the SLR code samples of `tests/fixtures/codes`.
fn golden(c: &mut Corpus) {
    for (set, dir) in [
        ("v1", "tests/fixtures/v1/agent"),
        ("v2", "tests/fixtures/v2"),
        ("v3", "tests/fixtures/v3"),
    ] {
        for path in files(&root().join(dir)) {
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            let Some(name) = file.strip_suffix(".snapshot") else {
                continue;
            };
            let bytes = fs::read(&path).unwrap();
            let name = format!("{set}_{name}");
            c.add("snapshot_decoder", name.clone(), bytes.clone());
            c.add("snapshot_container", name.clone(), bytes.clone());
            let parts = (0..support::PRODUCT_KEYS.len())
                .find_map(|k| snapshot::open(&bytes, &support::protection(&bytes, k)).ok())
                .expect("a golden snapshot opens");
            c.add(
                "snapshot_parts",
                name,
                parts_input(profile_of(&parts.licensing), &parts),
            );
        }
    }
    for path in files(&root().join("tests/fixtures/codes")) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".xml") {
            c.add(
                "slr_code",
                format!("codes_{stem}"),
                fs::read(&path).unwrap(),
            );
        }
    }
    for (name, path) in [
        ("v1", "tests/fixtures/v1/manager/state"),
        ("v1_cli", "tests/fixtures/v1/cli-state/manager/state"),
        ("v2", "tests/fixtures/v2/manager.state"),
        ("v3", "tests/fixtures/v3/manager.state"),
    ] {
        let bytes = fs::read(root().join(path)).unwrap();
        c.add("manager_state", name, bytes.clone());
        if bytes.starts_with(STATE_MAGIC) {
            // A version 1 state file: its payload too, which the target wraps.
            c.add(
                "manager_state",
                format!("{name}_payload"),
                bytes[10..bytes.len() - 32].to_vec(),
            );
        }
    }
}

fn make() -> Corpus {
    let mut c = Corpus::default();
    lifecycle(&mut c);
    export(&mut c);
    reservation(&mut c);
    nested_documents(&mut c);
    agent_scripts(&mut c);
    text_values(&mut c);
    let parts = World::registered(9, false).agent.snapshot_parts();
    let sealed = Protection::Sealed(ProductKey::new(*support::PRODUCT_KEYS[0]));
    let agent = Agent::from_parts(
        &parts,
        config_for(UDI).with_protection(sealed),
        support::now(),
    )
    .unwrap();
    c.snapshot("sealed", &agent.snapshot(), &parts);
    c
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// The generated seeds of `target`: `real_*` and `golden_*`.
fn generated(target: &str) -> Vec<PathBuf> {
    files(&root().join("fuzz/corpus").join(target))
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("real_") || name.starts_with("golden_")
        })
        .collect()
}

/// Rewrites the generated seeds of the targets `only` names (all if `None`); the others'
/// stay byte for byte (a manager's signatures are random: a seed made again differs).
fn write(real: Corpus, golden_copies: Corpus, only: Option<&[&str]>) {
    let chosen = |target: &str| only.is_none_or(|names| names.contains(&target));
    for (target, _) in support::TARGETS {
        if !chosen(target) {
            continue;
        }
        let dir = root().join("fuzz/corpus").join(target);
        fs::create_dir_all(&dir).unwrap();
        for old in generated(target) {
            fs::remove_file(old).unwrap();
        }
    }
    for (prefix, corpus) in [("real", real), ("golden", golden_copies)] {
        for (target, seeds) in corpus.0 {
            if !chosen(target) {
                continue;
            }
            let dir = root().join("fuzz/corpus").join(target);
            for (name, bytes) in seeds {
                fs::write(dir.join(format!("{prefix}_{name}")), bytes).unwrap();
            }
        }
    }
}

fn read(target: &str, prefix: &str) -> Vec<(String, Vec<u8>)> {
    generated(target)
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, fs::read(&p).unwrap())
        })
        .collect()
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

#[test]
fn committed_seeds_are_real_and_go_deep() {
    // SMART_AGENT_WRITE_CORPUS=1 rewrites every target's seeds, =TARGET[,TARGET…] only those.
    if let Some(value) = std::env::var_os("SMART_AGENT_WRITE_CORPUS") {
        let value = value.to_string_lossy().into_owned();
        let names: Vec<&str> = value.split(',').map(str::trim).collect();
        let only = (value != "1").then_some(names.as_slice());
        if let Some(names) = only {
            for name in names {
                assert!(support::target(name).is_some(), "no target {name}");
            }
        }
        let mut golden_copies = Corpus::default();
        golden(&mut golden_copies);
        write(make(), golden_copies, only);
    }
    let count = |t: &str| generated(t).len();
    for (target, _) in support::TARGETS {
        assert!(
            count(target) >= 2,
            "{target}: too few seeds; run with SMART_AGENT_WRITE_CORPUS=1"
        );
    }
    for (name, bytes) in read("request_decoder", "real_") {
        decode_request(&bytes, 1 << 20).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    for (name, bytes) in read("response_decoder", "real_") {
        decode_response(&bytes, 1 << 20).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    for (target, nested) in [
        ("answer_identity", Nested::Identity),
        ("answer_grant", Nested::Grant),
        ("answer_export_key", Nested::ExportKey),
    ] {
        for (name, bytes) in read(target, "real_") {
            let expected = if bytes[0] & 1 == 1 {
                Some(Fate::Taken)
            } else {
                None
            };
            assert_eq!(answers::answer(nested, &bytes), expected, "{target}/{name}");
        }
    }
    // Every snapshot restores, under its own UDI, with the protection it was written with.
    for (name, bytes) in read("snapshot_decoder", "") {
        let parts = (0..support::PRODUCT_KEYS.len())
            .find_map(|k| snapshot::open(&bytes, &support::protection(&bytes, k)).ok())
            .unwrap_or_else(|| panic!("{name} does not open"));
        let udi = UDIS[usize::from(profile_of(&parts.licensing))];
        Agent::from_parts(&parts, config_for(udi), support::now())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    for (name, bytes) in read("snapshot_parts", "") {
        let len = u32::from_be_bytes(bytes[1..5].try_into().unwrap()) as usize;
        let restored = (snapshot::FIRST_VERSION..=snapshot::VERSION).any(|version| {
            let parts = snapshot::SnapshotParts {
                version,
                licensing: bytes[5..5 + len].to_vec(),
                communication: bytes[5 + len..].to_vec(),
            };
            Agent::from_parts(
                &parts,
                config_for(UDIS[usize::from(bytes[0])]),
                support::now(),
            )
            .is_ok()
        });
        assert!(restored, "{name} restores in no version");
    }
    for (name, bytes) in read("manager_state", "") {
        let state = support::manager_state::state_of(&bytes);
        Manager::load_state(&state, Box::new(DeterministicRandom::new(1)))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    type Parses = fn(&str) -> bool;
    let parses: [(&str, Parses); 9] = [
        ("udi", |t| {
            t.parse::<Udi>().is_ok()
                || Udi::parse_code_form(t).is_ok()
                || Udi::parse_request_form(t).is_ok()
        }),
        ("entitlement_tag", |t| Tag::parse(t).is_ok()),
        ("registration_token", |t| {
            smart_agent::Token::parse(t).is_ok()
        }),
        ("request_code", |t| RequestCode::parse(t).is_ok()),
        ("slr_code", |t| SlrCode::parse(t).is_ok()),
        ("plr_code", |t| PlrCode::parse(t).is_ok()),
        ("confirmation_code", |t| ConfirmationCode::parse(t).is_ok()),
        ("return_code", |t| ReturnCode::parse(t).is_ok()),
        ("export_key", |t| ExportKey::parse(t).is_ok()),
    ];
    for (target, parses) in parses {
        for (name, bytes) in read(target, "real_") {
            assert!(parses(text(&bytes)), "{target}/{name} does not parse");
        }
    }
}

/// The `golden_*` seeds are the committed fixtures byte for byte, and every fixture has its
/// copy: a fixture added (a new format's golden files) or a seed edited by hand shows here.
#[test]
fn golden_seeds_are_copies_of_the_fixtures() {
    let mut copies = Corpus::default();
    golden(&mut copies);
    let mut expected: Vec<(String, Vec<u8>)> = Vec::new();
    for (target, seeds) in copies.0 {
        for (name, bytes) in seeds {
            expected.push((format!("{target}/golden_{name}"), bytes));
        }
    }
    expected.sort();
    let mut committed: Vec<(String, Vec<u8>)> = Vec::new();
    for (target, _) in support::TARGETS {
        for (name, bytes) in read(target, "golden_") {
            committed.push((format!("{target}/{name}"), bytes));
        }
    }
    committed.sort();
    let names = |v: &[(String, Vec<u8>)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&committed),
        names(&expected),
        "golden seeds: SMART_AGENT_WRITE_CORPUS=TARGET cargo test --all-features --test fuzz_corpus"
    );
    for ((name, got), (_, want)) in committed.iter().zip(&expected) {
        assert!(got == want, "{name} differs from its fixture");
    }
}
