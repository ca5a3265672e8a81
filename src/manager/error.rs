//! Errors of the manager's administration calls.

use super::accounts::VirtualAccountId;
use crate::crypto::RandomError;

/// An administration call the manager refused; nothing was changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManagerError {
    /// The random source (keys, tokens) failed.
    #[error("the random number generator failed")]
    Random,
    /// An account name is empty, longer than 100 characters, has control characters or
    /// leading or trailing white space.
    #[error("invalid account name {0:?}")]
    InvalidName(String),
    /// A Smart Account of that name exists already.
    #[error("Smart Account {0:?} exists already")]
    DuplicateSmartAccount(String),
    /// A Virtual Account of that name exists already in its Smart Account.
    #[error("Virtual Account {0} exists already")]
    DuplicateVirtualAccount(VirtualAccountId),
    /// No Smart Account of that name.
    #[error("no Smart Account {0:?}")]
    UnknownSmartAccount(String),
    /// No such Virtual Account.
    #[error("no Virtual Account {0}")]
    UnknownVirtualAccount(VirtualAccountId),
    /// The pool's purchased count would not fit in a `u32`.
    #[error("the purchased count would exceed {}", u32::MAX)]
    CountOverflow,
    /// The token options make no token: a validity that is not positive or runs past the
    /// calendar, or a use limit of zero.
    #[error("invalid token options: {0}")]
    InvalidTokenOptions(&'static str),
    /// The manager never issued this token.
    #[error("no such registration token")]
    UnknownToken,
    /// A pool's display name or description is longer than 256 characters (the start of it
    /// is given).
    #[error("pool name or description starting {0:?} is too long (at most 256 characters)")]
    InvalidText(String),
    /// The manager's database failed (I/O error, full disk, damage); nothing was changed.
    #[error("the manager's database failed: {0}")]
    Storage(String),
}

impl From<super::db::DbError> for ManagerError {
    fn from(e: super::db::DbError) -> Self {
        ManagerError::Storage(e.to_string())
    }
}

impl From<RandomError> for ManagerError {
    fn from(_: RandomError) -> Self {
        ManagerError::Random
    }
}
