//! The stored form of a failure (the last attempt's reason in the communication part): every
//! variant of the SPEC §9 failure kinds, so a restored agent reports exactly what happened.
//!
//! Version 1 named the operation by a number and kept identity and grant rejections as text;
//! version 2 names the operation by its wire kind and keeps the rejection's variant.

use super::{malformed, PartError};
use crate::agent::failure::{Failure, FailureKind, Operation};
use crate::codec::{Reader, Writer};
use crate::crypto::{Environment, SignatureError};
use crate::wire::{AnswerError, GrantError, IdentityError, RequestKind, SendError};

pub(super) fn encode_failure(w: &mut Writer, f: &Failure) {
    w.str(f.operation.kind().as_str());
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

fn environment_of(b: u8) -> Result<Environment, PartError> {
    match b {
        0 => Ok(Environment::Production),
        1 => Ok(Environment::Development),
        _ => Err(malformed("bad environment")),
    }
}

fn encode_signature_error(w: &mut Writer, s: &SignatureError) {
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

fn decode_signature_error(r: &mut Reader<'_>) -> Result<SignatureError, PartError> {
    Ok(match r.u8()? {
        0 => SignatureError::Encoding,
        1 => SignatureError::Untrusted,
        2 => SignatureError::WrongEnvironment {
            signed: environment_of(r.u8()?)?,
            expected: environment_of(r.u8()?)?,
        },
        _ => return Err(malformed("bad signature error")),
    })
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
            encode_signature_error(w, s);
        }
        AnswerError::Identity(e) => {
            w.u8(4);
            match e {
                IdentityError::Malformed(m) => {
                    w.u8(0);
                    w.str(m);
                }
                IdentityError::Signature(s) => {
                    w.u8(1);
                    encode_signature_error(w, s);
                }
                IdentityError::OtherUdi => w.u8(2),
                IdentityError::OtherKey => w.u8(3),
                IdentityError::Expired => w.u8(4),
            }
        }
        AnswerError::Grant(e) => {
            w.u8(5);
            match e {
                GrantError::Malformed(m) => {
                    w.u8(0);
                    w.str(m);
                }
                GrantError::Signature(s) => {
                    w.u8(1);
                    encode_signature_error(w, s);
                }
                GrantError::OtherUdi => w.u8(2),
                GrantError::OtherReport => w.u8(3),
            }
        }
        AnswerError::NonceMismatch => w.u8(6),
        AnswerError::PiidMismatch => w.u8(7),
        AnswerError::KindMismatch => w.u8(8),
        AnswerError::ExportKey(why) => {
            w.u8(9);
            w.str(why);
        }
    }
}

/// Version 1's text of an identity rejection, back to its variant (the agent's own checks had
/// fixed texts; anything else was a parse or signature failure, kept as text).
fn identity_error_v1(text: String) -> IdentityError {
    [
        IdentityError::OtherUdi,
        IdentityError::OtherKey,
        IdentityError::Expired,
    ]
    .into_iter()
    .find(|e| e.to_string() == text)
    .unwrap_or(IdentityError::Malformed(text))
}

fn grant_error_v1(text: String) -> GrantError {
    [GrantError::OtherUdi, GrantError::OtherReport]
        .into_iter()
        .find(|e| e.to_string() == text)
        .unwrap_or(GrantError::Malformed(text))
}

pub(super) fn decode_failure(r: &mut Reader<'_>, version: u16) -> Result<Failure, PartError> {
    let operation = if version == 1 {
        match r.u8()? {
            0 => Operation::Register,
            1 => Operation::RenewId,
            2 => Operation::RenewAuth,
            3 => Operation::Deregister,
            _ => return Err(malformed("bad operation")),
        }
    } else {
        RequestKind::parse(&r.string()?)
            .and_then(Operation::of_kind)
            .ok_or_else(|| malformed("bad operation"))?
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
            _ => return Err(malformed("bad send error")),
        }),
        1 => FailureKind::Rejected(match r.u8()? {
            0 => AnswerError::Oversize {
                len: usize::try_from(r.u64()?).unwrap_or(usize::MAX),
                max: usize::try_from(r.u64()?).unwrap_or(usize::MAX),
            },
            1 => AnswerError::Truncated,
            2 => AnswerError::Malformed(r.string()?),
            3 => AnswerError::Signature(decode_signature_error(r)?),
            4 if version == 1 => AnswerError::Identity(identity_error_v1(r.string()?)),
            4 => AnswerError::Identity(match r.u8()? {
                0 => IdentityError::Malformed(r.string()?),
                1 => IdentityError::Signature(decode_signature_error(r)?),
                2 => IdentityError::OtherUdi,
                3 => IdentityError::OtherKey,
                4 => IdentityError::Expired,
                _ => return Err(malformed("bad identity error")),
            }),
            5 if version == 1 => AnswerError::Grant(grant_error_v1(r.string()?)),
            5 => AnswerError::Grant(match r.u8()? {
                0 => GrantError::Malformed(r.string()?),
                1 => GrantError::Signature(decode_signature_error(r)?),
                2 => GrantError::OtherUdi,
                3 => GrantError::OtherReport,
                _ => return Err(malformed("bad grant error")),
            }),
            6 => AnswerError::NonceMismatch,
            7 => AnswerError::PiidMismatch,
            8 => AnswerError::KindMismatch,
            9 if version >= 3 => AnswerError::ExportKey(r.string()?),
            _ => return Err(malformed("bad answer error")),
        }),
        2 => FailureKind::Manager {
            code: r.string()?,
            message: r.string()?,
        },
        3 => FailureKind::TokenRefused,
        4 => FailureKind::VersionTooHigh,
        _ => return Err(malformed("bad failure")),
    };
    Ok(Failure { operation, kind })
}
