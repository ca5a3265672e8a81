//! Base58 with the Bitcoin alphabet, and the framing of our `C`-prefixed grouped codes.
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
//!
//! # Grouped codes (PLR authorization and return codes)
//! Text: `C`, then base58 of the payload bytes, then two **check characters**, the whole cut
//! into dash-separated groups of 6 (`CAVfS8-tqmsHn-…`, 004:727). Readers drop every dash and
//! every whitespace character first, so a person may re-wrap or re-group the code freely.
//!
//! The check characters: give every character of the code (the `C`, the payload characters and
//! the two check characters `c1 c2`) its base58 digit value `d_i`. Payload positions
//! `i = 0, 1, …` (the `C` is position 0) weigh `w_i = (i mod 57) + 1`, the first check character
//! weighs 58 and the second 1. The check characters are chosen so that
//! `Σ w_i·d_i ≡ 0 (mod 3361)`, i.e. `58·c1 + c2 = (−Σ_payload w_i·d_i) mod 3361`; 3361 is the
//! largest prime below 58² = 3364, so every residue has a two-digit spelling.
//!
//! Why it catches **every** single substitution and **every** adjacent transposition, whatever
//! the code's length:
//! - substituting digit `d` by `d′` at position `k` changes the sum by `w_k·(d′ − d)`; both
//!   factors are non-zero and smaller than the prime 3361 in absolute value (`1 ≤ w_k ≤ 58`,
//!   `1 ≤ |d′ − d| ≤ 57`), so the product is not `0 mod 3361`;
//! - swapping unequal neighbours `d_k, d_{k+1}` changes it by `(w_k − w_{k+1})·(d_{k+1} − d_k)`;
//!   neighbouring weights always differ (payload weights step by +1 and wrap from 57 to 1; the
//!   last payload weight is at most 57 and so differs from 58; then 58 and 1), by at most 57,
//!   so again neither factor is `0 mod 3361`.
//!
//! A random corruption passes with probability about 1/3361. Characters outside the alphabet
//! are refused by name and position before the check is computed. Inserting or deleting a
//! character (which includes substituting a dash or a space, since those are dropped) is not
//! covered by this argument; the signature every grouped code carries refuses those.

use super::{Alphabet, Defect};

const ALPHABET: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// The prime modulus of the check characters (largest prime below 58²).
const CHECK_PRIME: u32 = 3361;

/// How many significant characters a grouped code may have (about 5 900 payload bytes).
pub(crate) const MAX_GROUPED_CHARS: usize = 8192;

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

/// The weight of payload position `i` (the `C` is position 0).
fn weight(i: usize) -> u32 {
    (i % 57) as u32 + 1
}

/// `Σ w_i·d_i mod 3361` over payload digit values.
fn payload_sum(digits: &[u8]) -> u32 {
    digits.iter().enumerate().fold(0, |acc, (i, &d)| {
        (acc + weight(i) * u32::from(d)) % CHECK_PRIME
    })
}

/// The two check digits for payload digits (the `C` included).
fn check_digits(digits: &[u8]) -> [u8; 2] {
    let c = (CHECK_PRIME - payload_sum(digits)) % CHECK_PRIME;
    [(c / 58) as u8, (c % 58) as u8]
}

/// `C` + base58(payload) + check characters, in dash-separated groups of 6.
pub(crate) fn encode_grouped(payload: &[u8]) -> String {
    let mut text = String::from("C");
    text.push_str(&encode(payload));
    let digits: Vec<u8> = text.chars().filter_map(digit).collect();
    for d in check_digits(&digits) {
        text.push(char::from(ALPHABET[usize::from(d)]));
    }
    let mut out = String::with_capacity(text.len() + text.len() / 6);
    for (i, c) in text.chars().enumerate() {
        if i > 0 && i % 6 == 0 {
            out.push('-');
        }
        out.push(c);
    }
    out
}

/// Reads a grouped code: drops dashes and whitespace, checks the `C`, every character, the
/// check characters, and returns the payload bytes.
pub(crate) fn decode_grouped(text: &str) -> Result<Vec<u8>, Defect> {
    let mut digits: Vec<u8> = Vec::new();
    for (i, c) in text.chars().enumerate() {
        if c == '-' || c.is_whitespace() {
            continue;
        }
        if digits.is_empty() && c != 'C' {
            return Err(Defect::WrongPrefix { expected: "C" });
        }
        if digits.len() >= MAX_GROUPED_CHARS {
            return Err(Defect::TooLong {
                max: MAX_GROUPED_CHARS,
            });
        }
        let d = digit(c).ok_or(Defect::BadCharacter {
            character: c,
            position: i + 1,
            expected: Alphabet::Base58,
        })?;
        digits.push(d);
    }
    if digits.is_empty() {
        return Err(Defect::Empty);
    }
    if digits.len() < 3 {
        return Err(Defect::Truncated);
    }
    let (payload, check) = digits.split_at(digits.len() - 2);
    let total = payload_sum(payload) + 58 * u32::from(check[0]) + u32::from(check[1]);
    if !total.is_multiple_of(CHECK_PRIME) {
        return Err(Defect::BadChecksum);
    }
    Ok(from_digits(&payload[1..]))
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

    #[test]
    fn grouped_codes_frame_and_check() {
        let text = encode_grouped(&[1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert!(text.starts_with('C'));
        assert!(text.split('-').all(|g| (1..=6).contains(&g.len())));
        assert!(text.split('-').rev().skip(1).all(|g| g.len() == 6));
        assert_eq!(
            decode_grouped(&text).unwrap(),
            vec![1, 2, 3, 4, 5, 6, 7, 8, 9]
        );
        let spaced: String = text.chars().flat_map(|c| [c, ' ']).collect();
        assert_eq!(
            decode_grouped(&spaced).unwrap(),
            vec![1, 2, 3, 4, 5, 6, 7, 8, 9]
        );
        assert_eq!(decode_grouped(""), Err(Defect::Empty));
        assert_eq!(decode_grouped(" - "), Err(Defect::Empty));
        assert_eq!(decode_grouped("C1"), Err(Defect::Truncated));
        assert_eq!(
            decode_grouped("X123"),
            Err(Defect::WrongPrefix { expected: "C" })
        );
        assert_eq!(
            decode_grouped("C-12l4"),
            Err(Defect::BadCharacter {
                character: 'l',
                position: 5,
                expected: Alphabet::Base58
            })
        );
    }

    #[test]
    fn every_check_residue_has_two_digits() {
        // 58·c1 + c2 covers 0..=3363 ⊇ 0..3361.
        const { assert!(58 * 57 + 57 >= CHECK_PRIME - 1) };
        const { assert!(CHECK_PRIME > 58 && CHECK_PRIME <= 58 * 58) };
        assert!((2..CHECK_PRIME).all(|d| !CHECK_PRIME.is_multiple_of(d)));
        // No larger prime fits two digits.
        assert!((CHECK_PRIME + 1..=58 * 58).all(|n| (2..n).any(|d| n.is_multiple_of(d))));
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

        #[test]
        fn grouped_round_trips(payload in proptest::collection::vec(any::<u8>(), 0..120)) {
            prop_assert_eq!(decode_grouped(&encode_grouped(&payload)).unwrap(), payload);
        }
    }
}
