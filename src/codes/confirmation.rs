//! The Reservation Confirmation Code (SPEC §6).

use std::fmt;
use std::str::FromStr;

use super::{Alphabet, CodeError, Defect};

/// What the device prints after installing an SLR code: the first 8 hex digits (4 bytes) of
/// SHA-256 over the code's signed bytes, so the manager recomputes it from the code it issued.
///
/// `Display` prints 8 lowercase hex digits (**length 8**). Parsing — what the manager does
/// with what a person typed — accepts 1 to 8 hex digits in any case, leading zeros dropped or
/// not (the seeds show `4ef63f1` and `08715c93`), and refuses anything else, whitespace
/// included.
///
/// ```
/// use smart_agent::codes::{CodeError, ConfirmationCode};
/// let code = ConfirmationCode::new(0x04ef63f1);
/// assert_eq!(code.to_string(), "04ef63f1");
/// assert_eq!(code.check("4EF63F1"), Ok(()));
/// assert_eq!(code.check("4ef63f2"), Err(CodeError::ConfirmationMismatch));
/// assert!(code.check("4ef63f1 ").is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConfirmationCode(u32);

impl ConfirmationCode {
    /// The code with this value.
    pub fn new(value: u32) -> ConfirmationCode {
        ConfirmationCode(value)
    }

    /// The code of an authorization code's signed bytes.
    pub fn of_signed_bytes(signed: &[u8]) -> ConfirmationCode {
        let digest = ring::digest::digest(&ring::digest::SHA256, signed);
        let d = digest.as_ref();
        ConfirmationCode(u32::from_be_bytes([d[0], d[1], d[2], d[3]]))
    }

    /// The 32-bit value.
    pub fn value(self) -> u32 {
        self.0
    }

    /// Parses 1–8 hex digits in any case.
    pub fn parse(text: &str) -> Result<ConfirmationCode, CodeError> {
        parse(text).map_err(CodeError::InvalidConfirmation)
    }

    /// The manager's comparison: `entered` must parse and equal this code.
    pub fn check(self, entered: &str) -> Result<(), CodeError> {
        if ConfirmationCode::parse(entered)? == self {
            Ok(())
        } else {
            Err(CodeError::ConfirmationMismatch)
        }
    }
}

fn parse(text: &str) -> Result<ConfirmationCode, Defect> {
    if text.is_empty() {
        return Err(Defect::Empty);
    }
    let mut value: u32 = 0;
    for (i, c) in text.chars().enumerate() {
        let d = c.to_digit(16).ok_or(Defect::BadCharacter {
            character: c,
            position: i + 1,
            expected: Alphabet::Hex,
        })?;
        if i >= 8 {
            return Err(Defect::TooManyDigits(text.chars().count()));
        }
        value = (value << 4) | d;
    }
    Ok(ConfirmationCode(value))
}

impl fmt::Display for ConfirmationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

impl FromStr for ConfirmationCode {
    type Err = CodeError;
    fn from_str(s: &str) -> Result<Self, CodeError> {
        ConfirmationCode::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_spellings_parse() {
        assert_eq!(parse("4ef63f1"), Ok(ConfirmationCode(0x04ef63f1)));
        assert_eq!(parse("08715c93"), Ok(ConfirmationCode(0x08715c93)));
        assert_eq!(parse("8715C93"), Ok(ConfirmationCode(0x08715c93)));
        assert_eq!(parse("0"), Ok(ConfirmationCode(0)));
        assert_eq!(ConfirmationCode(0).to_string(), "00000000");
    }

    #[test]
    fn anything_else_is_refused() {
        assert_eq!(parse(""), Err(Defect::Empty));
        assert_eq!(parse("000000000"), Err(Defect::TooManyDigits(9)));
        assert_eq!(parse("123456789"), Err(Defect::TooManyDigits(9)));
        assert_eq!(
            parse("+1"),
            Err(Defect::BadCharacter {
                character: '+',
                position: 1,
                expected: Alphabet::Hex
            })
        );
        assert!(parse(" 1").is_err());
        assert!(parse("0x1").is_err());
        assert!(parse("１").is_err());
        assert_eq!(
            ConfirmationCode::parse("g").unwrap_err().to_string(),
            "The Reservation Confirmation Code is not valid: 'g' at position 1 is not a hexadecimal digit"
        );
    }
}
