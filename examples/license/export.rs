//! Export authorization keys (SPEC §7, 003:825-827): `license smart export request local
//! <feature>`, `license smart export return local <feature>`, `license smart export cancel`.
//!
//! A request or return is sent at once; what the manager answered is printed as its event
//! ("Export authorization key granted for …"). A refusal for good is exit 2 with the manager's
//! message; a transient failure is exit 2 with SPEC §9's message, and the agent retries with
//! the policy backoff until it succeeds or `export cancel` stops it.

use smart_agent::{EventKind, ExportKeyState};

use crate::session::{Outcome, Session};
use crate::show::event_text;
use crate::Run;

/// The command's events, then the governor's alarms a key that came or went caused; exit 2
/// with the first failure's message.
fn report(s: &mut Session) -> Outcome {
    let events = s.command_events();
    let mut stdout: String = events
        .iter()
        .map(|e| event_text(&e.kind, e.alarm().map(|a| a.name())) + "\n")
        .collect();
    for alarm in crate::governor::sync(s) {
        stdout.push_str(&format!("{alarm}\n"));
    }
    let failure = events.iter().find_map(|e| match &e.kind {
        EventKind::ExportKeyRefused { message, .. } => Some(message.clone()),
        EventKind::ExportKeyFailed {
            failure,
            next_attempt,
            ..
        } => Some(match next_attempt {
            Some(at) => format!(
                "{}\n  (retried at {} until it succeeds or `license smart export cancel`)",
                failure.message(),
                s.style.zone.date(*at)
            ),
            None => failure.message(),
        }),
        _ => None,
    });
    match failure {
        Some(message) => Outcome::declined(stdout, message),
        None => Outcome::ok(stdout),
    }
}

fn state_of(s: &Session, feature: &str) -> Option<ExportKeyState> {
    s.driver
        .agent()
        .export_key_status()
        .into_iter()
        .find(|k| k.feature == feature)
        .map(|k| k.state)
}

/// `license smart export request local <feature>`.
pub fn request(feature: String) -> Run {
    Box::new(move |s| {
        let before = state_of(s, &feature);
        let now = s.now;
        if let Err(e) = s.agent().export_request(&feature, now) {
            return Outcome::refused(e.to_string());
        }
        match before {
            Some(ExportKeyState::Held | ExportKeyState::Untrusted | ExportKeyState::Returning) => {
                Outcome::ok(format!(
                    "An export authorization key for {feature} is held already.\n"
                ))
            }
            Some(ExportKeyState::Requested) => Outcome::ok(format!(
                "An export authorization key for {feature} was asked for already; it is retried until it succeeds or `license smart export cancel`.\n"
            )),
            None => {
                s.exchange();
                report(s)
            }
        }
    })
}

/// `license smart export return local <feature>`.
pub fn give_back(feature: String) -> Run {
    Box::new(move |s| {
        let before = state_of(s, &feature);
        let now = s.now;
        if let Err(e) = s.agent().export_return(&feature, now) {
            return Outcome::refused(e.to_string());
        }
        if before == Some(ExportKeyState::Returning) {
            return Outcome::ok(format!(
                "The export authorization key for {feature} is being returned already; it is retried until it succeeds or `license smart export cancel`.\n"
            ));
        }
        s.exchange();
        report(s)
    })
}

/// `license smart export cancel`.
pub fn cancel() -> Run {
    Box::new(|s| {
        let pending: Vec<String> = s
            .driver
            .agent()
            .export_key_status()
            .into_iter()
            .filter(|k| {
                matches!(
                    k.state,
                    ExportKeyState::Requested | ExportKeyState::Returning
                )
            })
            .map(|k| k.feature)
            .collect();
        let now = s.now;
        if let Err(e) = s.agent().export_cancel(now) {
            return Outcome::refused(e.to_string());
        }
        Outcome::ok(if pending.is_empty() {
            "No export authorization key request or return is pending: nothing to cancel.\n"
                .to_string()
        } else {
            format!(
                "Cancelled the automatic retry for {}.\n",
                pending.join(", ")
            )
        })
    })
}
