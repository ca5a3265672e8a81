//! Harness commands for what the product itself does: declare tags, report usage, change
//! settings, diagnose the network, read the event log, let time pass, and switch the embedded
//! manager off and on.

use std::sync::atomic::Ordering;

use smart_agent::{HostIdentity, Tag, TransportSettings};

use crate::record::{self, Manager};
use crate::session::{describe, Outcome, Session};
use crate::smart::report;
use crate::text::shown;
use crate::Run;

pub const USAGE: &[&str] = &[
    "declare <tag>  — the product may use this entitlement (shows Init until used)",
    "usage <tag> <count>  — the product's count in use (reported after 60 s)",
    "transport direct | onprem <url> | proxy <host> <port> [<user> <password>]  — how to reach the manager (only while unregistered)",
    "privacy on|off  — do not share the host name and IP address with the manager",
    "host <name> <ip>  — the product's host name and address (a change renews the identity)",
    "subscriber on|off  — a subscriber node: licensing operations are refused",
    "diagnose  — check URL, DNS, TCP or proxy, TLS and the manager, step by step",
    "events  — the event and alarm log",
    "tick  — just let time pass: process what fell due up to --now",
    "manager offline|online  — the embedded manager answers like a refused connection, or again",
    "manager  — the manager this state directory remembers",
    "manager switch embedded | remote  — point the directory at another manager (remote: with the --manager-* options); its registration will not be trusted there",
    "manager trust <key.pem>  — also trust this signing key of the remembered remote manager (keys rotate)",
    "restore-backup <dir>  — make the new --state directory from a backup of another system's, under a new UDI (SPEC §12)",
];

fn on_off(word: &str) -> Option<bool> {
    match word {
        "on" => Some(true),
        "off" => Some(false),
        _ => None,
    }
}

fn tag(text: &str) -> Result<Tag, Outcome> {
    Tag::parse(text).map_err(|e| Outcome::refused(e.to_string()))
}

pub fn parse(words: &[String]) -> Option<Result<Run, String>> {
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    let run: Run = match w.as_slice() {
        ["declare", t] => {
            let t = t.to_string();
            Box::new(move |s| match tag(&t) {
                Ok(tag) => {
                    let now = s.now;
                    s.agent().declare(tag, now);
                    Outcome::ok("")
                }
                Err(refused) => refused,
            })
        }
        ["usage", t, n] => {
            let Ok(count) = n.parse::<u32>() else {
                return Some(Err(format!(
                    "{} (count: a whole number, not {n})",
                    USAGE[1]
                )));
            };
            let t = t.to_string();
            Box::new(move |s| {
                let tag = match tag(&t) {
                    Ok(tag) => tag,
                    Err(refused) => return refused,
                };
                let now = s.now;
                match s.agent().set_usage(&tag, count, now) {
                    Ok(()) => {
                        s.exchange();
                        report(&s.command_events())
                    }
                    Err(e) => Outcome::refused(e.to_string()),
                }
            })
        }
        ["transport", rest @ ..] => {
            let settings = match rest {
                ["direct"] => Ok(TransportSettings::Direct),
                ["onprem", url] => TransportSettings::on_prem(url),
                ["proxy", host, port] => TransportSettings::proxy(host, port, None),
                ["proxy", host, port, user, password] => {
                    TransportSettings::proxy(host, port, Some((user, password)))
                }
                _ => return Some(Err(USAGE[2].to_string())),
            };
            Box::new(move |s| {
                let settings = match settings {
                    Ok(settings) => settings,
                    Err(e) => return Outcome::refused(e.to_string()),
                };
                let now = s.now;
                match s.agent().set_transport(settings, now) {
                    Ok(()) => Outcome::ok(""),
                    Err(e) => Outcome::refused(e.to_string()),
                }
            })
        }
        ["privacy", v] => {
            let Some(on) = on_off(v) else {
                return Some(Err(USAGE[3].to_string()));
            };
            Box::new(move |s| {
                let now = s.now;
                s.agent().set_privacy(on, now);
                Outcome::ok("")
            })
        }
        ["subscriber", v] => {
            let Some(on) = on_off(v) else {
                return Some(Err(USAGE[5].to_string()));
            };
            Box::new(move |s| {
                let now = s.now;
                s.agent().set_subscriber(on, now);
                Outcome::ok("")
            })
        }
        ["host", name, ip] => {
            let Ok(ip) = ip.parse() else {
                return Some(Err(format!(
                    "{} (ip: an IPv4 or IPv6 address, not {ip})",
                    USAGE[4]
                )));
            };
            let name = name.to_string();
            Box::new(move |s| {
                let host = match HostIdentity::new(&name, ip) {
                    Ok(host) => host,
                    Err(e) => return Outcome::refused(e.to_string()),
                };
                let now = s.now;
                s.agent().set_host(host, now);
                s.exchange();
                report(&s.command_events())
            })
        }
        ["diagnose"] => Box::new(|s| {
            let settings = s.driver.agent().transport_settings().clone();
            let diagnosis = smart_agent::transport::diagnose(&settings, &s.transport_config);
            let text = diagnosis.to_string();
            let text = if text.ends_with('\n') {
                text
            } else {
                text + "\n"
            };
            match diagnosis.failure() {
                None => Outcome::ok(text),
                Some((step, why)) => Outcome::declined(text, format!("{step}: {why}")),
            }
        }),
        ["events"] => Box::new(|s| Outcome::ok(s.log().show(&s.style.zone))),
        ["tick"] => Box::new(|s| {
            // What fell due, runs of identical failures as one line (as the log keeps them).
            let mut log = crate::eventlog::Log::default();
            for l in s.catch_up_logged() {
                let e = &l.event;
                log.push(
                    e.at,
                    &e.kind.to_string(),
                    e.alarm().map(|a| a.name()),
                    l.count,
                );
            }
            Outcome::ok(log.show(&s.style.zone))
        }),
        ["manager", state @ ("offline" | "online")] => {
            let offline = *state == "offline";
            Box::new(move |s| match &s.embedded {
                Some(embedded) => {
                    embedded.offline.store(offline, Ordering::SeqCst);
                    Outcome::ok("")
                }
                None => Outcome::refused(
                    "manager offline|online needs the embedded manager (no --manager-url)",
                ),
            })
        }
        ["manager"] => Box::new(|s| Outcome::ok(manager_text(s))),
        ["manager", "switch", to @ ("embedded" | "remote")] => {
            let to = to.to_string();
            Box::new(move |s| switch(s, &to))
        }
        ["manager", "switch", ..] => return Some(Err(USAGE[11].to_string())),
        ["manager", "trust", key] => {
            let key = std::path::PathBuf::from(key);
            Box::new(move |s| trust(s, &key))
        }
        ["manager", "trust", ..] => return Some(Err(USAGE[12].to_string())),
        ["manager", ..] => return Some(Err(USAGE[9].to_string())),
        ["restore-backup", _] => Box::new(restored),
        ["restore-backup", ..] => return Some(Err(USAGE[13].to_string())),
        [first, ..] if USAGE.iter().any(|u| u.split(' ').next() == Some(first)) => {
            let usage = USAGE
                .iter()
                .filter(|u| u.split(' ').next() == Some(first))
                .copied()
                .collect::<Vec<_>>()
                .join(" | ");
            return Some(Err(usage));
        }
        _ => return None,
    };
    Some(Ok(run))
}

/// What `manager` prints: the remembered manager.
fn manager_text(s: &Session) -> String {
    match &s.record.manager {
        Manager::Embedded => {
            let offline = s
                .embedded
                .as_ref()
                .is_some_and(|e| e.offline.load(Ordering::SeqCst));
            format!(
                "Manager: embedded ({}){}\n",
                s.path().join("manager").display(),
                if offline { ", offline" } else { "" }
            )
        }
        Manager::Remote(r) => {
            let mut out = format!(
                "Manager: {}\nEnvironment: {}\n",
                shown(&r.url),
                r.environment
            );
            out.push_str(&format!("CA certificates: {}\n", r.cas.len()));
            for anchor in &r.anchors {
                out.push_str(&format!("Trust anchor: {}\n", fingerprint(anchor)));
            }
            out
        }
    }
}

/// The first 16 hex digits of the SHA-256 of a key's SPKI.
fn fingerprint(der: &[u8]) -> String {
    crate::journal::hash(der)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `manager switch embedded | remote`: the session was opened on the manager the options
/// name; say what that means for the registration.
fn switch(s: &mut Session, to: &str) -> Outcome {
    let remote = matches!(s.record.manager, Manager::Remote(_));
    if (to == "remote") != remote {
        return Outcome::refused(match to {
            "remote" => "manager switch remote needs --manager-url, --ca and --manager-key",
            _ => "manager switch embedded takes no --manager-* options",
        });
    }
    let new = describe(&s.record.manager);
    let old = match s.remembered_manager() {
        Some(old) if *old == s.record.manager => {
            return Outcome::ok(format!("The state directory already uses {new}.\n"))
        }
        Some(old) => describe(old),
        None => "no manager".to_string(),
    };
    let mut out = format!("Switched from {old} to {new}.\n");
    let dormant = s
        .catch_up_events()
        .iter()
        .any(|e| matches!(e.kind, smart_agent::EventKind::IdentityDropped { .. }));
    if dormant {
        out.push_str(
            "Warning: the registration was made with the other manager, which signed it; this one does not trust it. It stays in the snapshot, unused, and comes back if you switch back; register with a token of this manager to replace it.\n",
        );
    }
    Outcome::ok(out)
}

/// `manager trust KEY.pem`: adds a signing key of the remembered remote manager.
fn trust(s: &mut Session, key: &std::path::Path) -> Outcome {
    let Manager::Remote(remote) = &mut s.record.manager else {
        return Outcome::refused(
            "manager trust is for a remote manager: the embedded manager's own keys are trusted already",
        );
    };
    let text = match std::fs::read_to_string(key) {
        Ok(t) => t,
        Err(e) => return Outcome::refused(format!("{}: {e}", key.display())),
    };
    let der = match record::pem_blocks(&text, "PUBLIC KEY") {
        Ok(mut blocks) => blocks.remove(0),
        Err(e) => return Outcome::refused(format!("{}: {e}", key.display())),
    };
    if let Err(e) = smart_agent::ManagerPublicKey::from_spki_der(&der) {
        return Outcome::refused(format!("{}: {e}", key.display()));
    }
    if remote.anchors.contains(&der) {
        return Outcome::ok(format!(
            "The key {} is trusted already.\n",
            fingerprint(&der)
        ));
    }
    remote.anchors.push(der.clone());
    Outcome::ok(format!(
        "Trusting the key {} of {} too ({} trust anchors).\n",
        fingerprint(&der),
        shown(&remote.url),
        remote.anchors.len()
    ))
}

/// `restore-backup DIR`: the session was made from the backup; say what it is now.
fn restored(s: &mut Session) -> Outcome {
    let status = s.status();
    Outcome::ok(format!(
        "Restored a backup as a new instance: UDI {}. Its registration stays with the old system's UDI, unused; its evaluation is kept ({}). Register this instance with a token.\n",
        status.udi,
        if status.evaluation.expired_at.is_some() {
            "expired".to_string()
        } else {
            let secs = status.evaluation.remaining.num_seconds().max(0);
            format!("{} days left", secs / 86_400)
        }
    ))
}
