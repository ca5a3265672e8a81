//! Base58 with the Bitcoin alphabet.
//!
//! The alphabet is `123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz` (no `0`, `O`,
//! `I`, `l`). Each leading zero byte is written as a leading `1`, and each leading `1` reads back
//! as a zero byte, so every byte string has exactly one spelling.
//!
//! ```
//! use smart_agent::codes::base58;
//! assert_eq!(base58::encode(b"hello world"), "StV1DL6CwTryKyV");
//! assert_eq!(base58::encode(&[0, 0, 1]), "112");
//! assert_eq!(base58::decode("112").unwrap(), vec![0, 0, 1]);
//! assert_eq!(
//!     base58::decode("1O1").unwrap_err().to_string(),
//!     "'O' at position 2 is not a base58 character"
//! );
//! ```

const ALPHABET: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// Why a base58 string did not decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Base58Error {
    /// A character outside the Bitcoin alphabet; `position` counts characters from 1.
    #[error("{character:?} at position {position} is not a base58 character")]
    BadCharacter {
        /// The offending character.
        character: char,
        /// Its position in the input, counting characters from 1.
        position: usize,
    },
}

/// The digit value of a base58 character.
pub(crate) fn digit(c: char) -> Option<u8> {
    let b = u8::try_from(c).ok()?;
    ALPHABET.iter().position(|&a| a == b).map(|p| p as u8)
}

/// Base58 of `bytes`: one `1` per leading zero byte, then the big-endian number in base 58.
pub fn encode(bytes: &[u8]) -> String {
    let zeros = bytes.iter().take_while(|&&b| b == 0).count();
    // Little-endian base-58 digits of the number formed by the remaining bytes.
    let mut digits: Vec<u8> = Vec::with_capacity(bytes.len() * 138 / 100 + 1);
    for &byte in &bytes[zeros..] {
        let mut carry = u32::from(byte);
        for d in digits.iter_mut() {
            carry += u32::from(*d) << 8;
            *d = (carry % 58) as u8;
            carry /= 58;
        }
        while carry > 0 {
            digits.push((carry % 58) as u8);
            carry /= 58;
        }
    }
    let mut out = String::with_capacity(zeros + digits.len());
    out.extend(std::iter::repeat_n('1', zeros));
    out.extend(
        digits
            .iter()
            .rev()
            .map(|&d| char::from(ALPHABET[usize::from(d)])),
    );
    out
}

/// Decodes base58 text (case-exact, no whitespace).
pub fn decode(text: &str) -> Result<Vec<u8>, Base58Error> {
    let digits = text
        .chars()
        .enumerate()
        .map(|(i, c)| {
            digit(c).ok_or(Base58Error::BadCharacter {
                character: c,
                position: i + 1,
            })
        })
        .collect::<Result<Vec<u8>, _>>()?;
    Ok(from_digits(&digits))
}

/// The bytes of a string of base-58 digit values (each `< 58`).
pub(crate) fn from_digits(digits: &[u8]) -> Vec<u8> {
    let zeros = digits.iter().take_while(|&&d| d == 0).count();
    // Little-endian bytes of the number.
    let mut bytes: Vec<u8> = Vec::with_capacity(digits.len() * 733 / 1000 + 1);
    for &d in &digits[zeros..] {
        let mut carry = u32::from(d);
        for b in bytes.iter_mut() {
            carry += u32::from(*b) * 58;
            *b = (carry & 0xff) as u8;
            carry >>= 8;
        }
        while carry > 0 {
            bytes.push((carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    let mut out = vec![0u8; zeros];
    out.extend(bytes.iter().rev());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_vectors() {
        assert_eq!(encode(b""), "");
        assert_eq!(decode("").unwrap(), Vec::<u8>::new());
        assert_eq!(encode(&[0]), "1");
        assert_eq!(encode(&[0, 0, 0, 0x28, 0x7f, 0xb4, 0xcd]), "111233QC4");
        assert_eq!(encode(&[0xff; 4]), "7YXq9G");
        assert_eq!(
            decode("0"),
            Err(Base58Error::BadCharacter {
                character: '0',
                position: 1
            })
        );
        assert_eq!(
            decode("11é").unwrap_err().to_string(),
            "'é' at position 3 is not a base58 character"
        );
    }

    proptest! {
        #[test]
        fn round_trips_against_bs58(bytes in proptest::collection::vec(any::<u8>(), 0..80),
                                    zeros in 0usize..4) {
            let mut input = vec![0u8; zeros];
            input.extend(bytes);
            let ours = encode(&input);
            prop_assert_eq!(&ours, &bs58::encode(&input).into_string());
            prop_assert_eq!(decode(&ours).unwrap(), input.clone());
            prop_assert_eq!(bs58::decode(&ours).into_vec().unwrap(), input);
        }

        #[test]
        fn decode_agrees_with_bs58(text in "[1-9A-HJ-NP-Za-km-z]{0,60}") {
            prop_assert_eq!(decode(&text).unwrap(), bs58::decode(&text).into_vec().unwrap());
        }

        #[test]
        fn refuses_what_bs58_refuses(text in "\\PC{0,30}") {
            prop_assert_eq!(decode(&text).is_ok(), bs58::decode(&text).into_vec().is_ok());
        }
    }
}
