//! Harness commands for what the product itself does: declare tags, report usage, change
//! settings, diagnose the network, read the event log, let time pass, and look after the
//! manager the directory remembers. Every command that changes state says in one line what it
//! did.

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use smart_agent::{HostIdentity, Tag, TransportSettings};

use crate::record::{self, Manager};
use crate::session::{describe, Outcome, Session};
use crate::smart::report;
use crate::text::shown;
use crate::Run;

fn tag(text: &str) -> Result<Tag, Outcome> {
    Tag::parse(text).map_err(|e| Outcome::refused(e.to_string()))
}

/// `<what>\n` followed by what a command that talked to the manager printed.
fn said(what: String, then: Outcome) -> Outcome {
    Outcome {
        stdout: format!("{what}\n{}", then.stdout),
        ..then
    }
}

/// `declare <tag>`.
pub fn declare(text: String) -> Run {
    Box::new(move |s| match tag(&text) {
        Ok(tag) => {
            let now = s.now;
            s.agent().declare(tag.clone(), now);
            Outcome::ok(format!("Declared {tag} (Init until used).\n"))
        }
        Err(refused) => refused,
    })
}

/// `usage <tag> <count>`.
pub fn usage(text: String, count: u32) -> Run {
    Box::new(move |s| {
        let tag = match tag(&text) {
            Ok(tag) => tag,
            Err(refused) => return refused,
        };
        let now = s.now;
        match s.agent().set_usage(&tag, count, now) {
            Ok(()) => {
                s.exchange();
                let reported = if s.status().registration.state
                    == smart_agent::RegistrationState::Registered
                {
                    " (reported to the manager within 60 s)"
                } else {
                    ""
                };
                said(
                    format!("Usage of {tag} is {count}{reported}."),
                    report(&s.command_events()),
                )
            }
            Err(e) => Outcome::refused(e.to_string()),
        }
    })
}

/// How the transport settings read in messages.
fn transport_text(settings: &TransportSettings) -> String {
    match settings {
        TransportSettings::Direct => "direct (mode 0)".to_string(),
        TransportSettings::OnPrem(url) => format!("on-prem {} (mode 1)", shown(&url.url())),
        TransportSettings::Proxy(p) => format!(
            "proxy {}:{}{} (mode 2)",
            p.host(),
            p.port(),
            match p.credentials() {
                Some(c) => format!(" as {}", shown(&c.username)),
                None => String::new(),
            }
        ),
    }
}

fn privacy_text(on: bool) -> &'static str {
    if on {
        "on (the host name and IP address are not sent to the manager)"
    } else {
        "off (the host name and IP address are sent to the manager)"
    }
}

/// `transport` alone: the current settings.
pub fn transport_show() -> Run {
    Box::new(|s| {
        let agent = s.driver.agent();
        Outcome::ok(format!(
            "Transport: {}\nPrivacy: {}\n",
            transport_text(agent.transport_settings()),
            privacy_text(agent.privacy())
        ))
    })
}

/// `transport direct | onprem <url> | proxy <host> <port> [<user> <password>]`.
pub fn transport(settings: Result<TransportSettings, smart_agent::Error>) -> Run {
    Box::new(move |s| {
        let settings = match settings {
            Ok(settings) => settings,
            Err(e) => return Outcome::refused(e.to_string()),
        };
        let now = s.now;
        let text = transport_text(&settings);
        match s.agent().set_transport(settings, now) {
            Ok(()) => Outcome::ok(format!("Transport: {text}.\n")),
            Err(e) => Outcome::refused(e.to_string()),
        }
    })
}

/// `privacy on|off`.
pub fn privacy(on: bool) -> Run {
    Box::new(move |s| {
        let now = s.now;
        s.agent().set_privacy(on, now);
        Outcome::ok(format!("Privacy: {}.\n", privacy_text(on)))
    })
}

/// `subscriber on|off`.
pub fn subscriber(on: bool) -> Run {
    Box::new(move |s| {
        let now = s.now;
        s.agent().set_subscriber(on, now);
        Outcome::ok(if on {
            "Subscriber node: on (licensing operations are refused here; the publisher's licenses apply).\n"
        } else {
            "Subscriber node: off.\n"
        })
    })
}

/// `host <name> <ip>`.
pub fn host(name: String, ip: std::net::IpAddr) -> Run {
    Box::new(move |s| {
        let host = match HostIdentity::new(&name, ip) {
            Ok(host) => host,
            Err(e) => return Outcome::refused(e.to_string()),
        };
        let now = s.now;
        s.agent().set_host(host, now);
        s.exchange();
        said(
            format!("Host: {} {ip}.", shown(&name)),
            report(&s.command_events()),
        )
    })
}

/// `diagnose`: each step on stdout; exit 2 when one failed (the failure is printed once, in
/// its step's line).
pub fn diagnose() -> Run {
    Box::new(|s| {
        let settings = s.driver.agent().transport_settings().clone();
        let diagnosis = smart_agent::transport::diagnose(&settings, &s.transport_config);
        let text = crate::text::shown_lines(diagnosis.to_string().trim_end()) + "\n";
        Outcome {
            exit: if diagnosis.failure().is_some() { 2 } else { 0 },
            stdout: text,
            stderr: String::new(),
        }
    })
}

/// `events`.
pub fn events() -> Run {
    Box::new(|s| Outcome::ok(s.log().show(&s.style.zone)))
}

/// `tick`: what fell due, runs of identical failures as one line (as the log keeps them).
pub fn tick() -> Run {
    Box::new(|s| {
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
    })
}

/// `manager offline | online`.
pub fn manager_offline(offline: bool) -> Run {
    Box::new(move |s| {
        match &s.embedded {
        Some(embedded) => {
            embedded.offline.store(offline, Ordering::SeqCst);
            Outcome::ok(if offline {
                "The embedded manager is offline: requests fail like a refused connection.\n"
            } else {
                "The embedded manager is online.\n"
            })
        }
        None => Outcome::refused(
            "manager offline|online needs the embedded manager (this directory uses a manager over HTTPS)",
        ),
    }
    })
}

/// `manager`.
pub fn manager_show() -> Run {
    Box::new(|s| Outcome::ok(manager_text(s)))
}

/// `manager switch embedded | remote`.
pub fn manager_switch(to_remote: bool) -> Run {
    Box::new(move |s| switch(s, to_remote))
}

/// `manager trust <key.pem>`.
pub fn manager_trust(key: PathBuf) -> Run {
    Box::new(move |s| trust(s, &key))
}

/// `restore-backup <dir>`.
pub fn restore_backup() -> Run {
    Box::new(restored)
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
fn switch(s: &mut Session, to_remote: bool) -> Outcome {
    let remote = matches!(s.record.manager, Manager::Remote(_));
    if to_remote != remote {
        return Outcome::refused(if to_remote {
            "manager switch remote needs --manager-url, --ca and --manager-key"
        } else {
            "manager switch embedded takes no --manager-* options"
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
