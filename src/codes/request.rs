//! The Reservation Request Code (SPEC §6; shape of 004:573).

use std::fmt;
use std::str::FromStr;

use super::{base58, Alphabet, CodeError, Defect, ReservationKeyHash, UdiForm};
use crate::udi::Udi;

/// The prime modulus of the request-code checksum (largest prime below 256).
const PRIME: u32 = 251;

/// The fields of a request code.
const SHAPE: &str = "CB-<UDI>-<key>-<check digits>";

/// How many characters (whitespace excluded) a request code may have.
const MAX_LEN: usize = 1024;

/// What a device prints for `reservation_request`: its UDI and its reservation public key.
///
/// Text: `CB-<request-code UDI>-<base58 of the 32-byte Ed25519 public key>-<2 uppercase hex>`,
/// e.g. for the UDI `PID:UCM,SN:37624,UUID:6fe83add…` (SPEC §2):
///
/// ```
/// use smart_agent::codes::RequestCode;
/// use smart_agent::Udi;
/// let udi: Udi = "PID:UCM,SN:37624,UUID:6fe83addc80240bc92dc071ac7a37624".parse().unwrap();
/// let code = RequestCode::new(udi.clone(), [7; 32]);
/// let text = code.to_string();
/// assert!(text.starts_with("CB-PUCM,S37624,U6fe83addc80240bc92dc071ac7a37624-"));
/// assert_eq!(text.len(), 95);
/// // The manager receives it pasted: any whitespace is dropped; case matters.
/// let pasted = format!("  {}\n {}  ", &text[..40], &text[40..]);
/// assert_eq!(RequestCode::parse(&pasted).unwrap(), code);
/// assert!(RequestCode::parse(&text.to_lowercase()).is_err());
/// ```
///
/// **Length**: `3 + UDI + 1 + 43 or 44 + 3` characters: 95–96 for a Unified CM UDI with serial
/// and UUID (45 characters), 86–87 for `PExpressway,S08F8FF3C,V1.0,H320aa69d`.
///
/// # The checksum
/// The two hex digits are `Σ w_i·b_i mod 251` over the bytes `b_0, b_1, …` of everything before
/// them (`CB-<udi>-<key>-`), with weights `w_i = (i mod 250) + 1`; 251 is the largest prime
/// below 256, so the value fits 2 hex digits (`00`–`FA`).
///
/// It catches **every** substitution of one character by another and **every** swap of two
/// unequal neighbours, for any length:
/// - a substitution at `i` changes the sum by `w_i·(b′ − b)`: `1 ≤ w_i ≤ 250` and
///   `1 ≤ |b′ − b| ≤ 127` (the code is ASCII), both non-zero modulo the prime 251, so their
///   product is non-zero modulo 251;
/// - a swap at `i, i+1` changes it by `(w_i − w_{i+1})·(b_{i+1} − b_i)`, and neighbouring weights
///   differ by 1 (or by 249 where the weights wrap from 250 to 1), again non-zero modulo 251;
/// - inside the check digits, a substitution or swap changes the printed value; one that moves
///   or replaces the last `-` leaves no 2-digit check field, which is refused.
///
/// A character outside the alphabet of its field (a non-base58 character in the key, lowercase
/// hex in the check digits) is refused by name before the sum is compared; a non-ASCII one in
/// the UDI (several bytes, so outside the argument) fails the sum or else the UDI's own rules.
/// Whitespace is not part of the code (it is dropped), so "substituting" a space is a deletion,
/// which the checksum catches with probability 250/251 but not always.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RequestCode {
    udi: Udi,
    reservation_key: [u8; 32],
}

/// `Σ w_i·b_i mod 251`.
fn checksum(bytes: &[u8]) -> u32 {
    bytes.iter().enumerate().fold(0, |acc, (i, &b)| {
        (acc + ((i % 250) as u32 + 1) * u32::from(b)) % PRIME
    })
}

impl RequestCode {
    /// The code for an instance and its reservation public key.
    pub fn new(udi: Udi, reservation_key: [u8; 32]) -> RequestCode {
        RequestCode {
            udi,
            reservation_key,
        }
    }

    /// The instance's UDI.
    pub fn udi(&self) -> &Udi {
        &self.udi
    }

    /// The 32-byte Ed25519 reservation public key.
    pub fn reservation_key(&self) -> &[u8; 32] {
        &self.reservation_key
    }

    /// The hash an authorization code for this request names.
    pub fn reservation_key_hash(&self) -> ReservationKeyHash {
        ReservationKeyHash::of(&self.reservation_key)
    }

    /// Parses a request code, dropping any whitespace; case-exact.
    pub fn parse(text: &str) -> Result<RequestCode, CodeError> {
        parse(text).map_err(CodeError::InvalidRequest)
    }
}

fn parse(text: &str) -> Result<RequestCode, Defect> {
    // Characters with their positions in the text as given (from 1).
    let chars: Vec<(usize, char)> = text
        .chars()
        .enumerate()
        .filter(|(_, c)| !c.is_whitespace())
        .map(|(i, c)| (i + 1, c))
        .collect();
    if chars.is_empty() {
        return Err(Defect::Empty);
    }
    if chars.len() > MAX_LEN {
        return Err(Defect::TooLong { max: MAX_LEN });
    }
    let compact: String = chars.iter().map(|&(_, c)| c).collect();
    if !compact.starts_with("CB-") {
        return Err(Defect::WrongPrefix { expected: "CB-" });
    }
    // From the right: the check digits, then the key; a PID may contain '-'.
    let check_dash = compact.rfind('-').ok_or(Defect::MalformedChecksum)?;
    let check_field = &compact[check_dash + 1..];
    let check_at = compact[..check_dash + 1].chars().count();
    if check_field.chars().count() != 2 {
        return Err(Defect::MalformedChecksum);
    }
    for (k, c) in check_field.chars().enumerate() {
        if !matches!(c, '0'..='9' | 'A'..='F') {
            return Err(Defect::BadCharacter {
                character: c,
                position: chars[check_at + k].0,
                expected: Alphabet::UppercaseHex,
            });
        }
    }
    let found = u32::from_str_radix(check_field, 16).map_err(|_| Defect::MalformedChecksum)?;
    let head = &compact[..check_dash];
    let key_dash = head.rfind('-').ok_or(Defect::MalformedChecksum)?;
    if key_dash <= 2 {
        // The only dash left is the prefix's: the UDI or the key is missing.
        return Err(Defect::WrongShape { expected: SHAPE });
    }
    let key_text = &head[key_dash + 1..];
    let key_at = head[..key_dash + 1].chars().count();
    let mut digits = Vec::with_capacity(key_text.len());
    for (k, c) in key_text.chars().enumerate() {
        digits.push(base58::digit(c).ok_or(Defect::BadCharacter {
            character: c,
            position: chars[key_at + k].0,
            expected: Alphabet::Base58,
        })?);
    }
    if checksum(&compact.as_bytes()[..check_dash + 1]) != found {
        return Err(Defect::BadChecksum);
    }
    let udi =
        Udi::parse_request_form(&head[3..key_dash]).map_err(|error| Defect::WrongUdiForm {
            form: UdiForm::Request,
            error,
        })?;
    let key = base58::from_digits(&digits);
    let reservation_key = <[u8; 32]>::try_from(key.as_slice())
        .map_err(|_| Defect::WrongKeyLength { found: key.len() })?;
    Ok(RequestCode {
        udi,
        reservation_key,
    })
}

impl fmt::Display for RequestCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let head = format!(
            "CB-{}-{}-",
            self.udi.request_form(),
            base58::encode(&self.reservation_key)
        );
        write!(f, "{head}{:02X}", checksum(head.as_bytes()))
    }
}

impl FromStr for RequestCode {
    type Err = CodeError;
    fn from_str(s: &str) -> Result<Self, CodeError> {
        RequestCode::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code() -> RequestCode {
        let udi = Udi::parse_request_form("PExpressway,S08F8FF3C,V1.0,H320aa69d").unwrap();
        RequestCode::new(udi, [0x5a; 32])
    }

    #[test]
    fn seed_shape_parses_up_to_its_checksum() {
        // 004:573 carries a short key and Cisco's checksum: ours refuses it as mistyped.
        assert_eq!(
            parse("CB-PExpressway,S08F8FF3C,V1.0,H320aa69d-A7C3vjcf-AE"),
            Err(Defect::BadChecksum)
        );
        let text = code().to_string();
        assert_eq!(text.len(), 3 + 36 + 1 + 44 + 3);
        assert_eq!(parse(&text).unwrap(), code());
    }

    #[test]
    fn short_keys_and_bad_fields_are_named() {
        let head = "CB-PUCM-2-";
        let short = format!("{head}{:02X}", checksum(head.as_bytes()));
        assert_eq!(parse(&short), Err(Defect::WrongKeyLength { found: 1 }));
        let head = "CB-XUCM-2-";
        let bad_udi = format!("{head}{:02X}", checksum(head.as_bytes()));
        assert!(matches!(
            parse(&bad_udi),
            Err(Defect::WrongUdiForm {
                form: UdiForm::Request,
                ..
            })
        ));
        assert_eq!(parse(" \n"), Err(Defect::Empty));
        assert_eq!(
            parse("cb-PUCM-2-00"),
            Err(Defect::WrongPrefix { expected: "CB-" })
        );
        assert_eq!(parse("CB-PUCM-2-0"), Err(Defect::MalformedChecksum));
        assert_eq!(
            parse("CB-2-00"),
            Err(Defect::WrongShape { expected: SHAPE })
        );
        assert_eq!(
            parse("CB-PUCM-20l-0a"),
            Err(Defect::BadCharacter {
                character: 'a',
                position: 14,
                expected: Alphabet::UppercaseHex
            })
        );
        assert_eq!(
            parse("CB-PUCM- 20l-0A"),
            Err(Defect::BadCharacter {
                character: '0',
                position: 11,
                expected: Alphabet::Base58
            })
        );
    }
}
