//! The online operations, one table: each operation's request builder, answer handler and
//! failure handler live in its sub-machine file as an [`OperationSpec`]; this file lists them.
//!
//! Adding an online operation: write its `OperationSpec` in its sub-machine file, add one line
//! to [`operations!`] below, and one line to the wire's kind table
//! ([`crate::wire::RequestKind`]) with the request body it carries. Exchange, timers and the
//! snapshot handle every operation through the table.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::failure::Failure;
use super::timers::TimerTable;
use super::Agent;
use crate::crypto::DeviceKey;
use crate::udi::Uuid;
use crate::wire::{Answer, RequestBody, RequestKind, UsageLine};

/// The outstanding request of any operation: enough to rebuild it identically but for nonce
/// and time (SPEC §12: it survives a crash and is re-sent). Fields an operation does not use
/// stay empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pending {
    pub operation: Operation,
    /// The key the request is signed with when it is not the current identity's: register
    /// (the job's key, which also tells whether that job is still the one this request was
    /// made for) and deregister (the retired identity's key).
    pub key: Option<DeviceKey>,
    /// The product-instance id when it is not the current identity's (deregister).
    pub piid: Option<Uuid>,
    /// The usage report's sequence number (authorize).
    pub sequence: u64,
    /// The usage report (authorize).
    pub usage: Vec<UsageLine>,
    /// What the request names: the feature (and the key id of a return) of an export key
    /// operation, the export keys a deregistration returns.
    pub subjects: Vec<String>,
}

impl Pending {
    /// A request of `operation` with nothing else.
    pub fn new(operation: Operation) -> Pending {
        Pending {
            operation,
            key: None,
            piid: None,
            sequence: 0,
            usage: Vec::new(),
            subjects: Vec::new(),
        }
    }
}

/// What a request is made of: the key that signs it, the piid it names, its body.
pub(crate) struct RequestParts {
    pub key: DeviceKey,
    pub piid: Option<Uuid>,
    pub body: RequestBody,
}

/// One online operation's home. Functions take the agent and the effective time.
pub(crate) struct OperationSpec {
    /// The wire kind of its request.
    pub kind: RequestKind,
    /// Whether its timeout message ends with a full stop (the seed's renewal rows have none,
    /// 000:1541-1576).
    pub timeout_full_stop: bool,
    /// The request due at `t`, if any. Operations are asked in table order: the first one
    /// due is sent.
    pub due: fn(&Agent, DateTime<Utc>) -> Option<Pending>,
    /// Sets the timers of this operation in `table`, while nothing is outstanding.
    pub schedule: fn(&Agent, DateTime<Utc>, &mut TimerTable),
    /// The request for `pending` at `t`, or `None` if it can no longer be sent (its
    /// identity lapsed, its job was replaced): then it is abandoned.
    pub build: fn(&Agent, &Pending, DateTime<Utc>) -> Option<RequestParts>,
    /// Records that `pending` was handed to the product (consumes "asked now" flags).
    pub sent: fn(&mut Agent, &Pending),
    /// Applies a verified answer (`Failed` and `VersionTooHigh` answers are failures before
    /// they get here, except what `refused` takes).
    pub answered: fn(&mut Agent, DateTime<Utc>, &Pending, Answer) -> Result<(), Failure>,
    /// Takes a `FAILED` code (and message) that ends this operation for good rather than
    /// failing it (the refused token); `false` leaves it a failure.
    pub refused: fn(&mut Agent, DateTime<Utc>, &Pending, &str, &str) -> bool,
    /// Records a failure and schedules the retry.
    pub failed: fn(&mut Agent, DateTime<Utc>, &Pending, Failure),
}

/// No `FAILED` code is final for the operation.
pub(crate) fn never_refused(
    _: &mut Agent,
    _: DateTime<Utc>,
    _: &Pending,
    _: &str,
    _: &str,
) -> bool {
    false
}

macro_rules! operations {
    ($( $(#[$doc:meta])* $name:ident => $spec:path, )*) => {
        /// The online operations; a failure message names one (its renewal rows differ from the
        /// others by the missing final full stop of the timeout message).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
        #[non_exhaustive]
        pub enum Operation {
            $( $(#[$doc])* $name, )*
        }

        impl Operation {
            /// Every operation, in the order due requests are sent.
            pub(crate) const ALL: &'static [Operation] = &[$(Operation::$name),*];

            /// The operation's home.
            pub(crate) fn spec(self) -> &'static OperationSpec {
                match self {
                    $( Operation::$name => &$spec, )*
                }
            }
        }
    };
}

operations! {
    /// Deregistration (sent before anything else: at most one request is on the wire).
    Deregister => super::deregistration::DEREGISTER,
    /// Registration (initial or forced).
    Register => super::registration::REGISTER,
    /// Identity renewal (renewID).
    RenewId => super::registration::RENEW_ID,
    /// Authorization (renewAuth), including the first one.
    RenewAuth => super::authorization::AUTHORIZE,
    /// An export authorization key request (SPEC §7).
    ExportRequest => super::export::EXPORT_REQUEST,
    /// An export authorization key return.
    ExportReturn => super::export::EXPORT_RETURN,
}

impl Operation {
    /// The wire kind of this operation's request.
    pub fn kind(self) -> RequestKind {
        self.spec().kind
    }

    /// The operation whose request has `kind`.
    pub(crate) fn of_kind(kind: RequestKind) -> Option<Operation> {
        Operation::ALL.iter().copied().find(|o| o.kind() == kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_has_its_own_request_kind() {
        for op in Operation::ALL {
            assert_eq!(Operation::of_kind(op.kind()), Some(*op));
        }
    }
}
