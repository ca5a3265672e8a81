//! Harness commands for what the product itself does: declare tags, report usage, change
//! settings, diagnose the network, read the event log, let time pass, and switch the embedded
//! manager off and on.

use std::sync::atomic::Ordering;

use smart_agent::{HostIdentity, Tag, TransportSettings};

use crate::session::{Outcome, Session};
use crate::show::event_text;
use crate::smart::report;
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

/// `<date>  <message>  [ALARM]` for one stored log line.
fn show_log_line(line: &str, s: &Session) -> String {
    let mut parts = line.splitn(3, '\t');
    let (at, message, alarm) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let date = chrono::DateTime::parse_from_rfc3339(at)
        .map(|t| s.style.zone.date(t.with_timezone(&chrono::Utc)))
        .unwrap_or_else(|_| at.to_string());
    let alarm = Some(alarm).filter(|a| !a.is_empty());
    format!("{date}  {}\n", event_text(&message, alarm))
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
        ["events"] => Box::new(|s| match s.log() {
            Ok(lines) => Outcome::ok(
                lines
                    .iter()
                    .map(|l| show_log_line(l, s))
                    .collect::<String>(),
            ),
            Err(failed) => failed,
        }),
        ["tick"] => Box::new(|s| {
            let text: String = s
                .catch_up_events()
                .iter()
                .map(|e| s.style.event_line(e) + "\n")
                .collect();
            Outcome::ok(text)
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
        ["manager", ..] => return Some(Err(USAGE[9].to_string())),
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
