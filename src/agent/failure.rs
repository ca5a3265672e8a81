//! Communication failures and their product messages (SPEC §9 table, seed 000:1541-1576).

use std::fmt;

use serde::Serialize;

pub use super::operation::Operation;
use crate::error::TOKEN_MESSAGE;
use crate::wire::{AnswerError, SendError};

/// What went wrong, by the rows of the SPEC §9 table.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// The transport could not deliver the request or bring the answer.
    Send(SendError),
    /// The answer arrived but the agent rejected it; the error names the failed check.
    Rejected(AnswerError),
    /// The manager answered `FAILED` with this code and message.
    Manager {
        /// The manager's code.
        code: String,
        /// The manager's message.
        message: String,
    },
    /// The manager refused the registration token (permanent).
    TokenRefused,
    /// The manager answered `VERSION_TOO_HIGH`.
    VersionTooHigh,
}

/// A failed exchange: the operation and the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// What was attempted.
    pub operation: Operation,
    /// Why it failed.
    pub kind: FailureKind,
}

const PREFIX: &str = "The requested operation was not successful due to ";

impl Failure {
    /// The §9 phrase naming the failure, as used inside the deregistration event:
    /// "a communication timeout", "communication send error", "invalid trust chain pool",
    /// "an unknown error", or the token message.
    pub fn phrase(&self) -> &'static str {
        match &self.kind {
            FailureKind::Send(SendError::Timeout) => "a communication timeout",
            FailureKind::Send(SendError::UnknownCa) => "invalid trust chain pool",
            FailureKind::Send(SendError::Send { .. } | SendError::ProxyAuthentication) => {
                "communication send error"
            }
            FailureKind::TokenRefused => TOKEN_MESSAGE,
            FailureKind::Send(_)
            | FailureKind::Rejected(_)
            | FailureKind::Manager { .. }
            | FailureKind::VersionTooHigh => "an unknown error",
        }
    }

    /// The exact product message (seed 000:1541-1576).
    pub fn message(&self) -> String {
        if self.kind == FailureKind::TokenRefused {
            return TOKEN_MESSAGE.to_string();
        }
        let stop = matches!(self.kind, FailureKind::Send(SendError::Timeout))
            && self.operation.spec().timeout_full_stop;
        format!("{PREFIX}{}{}", self.phrase(), if stop { "." } else { "" })
    }

    /// The detail the §9 table adds: for a transport failure its
    /// [`SendFailure`](crate::wire::SendFailure) phrase ("Unknown CA", "proxy authentication
    /// required", …; see [`SendError::detail`]), the rejected check, the manager's own
    /// message, or the protocol-version note.
    pub fn detail(&self) -> Option<String> {
        match &self.kind {
            FailureKind::Send(e) => e.detail().map(str::to_string),
            FailureKind::TokenRefused => None,
            FailureKind::Rejected(e) => Some(e.to_string()),
            FailureKind::Manager { code, .. } if code == crate::wire::codes::KEY_RETIRED => {
                Some("this registration was replaced or removed on the manager".into())
            }
            FailureKind::Manager { code, message } => Some(format!("{code}: {message}")),
            FailureKind::VersionTooHigh => {
                Some("protocol version not supported by the manager".into())
            }
        }
    }

    /// Whether the agent tries again (everything but a refused token).
    pub fn is_retried(&self) -> bool {
        self.kind != FailureKind::TokenRefused
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())?;
        if let Some(detail) = self.detail() {
            write!(f, " ({detail})")?;
        }
        Ok(())
    }
}

impl Serialize for Failure {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Failure", 3)?;
        st.serialize_field("operation", &self.operation)?;
        st.serialize_field("message", &self.message())?;
        st.serialize_field("detail", &self.detail())?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(operation: Operation, kind: FailureKind) -> Failure {
        Failure { operation, kind }
    }

    #[test]
    fn timeout_message_has_a_full_stop_only_for_register_and_deregister() {
        let t = FailureKind::Send(SendError::Timeout);
        assert_eq!(
            f(Operation::Register, t.clone()).message(),
            "The requested operation was not successful due to a communication timeout."
        );
        assert_eq!(
            f(Operation::Deregister, t.clone()).message(),
            "The requested operation was not successful due to a communication timeout."
        );
        assert_eq!(
            f(Operation::RenewId, t.clone()).message(),
            "The requested operation was not successful due to a communication timeout"
        );
        assert_eq!(
            f(Operation::RenewAuth, t).message(),
            "The requested operation was not successful due to a communication timeout"
        );
    }

    #[test]
    fn each_failure_maps_to_its_table_row() {
        let unknown_ca = f(Operation::Register, FailureKind::Send(SendError::UnknownCa));
        assert_eq!(
            unknown_ca.message(),
            "The requested operation was not successful due to invalid trust chain pool"
        );
        assert_eq!(unknown_ca.detail().as_deref(), Some("Unknown CA"));
        let proxy = f(
            Operation::RenewAuth,
            FailureKind::Send(SendError::ProxyAuthentication),
        );
        assert_eq!(
            proxy.message(),
            "The requested operation was not successful due to communication send error"
        );
        assert_eq!(
            proxy.detail().as_deref(),
            Some("proxy authentication required")
        );
        let version = f(Operation::RenewAuth, FailureKind::VersionTooHigh);
        assert_eq!(
            version.message(),
            "The requested operation was not successful due to an unknown error"
        );
        assert_eq!(
            version.detail().as_deref(),
            Some("protocol version not supported by the manager")
        );
        let token = f(Operation::Register, FailureKind::TokenRefused);
        assert_eq!(token.message(), TOKEN_MESSAGE);
        assert!(!token.is_retried());
    }

    #[test]
    fn a_request_refused_for_a_retired_device_key_is_an_unknown_error_retried() {
        let manager = |operation| {
            f(
                operation,
                FailureKind::Manager {
                    code: crate::wire::codes::KEY_RETIRED.into(),
                    message: "the device key that signed this request is no longer valid".into(),
                },
            )
        };
        for operation in [
            Operation::Register,
            Operation::RenewId,
            Operation::RenewAuth,
        ] {
            let retired = manager(operation);
            assert_eq!(
                retired.message(),
                "The requested operation was not successful due to an unknown error"
            );
            assert_eq!(
                retired.detail().as_deref(),
                Some("this registration was replaced or removed on the manager")
            );
            assert!(retired.is_retried());
        }
    }
}
