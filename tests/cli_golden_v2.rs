//! The golden CLI state directories of CLI state version 2 (`tests/fixtures/cli-v2/`, written
//! once by the binaries of commit 02490f9: see its README) are opened and used by today's
//! binaries: an online directory holding an export key renews and returns the key against its
//! embedded manager; an air-gapped one with an SLR installed shows it and returns it.
#![cfg(feature = "manager")]

mod cli;

use std::fs;
use std::path::{Path, PathBuf};

use cli::*;

#[rustfmt::skip]
const FIXTURES: &[(&str, &str)] = &[
    ("air-gapped/agent.snapshot", "c5bfb1b7a26fccb50ad1c9d87be8a70e9b98b60c6746172f9631743318aadd49"),
    ("air-gapped/events.log", "b2545d6eddbdd44917c21eb49c62342245aab2352bb16dc34b169fbc8d6ce437"),
    ("air-gapped/lock", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    ("air-gapped/manager/ca-key.pem", "5d0ba496a52e8e9bfa4d73a6be44876523ed94a22451e26f6b7d69b2539a7234"),
    ("air-gapped/manager/ca.pem", "e180d59f9781ef61930372004cf4712bc3b7665052a16b77668c19e8d0f4f98c"),
    ("air-gapped/manager/clock", "fdad7f978a5fb06585b094decfb7fd0aff7f655582a98a72ab9318a99448955c"),
    ("air-gapped/manager/lock", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    ("air-gapped/manager/manager-key.pk8", "3cc99234bbb7bbe929fa6cc34eb65fc1280ac665d128dd82f2fa8bdcb5df775a"),
    ("air-gapped/manager/manager-key.pub.pem", "f6b308b491305149fd13e426986cf0ae282ffa4db99e1bf201e2c27fbd60ede9"),
    ("air-gapped/manager/state", "e35f5b7fd383877baa690498ba9a3d94d78cc4f62f551e02800fdd8243874c9f"),
    ("air-gapped/settings", "d107eb315b7754c8145b0dc261e8f140555814873eb175bc3ebf3951c7be6f2c"),
    ("generate.output.txt", "c21f96d66f2066c5a89b02bb489e6e7750bfa5ab727586541a26fd3cd32a128f"),
    ("generate.sh.txt", "260a260016cb078ab9c2283d1f9ed603d042f3cb338daf6b8763877715a5c211"),
    ("online/agent.snapshot", "fc1c027280261cf7511206c44f0ecc6b676b43e33312cb476238e28fc6fa6e07"),
    ("online/events.log", "b043917e84accce17038764d80ff0380b41e187f0c8354a05bd2cbd9330939e8"),
    ("online/lock", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    ("online/manager/ca-key.pem", "2f5c3ef5b71fda56998312313cb5ff95d6679a842c82da23ff0c1d37efa27bc9"),
    ("online/manager/ca.pem", "ffc4e1a8799098add97a3a0f8bd39e50ec06f3dcc021eaed79a09cf4fa3b149e"),
    ("online/manager/clock", "6e6f0a83b708334d71cf5fc06dd9608a99b090de797c0d0e805a9c785f2a2546"),
    ("online/manager/lock", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    ("online/manager/manager-key.pk8", "a0ce4768c32049ef94df01770d79c6f0a0b55600bc78a122dc681ca92fed62dc"),
    ("online/manager/manager-key.pub.pem", "f8baddb3b49820b3e98720c025f6d930a9f7c9d83c0322f1cff23eb8869521c0"),
    ("online/manager/state", "f03780a11b5b8eab9926a318d7f2edfd2a18a8201d66c4cbe7978821330a6805"),
    ("online/settings", "7f4eacc12a3f2a93f2a22bfd14d47fc99aca02d448ac1e4fc845ce0feeedae36"),
];

const FEATURE: &str = "CUCM_Export_Restricted_Authorization_Key";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cli-v2")
}

fn sha256_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn files(dir: &Path, under: &Path, out: &mut Vec<String>) {
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            files(&entry.path(), under, out);
        } else {
            let rel = entry
                .path()
                .strip_prefix(under)
                .unwrap()
                .display()
                .to_string();
            out.push(rel);
        }
    }
}

/// A scratch copy of one golden directory, as the CLI's state directory.
fn golden(name: &str) -> Cli {
    let cli = Cli::new();
    copy_tree(&fixtures().join(name), cli.dir());
    cli
}

fn assert_lines(text: &str, lines: &[&str]) {
    for line in lines {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
}

#[test]
fn every_cli_v2_fixture_file_is_present_and_unchanged() {
    let mut found = Vec::new();
    files(&fixtures(), &fixtures(), &mut found);
    found.retain(|f| f != "README.md");
    found.sort();
    let listed: Vec<String> = FIXTURES.iter().map(|(f, _)| f.to_string()).collect();
    assert_eq!(
        found, listed,
        "the cli-v2 fixtures are never added to or removed"
    );
    for (name, sha256) in FIXTURES {
        let bytes = fs::read(fixtures().join(name)).unwrap();
        assert_eq!(
            sha256_hex(&bytes),
            *sha256,
            "{name} changed: golden files are never regenerated or edited"
        );
    }
}

#[test]
fn the_online_v2_directory_keeps_its_registration_and_key_then_renews_and_returns_it() {
    let cli = golden("online");
    let now = "2026-10-01T09:00:00Z";
    let all = cli
        .license(now, &["show", "license", "all"])
        .ok()
        .to_string();
    assert_lines(
        &all,
        &[
            "  Status: REGISTERED\n",
            "  Export-Controlled Functionality: Not Allowed\n",
            "  Status: AUTHORIZED on Oct 1 09:00:00 2026 UTC\n",
            "  Next Communication Attempt: Oct 31 09:00:00 2026 UTC\n",
            "  Communication Deadline: Dec 30 09:00:00 2026 UTC\n",
            "CUCM_Export_Restricted_Authorization_Key:\n  Status: AUTHORIZED\n",
        ],
    );
    // The record is still version 2 and names the directory's UDI and manager.
    assert_eq!(
        fs::read_to_string(cli.path("settings")).unwrap(),
        "smart-agent CLI state 2\nudi PID:UCM,SN:CLIV2ON1,UUID:3c2b1a0f9e8d4c7b6a5f4e3d2c1b0a01\nmanager embedded\n"
    );
    // A month later the renewal is due and the embedded manager answers it.
    let later = "2026-10-31T09:00:00Z";
    let status = cli
        .license(later, &["show", "license", "status"])
        .ok()
        .to_string();
    assert_lines(
        &status,
        &["  Status: AUTHORIZED on Oct 31 09:00:00 2026 UTC\n"],
    );
    cli.license(
        later,
        &["license", "smart", "export", "return", "local", FEATURE],
    )
    .expect(
        0,
        &format!("Export authorization key returned for {FEATURE}\n"),
        "",
    );
    let keys = cli.manager(&["export-key", "list"]).ok().to_string();
    assert!(keys.contains(FEATURE), "{keys}");
}

#[test]
fn the_air_gapped_v2_directory_keeps_its_reservation_and_returns_it_to_its_manager() {
    let cli = golden("air-gapped");
    let now = "2026-10-20T09:00:00Z";
    let shown = cli
        .license(now, &["show", "license", "reservation"])
        .ok()
        .to_string();
    assert_lines(
        &shown,
        &[
            "      Reservation status: SPECIFIC INSTALLED on Oct 2 09:00:00 2026 UTC\n",
            "    Total reserved count: 4\n",
        ],
    );
    let status = cli
        .license(now, &["show", "license", "status"])
        .ok()
        .to_string();
    assert_lines(
        &status,
        &["  Status: REGISTERED - SPECIFIC LICENSE RESERVATION\n"],
    );
    let before = cli.manager(&["licenses"]).ok().to_string();
    assert!(before.contains("\t4 (4 Reserved)\t"), "{before}");
    let returned = cli
        .license(now, &["license", "smart", "reservation", "return"])
        .ok()
        .to_string();
    let code = returned.lines().last().unwrap().trim().to_string();
    cli.manager(&["reservation", "return", &code]).ok();
    let after = cli.manager(&["licenses"]).ok().to_string();
    assert!(
        after.contains("UC Manager Enhanced License\t10\t0\t-\t+ 10"),
        "{after}"
    );
}
