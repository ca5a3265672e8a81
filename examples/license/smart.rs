//! `license smart register idtoken <token> [force]`, `license smart deregister`,
//! `license smart renew ID | auth` (002:46; 003 "Additional Tasks").

use smart_agent::{Event, EventKind, FailureKind, Force};

use crate::session::{Outcome, Session};
use crate::show::event_text;
use crate::Run;

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
        Some(message) => {
            let why = events.iter().find_map(|e| why(&e.kind));
            match why {
                Some(why) => Outcome::declined(stdout, format!("{message}\n  ({why})")),
                None => Outcome::declined(stdout, message),
            }
        }
        None => Outcome::ok(stdout),
    }
}

/// Why a failure happened, when the product's message cannot say it and the user can act on
/// it: the manager signs for another environment than the agent accepts.
fn why(kind: &EventKind) -> Option<String> {
    use smart_agent::crypto::SignatureError;
    use smart_agent::wire::AnswerError;
    let failure = match kind {
        EventKind::RegistrationFailed { failure }
        | EventKind::RegistrationRetrying { failure, .. }
        | EventKind::IdentityRenewalFailed { failure, .. }
        | EventKind::AuthorizationFailed { failure, .. } => failure,
        _ => return None,
    };
    match &failure.kind {
        FailureKind::Rejected(AnswerError::Signature(SignatureError::WrongEnvironment {
            signed,
            expected,
        })) => Some(format!(
            "the manager signs for the {signed} environment and this directory's agent accepts {expected} signatures only: see --manager-env; `license manager switch remote … --manager-env {signed}` changes it"
        )),
        _ => None,
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

/// `license smart register idtoken <token> [force]`.
pub fn register(token: String, force: bool) -> Run {
    let force = if force { Force::Yes } else { Force::No };
    Box::new(move |s| talk(s, |a, now| a.register(&token, force, now)))
}

/// `license smart deregister`.
pub fn deregister() -> Run {
    Box::new(|s| talk(s, |a, now| a.deregister(now)))
}

/// `license smart renew ID`.
pub fn renew_id() -> Run {
    Box::new(|s| talk(s, |a, now| a.renew_id(now)))
}

/// `license smart renew auth`.
pub fn renew_auth() -> Run {
    Box::new(|s| talk(s, |a, now| a.renew_auth(now)))
}
