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
    /// The Smart Account is not entitled to License Reservation (SPEC §6).
    #[error("the Smart Account {0:?} is not entitled to License Reservation (manager account --reservation on)")]
    ReservationNotAllowed(String),
    /// The Virtual Account cannot spare the licenses (003:570).
    #[error("{}", super::reservation::NO_SURPLUS_MESSAGE)]
    NoSurplus,
    /// Export-controlled functionality for a Smart Account under export restrictions, whose
    /// products use export authorization keys instead (SPEC §7).
    #[error("the Smart Account {0:?} is under export restrictions: export-controlled functionality needs export authorization keys")]
    ExportRestricted(String),
    /// The product instance holds a reservation already.
    #[error("product instance {0} holds a reservation already: update it (reservation update) or return it first")]
    ReservationExists(String),
    /// The reservation was returned already (a request code or return code used again).
    #[error("this reservation was returned already: its licenses are back in the pool (request a new code on the product)")]
    ReservationReturned,
    /// No reservation for that instance.
    #[error("no reservation for product instance {0}")]
    UnknownReservation(String),
    /// A reservation that cannot be made as asked; the text says why.
    #[error("invalid reservation: {0}")]
    InvalidReservation(&'static str),
    /// A code (request, confirmation or return) that is not valid, with the product's message.
    #[error(transparent)]
    Code(crate::codes::CodeError),
    /// The code could not be issued.
    #[error(transparent)]
    Issue(crate::codes::IssueError),
    /// An export feature name that is not 1–64 characters of `[A-Za-z0-9_.-]`.
    #[error("invalid export feature name {0:?}")]
    InvalidFeature(String),
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
