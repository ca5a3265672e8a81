//! The stored form of a failure (the last attempt's reason in the communication part): every
//! variant of the SPEC §9 failure kinds, so a restored agent reports exactly what happened.

use super::corrupt;
use crate::agent::failure::{Failure, FailureKind, Operation};
use crate::codec::{Reader, Writer};
use crate::crypto::{Environment, SignatureError};
use crate::snapshot::SnapshotError;
use crate::wire::{AnswerError, SendError};

pub(super) fn encode_failure(w: &mut Writer, f: &Failure) {
    w.u8(match f.operation {
        Operation::Register => 0,
        Operation::RenewId => 1,
        Operation::RenewAuth => 2,
        Operation::Deregister => 3,
    });
    match &f.kind {
        FailureKind::Send(e) => {
            w.u8(0);
            match e {
                SendError::Timeout => w.u8(0),
                SendError::Send { detail } => {
                    w.u8(1);
                    w.str(detail);
                }
                SendError::UnknownCa => w.u8(2),
                SendError::ProxyAuthentication => w.u8(3),
                SendError::TooLarge => w.u8(4),
            }
        }
        FailureKind::Rejected(e) => {
            w.u8(1);
            encode_answer_error(w, e);
        }
        FailureKind::Manager { code, message } => {
            w.u8(2);
            w.str(code);
            w.str(message);
        }
        FailureKind::TokenRefused => w.u8(3),
        FailureKind::VersionTooHigh => w.u8(4),
    }
}

fn environment_byte(e: Environment) -> u8 {
    match e {
        Environment::Production => 0,
        Environment::Development => 1,
    }
}

fn environment_of(b: u8) -> Result<Environment, SnapshotError> {
    match b {
        0 => Ok(Environment::Production),
        1 => Ok(Environment::Development),
        _ => Err(corrupt("bad environment")),
    }
}

fn encode_answer_error(w: &mut Writer, e: &AnswerError) {
    match e {
        AnswerError::Oversize { len, max } => {
            w.u8(0);
            w.u64(*len as u64);
            w.u64(*max as u64);
        }
        AnswerError::Truncated => w.u8(1),
        AnswerError::Malformed(s) => {
            w.u8(2);
            w.str(s);
        }
        AnswerError::Signature(s) => {
            w.u8(3);
            match s {
                SignatureError::Encoding => w.u8(0),
                SignatureError::Untrusted => w.u8(1),
                SignatureError::WrongEnvironment { signed, expected } => {
                    w.u8(2);
                    w.u8(environment_byte(*signed));
                    w.u8(environment_byte(*expected));
                }
            }
        }
        AnswerError::Identity(s) => {
            w.u8(4);
            w.str(s);
        }
        AnswerError::Grant(s) => {
            w.u8(5);
            w.str(s);
        }
        AnswerError::NonceMismatch => w.u8(6),
        AnswerError::PiidMismatch => w.u8(7),
        AnswerError::KindMismatch => w.u8(8),
    }
}

pub(super) fn decode_failure(r: &mut Reader<'_>) -> Result<Failure, SnapshotError> {
    let operation = match r.u8()? {
        0 => Operation::Register,
        1 => Operation::RenewId,
        2 => Operation::RenewAuth,
        3 => Operation::Deregister,
        _ => return Err(corrupt("bad operation")),
    };
    let kind = match r.u8()? {
        0 => FailureKind::Send(match r.u8()? {
            0 => SendError::Timeout,
            1 => SendError::Send {
                detail: r.string()?,
            },
            2 => SendError::UnknownCa,
            3 => SendError::ProxyAuthentication,
            4 => SendError::TooLarge,
            _ => return Err(corrupt("bad send error")),
        }),
        1 => FailureKind::Rejected(match r.u8()? {
            0 => AnswerError::Oversize {
                len: usize::try_from(r.u64()?).unwrap_or(usize::MAX),
                max: usize::try_from(r.u64()?).unwrap_or(usize::MAX),
            },
            1 => AnswerError::Truncated,
            2 => AnswerError::Malformed(r.string()?),
            3 => AnswerError::Signature(match r.u8()? {
                0 => SignatureError::Encoding,
                1 => SignatureError::Untrusted,
                2 => SignatureError::WrongEnvironment {
                    signed: environment_of(r.u8()?)?,
                    expected: environment_of(r.u8()?)?,
                },
                _ => return Err(corrupt("bad signature error")),
            }),
            4 => AnswerError::Identity(r.string()?),
            5 => AnswerError::Grant(r.string()?),
            6 => AnswerError::NonceMismatch,
            7 => AnswerError::PiidMismatch,
            8 => AnswerError::KindMismatch,
            _ => return Err(corrupt("bad answer error")),
        }),
        2 => FailureKind::Manager {
            code: r.string()?,
            message: r.string()?,
        },
        3 => FailureKind::TokenRefused,
        4 => FailureKind::VersionTooHigh,
        _ => return Err(corrupt("bad failure")),
    };
    Ok(Failure { operation, kind })
}
