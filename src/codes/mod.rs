//! Offline reservation codes (SPEC §6): value types that parse and print losslessly, with
//! typed errors whose messages are the install-check messages of SPEC §6.
//!
//! Lengths in characters, measured by `tests/codes.rs` (`lengths_of_typical_codes`) for a
//! Unified CM UDI with serial and UUID (`PID:UCM,SN:37624,UUID:…`) or, for PLR, the Expressway
//! UDI of 004:573, with catalogue tags:
//!
//! | code | who makes it | shape | typical length |
//! |---|---|---|---|
//! | [`RequestCode`] | device | `CB-<request-code UDI>-<base58 key>-<2 hex>` | 95–96 |
//! | [`SlrCode`] | manager | `<specificPLR>` XML, detached ECDSA signature | 1 333 (2 entitlements), 1 705 (3) |
//! | [`PlrCode`] | manager | `C…` base58 in groups of 6 | about 400 (2 entitlements), 460 (3) |
//! | [`ConfirmationCode`] | device | 8 lowercase hex digits | 8 |
//! | [`ReturnCode`] | device | `C…` base58 in groups of 6, Ed25519 signed | 144 |
//!
//! The flow: the device prints a [`RequestCode`] carrying its reservation public key; the
//! manager answers with an authorization code ([`SlrCode`] or [`PlrCode`]) that names the
//! SHA-256 of that key ([`ReservationKeyHash`]), the instance's UDI and the environment, all
//! signed; installing an SLR code yields a [`ConfirmationCode`] the manager recomputes; a
//! [`ReturnCode`] signed by the reservation key gives the licenses back.
//!
//! Every parser refuses with a [`CodeError`]: a typed variant per code and check, whose
//! `Display` is the message a person sees, e.g. `The Reservation Authorization Code is not
//! valid: <count> is empty`. The [`Defect`] inside says what is wrong.
//!
//! Tolerance: base58 codes (request, PLR, return) ignore any whitespace a person adds (and PLR
//! and return codes ignore dashes); the SLR XML ignores only added CR and LF, because spaces
//! are part of the signed bytes.

use std::fmt;
use std::str::FromStr;

use crate::codec::{CodecError, Reader};
use crate::crypto::SignatureError;
use crate::error::RestCode;
use crate::udi::UdiError;

pub mod base58;
mod confirmation;
mod export_key;
mod plr;
mod request;
mod ret;
mod slr;
mod xml;

pub use confirmation::ConfirmationCode;
pub use export_key::{is_feature_name, ExportKey, MAX_FEATURE_LEN};
pub use plr::{PlrClaims, PlrCode, PlrEntitlement};
pub use request::RequestCode;
pub use ret::{ReturnCode, ReturnKind};
pub use slr::{LicenseType, SlrClaims, SlrCode, SlrEntitlement};

/// Which code a message is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CodeKind {
    /// A Reservation Request Code.
    Request,
    /// A Specific License Reservation authorization code (XML).
    SlrAuthorization,
    /// A Permanent License Reservation authorization code (base58).
    PlrAuthorization,
    /// A Reservation Return Code.
    Return,
}

impl fmt::Display for CodeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CodeKind::Request => "Reservation Request Code",
            CodeKind::SlrAuthorization => "Specific License Reservation Authorization Code",
            CodeKind::PlrAuthorization => "Permanent License Reservation Authorization Code",
            CodeKind::Return => "Reservation Return Code",
        })
    }
}

/// The characters a position of a code may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Alphabet {
    /// The Bitcoin base58 alphabet.
    Base58,
    /// `0-9`, `a-f`, `A-F`.
    Hex,
    /// `0-9`, `A-F`.
    UppercaseHex,
}

impl fmt::Display for Alphabet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Alphabet::Base58 => "a base58 character",
            Alphabet::Hex => "a hexadecimal digit",
            Alphabet::UppercaseHex => "an uppercase hexadecimal digit",
        })
    }
}

/// The UDI spelling a code expects (SPEC §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UdiForm {
    /// `P:UCM,S:37624,U:6fe83add-…` (XML documents and codes).
    Code,
    /// `PUCM,S37624,U6fe83add…` (request codes).
    Request,
}

impl fmt::Display for UdiForm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UdiForm::Code => "P:…,S:…,U:…",
            UdiForm::Request => "P…,S…,U…",
        })
    }
}

/// What is wrong with a code: the `<what is wrong>` of `… is not valid: <what is wrong>`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Defect {
    /// Nothing but whitespace (and dashes) was given.
    #[error("it is empty")]
    Empty,
    /// Longer than any code this crate makes.
    #[error("it is longer than {max} characters")]
    TooLong {
        /// The limit.
        max: usize,
    },
    /// The code does not begin as its kind must.
    #[error("it does not start with {expected:?}")]
    WrongPrefix {
        /// The required beginning.
        expected: &'static str,
    },
    /// A character outside the alphabet of its position; `position` counts characters of the
    /// text as given (whitespace included) from 1.
    #[error("{character:?} at position {position} is not {expected}")]
    BadCharacter {
        /// The offending character.
        character: char,
        /// Its position, counting characters from 1.
        position: usize,
        /// What the position may hold.
        expected: Alphabet,
    },
    /// Fields are missing: the code is not of the form it names.
    #[error("it is not of the form {expected}")]
    WrongShape {
        /// The form.
        expected: &'static str,
    },
    /// The checksum field is not 2 uppercase hex digits after the last `-`.
    #[error("it does not end with a dash and 2 uppercase hexadecimal check digits")]
    MalformedChecksum,
    /// The check digits do not match: a character was mistyped, swapped, added or lost.
    #[error("the check digits do not match (a character is mistyped or missing)")]
    BadChecksum,
    /// The bytes end before the layout does.
    #[error("it is truncated")]
    Truncated,
    /// Bytes after the end of the layout.
    #[error("it has {0} unexpected bytes at the end")]
    TrailingBytes(usize),
    /// The layout version byte is not one this crate reads.
    #[error("format version {0} is not supported")]
    UnsupportedVersion(u8),
    /// A code of another kind (e.g. a return code given as an authorization code).
    #[error("it is a {found}, not a {expected}")]
    WrongKind {
        /// What the caller asked for.
        expected: CodeKind,
        /// What the code is.
        found: CodeKind,
    },
    /// The UDI is not in the spelling this code uses.
    #[error("the UDI is not in the {form} form: {error}")]
    WrongUdiForm {
        /// The spelling required here.
        form: UdiForm,
        /// Why it did not parse.
        error: UdiError,
    },
    /// The reservation public key does not decode to 32 bytes.
    #[error("the reservation key is {found} bytes long instead of 32")]
    WrongKeyLength {
        /// The decoded length.
        found: usize,
    },
    /// The code carries no signature.
    #[error("it is not signed")]
    Unsigned,
    /// The signature is not base64.
    #[error("the signature is not base64")]
    SignatureEncoding,
    /// The XML is not well formed, or breaks the detached-signature layout.
    #[error("{0}")]
    Xml(crate::xmlsig::DetachedError),
    /// The root element is not the one of this code.
    #[error("the root element is <{found}>, not <{expected}>")]
    WrongRoot {
        /// The required root.
        expected: &'static str,
        /// The root found.
        found: String,
    },
    /// A required element is missing.
    #[error("<{parent}> has no <{element}>")]
    MissingElement {
        /// The enclosing element.
        parent: &'static str,
        /// The missing one.
        element: &'static str,
    },
    /// An element appears twice where once is allowed.
    #[error("<{parent}> has more than one <{element}>")]
    DuplicateElement {
        /// The enclosing element.
        parent: &'static str,
        /// The repeated one.
        element: String,
    },
    /// An element this code does not have.
    #[error("<{parent}> has an unexpected <{element}>")]
    UnexpectedElement {
        /// The enclosing element.
        parent: String,
        /// The unexpected one.
        element: String,
    },
    /// An element carries attributes; no code has any.
    #[error("<{element}> has attributes")]
    UnexpectedAttribute {
        /// The element.
        element: String,
    },
    /// Text beside child elements.
    #[error("<{element}> has text beside its elements")]
    UnexpectedText {
        /// The element.
        element: String,
    },
    /// An element that must have a value is empty (e.g. `<count></count>`).
    #[error("<{0}> is empty")]
    EmptyElement(&'static str),
    /// An element's value is not of its type.
    #[error("<{element}> has an invalid value {value:?}")]
    InvalidValue {
        /// The element (or field of a binary code).
        element: &'static str,
        /// The value as found (shortened to 80 characters).
        value: String,
    },
    /// An entitlement tag is not `regid.<yyyy-mm>.com.cisco.<Name>,<version>_<uuid>`.
    #[error("{0:?} is not a valid entitlement tag")]
    InvalidTag(String),
    /// The confirmation code has more than 8 digits.
    #[error("it has {0} digits, more than 8")]
    TooManyDigits(usize),
}

impl Defect {
    /// An [`Defect::InvalidValue`] with the value shortened for display.
    pub(crate) fn invalid(element: &'static str, value: &str) -> Defect {
        Defect::InvalidValue {
            element,
            value: value.chars().take(80).collect(),
        }
    }
}

/// A refused code: which code, and what is wrong. `Display` is the message for the person.
///
/// ```
/// use smart_agent::codes::{CodeError, Defect, RequestCode};
/// let err = RequestCode::parse("CB-PUCM,S37624-AE").unwrap_err();
/// assert!(matches!(err, CodeError::InvalidRequest(Defect::WrongShape { .. })));
/// assert_eq!(
///     err.to_string(),
///     "The Reservation Request Code is not valid: \
///      it is not of the form CB-<UDI>-<key>-<check digits>"
/// );
/// assert_eq!(err.code().status(), 400);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodeError {
    /// A request code that is not well formed.
    #[error("The Reservation Request Code is not valid: {0}")]
    InvalidRequest(Defect),
    /// An authorization code (SLR or PLR) that is not well formed (SPEC §6, first check).
    #[error("The Reservation Authorization Code is not valid: {0}")]
    InvalidAuthorization(Defect),
    /// An authorization code whose signature no trusted key of this environment made
    /// (SPEC §6, second check); the source says whether the key is unknown or of the other
    /// environment.
    #[error(
        "The Reservation Authorization Code is not signed by a trusted Smart Software Manager"
    )]
    UntrustedAuthorization(#[source] SignatureError),
    /// A return code that is not well formed.
    #[error("The Reservation Return Code is not valid: {0}")]
    InvalidReturn(Defect),
    /// A return code the expected reservation key did not sign.
    #[error(
        "The Reservation Return Code is not signed by the reservation key of this product instance"
    )]
    ForgedReturn,
    /// A confirmation code that is not 1–8 hex digits.
    #[error("The Reservation Confirmation Code is not valid: {0}")]
    InvalidConfirmation(Defect),
    /// A well-formed confirmation code of another authorization code.
    #[error("The Reservation Confirmation Code does not match the Reservation Authorization Code")]
    ConfirmationMismatch,
    /// An export authorization key that is not well formed (SPEC §7, ours).
    #[error("The Export Authorization Key is not valid: {0}")]
    InvalidExportKey(Defect),
    /// An export authorization key no trusted key of this environment signed (ours).
    #[error("The Export Authorization Key is not signed by a trusted Smart Software Manager")]
    UntrustedExportKey(#[source] SignatureError),
    /// An export authorization key issued to another instance (ours).
    #[error("The Export Authorization Key is for another product instance: {0}")]
    ExportKeyForAnotherInstance(String),
    /// An export authorization key for another feature (ours).
    #[error("The Export Authorization Key is for another feature: {0}")]
    ExportKeyForAnotherFeature(String),
}

impl CodeError {
    /// The REST-style code: every refused code is 400 `INVALID_PARAMETER`.
    pub fn code(&self) -> RestCode {
        RestCode::InvalidParameter
    }

    /// What is wrong, for the variants that carry a [`Defect`].
    pub fn defect(&self) -> Option<&Defect> {
        match self {
            CodeError::InvalidRequest(d)
            | CodeError::InvalidAuthorization(d)
            | CodeError::InvalidReturn(d)
            | CodeError::InvalidConfirmation(d)
            | CodeError::InvalidExportKey(d) => Some(d),
            _ => None,
        }
    }
}

/// Why the manager could not issue a code.
#[cfg(feature = "manager")]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// The random source of the ECDSA signature failed.
    #[error("the random number generator failed")]
    Random,
    /// A value cannot be written into the code so that it reads back the same.
    #[error("{field} cannot be put in the code: {reason}")]
    Unrepresentable {
        /// The field.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
}

/// Which kind of reservation is installed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum ReservationKind {
    /// Specific License Reservation: the tags and counts the code lists.
    Specific,
    /// Permanent ("universal") License Reservation: every entitlement.
    Universal,
}

/// The SHA-256 of a reservation public key, printed in base58: what an authorization code
/// names as `<reservationKey>` so the device can match it to its request.
///
/// ```
/// use smart_agent::codes::ReservationKeyHash;
/// let hash = ReservationKeyHash::of(&[7; 32]);
/// assert_eq!(hash.to_string().parse::<ReservationKeyHash>().unwrap(), hash);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReservationKeyHash(pub [u8; 32]);

impl ReservationKeyHash {
    /// The hash of a 32-byte Ed25519 reservation public key.
    pub fn of(public_key: &[u8; 32]) -> ReservationKeyHash {
        let digest = ring::digest::digest(&ring::digest::SHA256, public_key);
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        ReservationKeyHash(out)
    }
}

impl fmt::Display for ReservationKeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&base58::encode(&self.0))
    }
}

impl fmt::Debug for ReservationKeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReservationKeyHash({self})")
    }
}

impl FromStr for ReservationKeyHash {
    type Err = Defect;
    fn from_str(s: &str) -> Result<Self, Defect> {
        let bytes = base58::decode(s).map_err(|e| match e {
            base58::Base58Error::BadCharacter {
                character,
                position,
            } => Defect::BadCharacter {
                character,
                position,
                expected: Alphabet::Base58,
            },
        })?;
        <[u8; 32]>::try_from(bytes.as_slice())
            .map(ReservationKeyHash)
            .map_err(|_| Defect::invalid("reservationKey", s))
    }
}

/// An authorization code of either kind, told apart by its first character (`<` for SLR XML,
/// `C` for PLR).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthorizationCode {
    /// A Specific License Reservation code.
    Slr(SlrCode),
    /// A Permanent License Reservation code.
    Plr(PlrCode),
}

impl AuthorizationCode {
    /// Parses either kind.
    pub fn parse(text: &str) -> Result<AuthorizationCode, CodeError> {
        // A byte order mark before the XML (a code saved by an editor) is skipped by the SLR
        // parser too; it must not send the code to the PLR parser. Any number of marks are
        // skipped here so that the SLR parser, which takes one, names what is wrong with more.
        if text
            .trim_start_matches(|c: char| c.is_whitespace() || c == '\u{feff}')
            .starts_with('<')
        {
            SlrCode::parse(text).map(AuthorizationCode::Slr)
        } else {
            PlrCode::parse(text).map(AuthorizationCode::Plr)
        }
    }
}

impl fmt::Display for AuthorizationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthorizationCode::Slr(c) => c.fmt(f),
            AuthorizationCode::Plr(c) => c.fmt(f),
        }
    }
}

impl FromStr for AuthorizationCode {
    type Err = CodeError;
    fn from_str(s: &str) -> Result<Self, CodeError> {
        AuthorizationCode::parse(s)
    }
}

/// The first byte of a binary code: layout version (high nibble, 1) and kind (low nibble).
pub(crate) mod kind_byte {
    use super::{CodeKind, Defect};

    /// A PLR authorization code, layout 1.
    pub(crate) const PLR: u8 = 0x11;
    /// A return code for an installed code, layout 1.
    pub(crate) const RETURN_INSTALLED: u8 = 0x12;
    /// A return code for a code never installed (return-authorization), layout 1.
    pub(crate) const RETURN_AUTHORIZATION: u8 = 0x13;

    /// The kind a first byte announces.
    pub(crate) fn kind(byte: u8) -> Result<CodeKind, Defect> {
        match byte {
            PLR => Ok(CodeKind::PlrAuthorization),
            RETURN_INSTALLED | RETURN_AUTHORIZATION => Ok(CodeKind::Return),
            b if b >> 4 != 1 => Err(Defect::UnsupportedVersion(b >> 4)),
            b => Err(Defect::invalid("kind", &format!("{b:#04x}"))),
        }
    }
}

/// A binary code's bytes are read with the crate's codec: running out is
/// [`Defect::Truncated`].
impl From<CodecError> for Defect {
    fn from(e: CodecError) -> Self {
        match e {
            CodecError::TrailingBytes => Defect::TrailingBytes(0),
            _ => Defect::Truncated,
        }
    }
}

/// Refuses bytes left over, saying how many.
pub(crate) fn finish(r: &Reader<'_>) -> Result<(), Defect> {
    match r.remaining() {
        0 => Ok(()),
        n => Err(Defect::TrailingBytes(n)),
    }
}

/// A millisecond timestamp of a binary code.
pub(crate) fn millis(ms: i64) -> Result<chrono::DateTime<chrono::Utc>, Defect> {
    chrono::DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| Defect::invalid("timestamp", &ms.to_string()))
}

/// `t` cut to whole milliseconds, as binary codes carry it.
pub(crate) fn to_millis(t: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}
