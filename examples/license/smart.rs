//! `license smart register idtoken <token> [force]`, `license smart deregister`,
//! `license smart renew ID | auth` (002:46; 003 "Additional Tasks").

use smart_agent::{Event, EventKind, Force};

use crate::session::{Outcome, Session};
use crate::show::event_text;
use crate::Run;

pub const USAGE: &[&str] = &[
    "license smart register idtoken <token> [force]  — register with a token (force: again, maybe elsewhere)",
    "license smart deregister  — give the licenses back and return to evaluation",
    "license smart renew ID | auth  — renew the identity or the authorization now",
];

/// What a command that talks to the manager prints: its events on stdout; exit 2 with the
/// product message of the first failure (SPEC §3, §9) on stderr if there was one.
pub fn report(events: &[Event]) -> Outcome {
    let stdout: String = events
        .iter()
        .map(|e| event_text(&e.kind, e.alarm().map(|a| a.name())) + "\n")
        .collect();
    let failure = events.iter().find_map(|e| match &e.kind {
        EventKind::RegistrationFailed { failure }
        | EventKind::RegistrationRetrying { failure, .. }
        | EventKind::IdentityRenewalFailed { failure, .. }
        | EventKind::AuthorizationFailed { failure, .. } => Some(failure.message()),
        EventKind::DeregistrationFailed { .. } => Some(e.kind.to_string()),
        _ => None,
    });
    match failure {
        Some(message) => Outcome::declined(stdout, message),
        None => Outcome::ok(stdout),
    }
}

/// Runs an agent call at the session's time, then the exchange it queued.
fn talk(
    s: &mut Session,
    call: impl FnOnce(
        &mut smart_agent::Agent,
        chrono::DateTime<chrono::Utc>,
    ) -> Result<(), smart_agent::Error>,
) -> Outcome {
    let now = s.now;
    if let Err(e) = call(s.agent(), now) {
        return Outcome::refused(e.to_string());
    }
    s.exchange();
    report(&s.command_events())
}

pub fn parse(words: &[String]) -> Option<Result<Run, String>> {
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    let rest = w.strip_prefix(&["license", "smart"])?;
    let run: Run = match rest {
        ["register", "idtoken", token] => {
            let token = token.to_string();
            Box::new(move |s| talk(s, |a, now| a.register(&token, Force::No, now)))
        }
        ["register", "idtoken", token, "force"] => {
            let token = token.to_string();
            Box::new(move |s| talk(s, |a, now| a.register(&token, Force::Yes, now)))
        }
        ["deregister"] => Box::new(|s| talk(s, |a, now| a.deregister(now))),
        ["renew", what] if what.eq_ignore_ascii_case("id") => {
            Box::new(|s| talk(s, |a, now| a.renew_id(now)))
        }
        ["renew", what] if what.eq_ignore_ascii_case("auth") => {
            Box::new(|s| talk(s, |a, now| a.renew_auth(now)))
        }
        ["register", ..] => return Some(Err(USAGE[0].to_string())),
        ["renew", ..] => return Some(Err(USAGE[2].to_string())),
        _ => return None,
    };
    Some(Ok(run))
}
