//! What an invocation prints and how it exits.

use crate::text::shown_lines;

/// Why an invocation cannot use the state directory (exit 3): `<path>: <error>`.
pub struct Unusable(pub String);

/// What an invocation prints and how it exits (SPEC-exact messages on stderr).
pub struct Outcome {
    pub exit: u8,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    pub fn ok(stdout: impl Into<String>) -> Outcome {
        Outcome {
            exit: 0,
            stdout: stdout.into(),
            stderr: String::new(),
        }
    }

    /// Refused before sending: exit 1, nothing written.
    pub fn refused(message: impl AsRef<str>) -> Outcome {
        Outcome {
            exit: 1,
            stdout: String::new(),
            stderr: shown_lines(message.as_ref()) + "\n",
        }
    }

    /// The transport settings cannot be applied: the 500 of seed 000:1531, then why.
    pub fn apply_failed(why: impl std::fmt::Display) -> Outcome {
        Outcome::refused(format!(
            "{}\n  ({why})",
            smart_agent::Error::TransportApplyFailed
        ))
    }

    /// Accepted, but the manager or the network said no, or a retry is pending: exit 2.
    pub fn declined(stdout: impl Into<String>, message: impl AsRef<str>) -> Outcome {
        Outcome {
            exit: 2,
            stdout: stdout.into(),
            stderr: shown_lines(message.as_ref()) + "\n",
        }
    }

    /// The state directory is unusable: exit 3, nothing written.
    pub fn unusable(u: Unusable) -> Outcome {
        Outcome {
            exit: 3,
            stdout: String::new(),
            stderr: shown_lines(&u.0) + "\n",
        }
    }

    /// Exit 3 for `<path>: <error>`.
    pub fn unusable_at(path: &std::path::Path, e: impl std::fmt::Display) -> Outcome {
        Outcome::unusable(Unusable(format!("{}: {e}", path.display())))
    }
}
