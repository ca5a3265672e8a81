//! The Reservation Return Code (ours; shape of 004:776).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use super::{base58, finish, kind_byte, millis, to_millis, CodeError, CodeKind, Defect};
use crate::codec::Reader;
use crate::crypto::{self, DeviceKey};
use crate::udi::Uuid;

/// Signed before the payload, so a return signature means nothing anywhere else.
const DOMAIN: &[u8] = b"smart-agent reservation return code\0";

/// Bytes before the signature.
const PAYLOAD_LEN: usize = 25;

/// What is returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReturnKind {
    /// `reservation_return`: the installed code (and for PLR, the whole installed set).
    Installed,
    /// `reservation_return_authorization`: a code the manager issued that was never installed.
    Authorization,
}

/// What a device prints for `reservation_return` or `reservation_return_authorization`:
/// `C`, base58 of the bytes below, two check characters, in dash-separated groups of 6
/// (`CvfS8d-Fx1Yev-…`, 004:776). Readers ignore any whitespace and every dash.
///
/// Byte layout (layout 1; integers big-endian):
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 1 | kind byte: `0x12` return of an installed code, `0x13` return-authorization |
/// | 1 | 16 | piid of the returned code |
/// | 17 | 8 | the returned code's timestamp, ms since the epoch (i64) |
/// | 25 | 64 | Ed25519 signature by the reservation key over `"smart-agent reservation return code\0"` and bytes 0–24 |
///
/// The check characters ([`base58`](super::base58#grouped-codes-plr-authorization-and-return-codes))
/// refuse every single substitution and adjacent swap as mistyped, and the signature refuses
/// anything else that is not what the device made: [`ReturnCode::verify`] takes the reservation
/// public key the manager holds for the piid.
///
/// **Length**: always 144 characters — the `C`, 121 base58 characters of the 89 bytes (the
/// first byte fixes the magnitude) and 2 check characters, in 21 groups.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use smart_agent::codes::{ReturnCode, ReturnKind};
/// use smart_agent::crypto::DeviceKey;
/// use smart_agent::Uuid;
/// let key = DeviceKey::from_seed([3; 32]);
/// let issued = Utc.timestamp_millis_opt(1_634_998_815_362).unwrap();
/// let code = ReturnCode::sign(ReturnKind::Installed, Uuid([9; 16]), issued, &key);
/// let parsed = ReturnCode::parse(&code.to_string()).unwrap();
/// assert_eq!(parsed, code);
/// assert_eq!(parsed.verify(&key.public_key()), Ok(()));
/// assert!(parsed.verify(&DeviceKey::from_seed([4; 32]).public_key()).is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ReturnCode {
    kind: ReturnKind,
    piid: Uuid,
    timestamp: DateTime<Utc>,
    signature: [u8; 64],
}

impl ReturnCode {
    /// Makes and signs a return code with the reservation key. `timestamp` is the returned
    /// code's, cut to whole milliseconds.
    pub fn sign(
        kind: ReturnKind,
        piid: Uuid,
        timestamp: DateTime<Utc>,
        reservation_key: &DeviceKey,
    ) -> ReturnCode {
        let timestamp = to_millis(timestamp);
        let signature = reservation_key.sign(&signed_message(&payload(kind, piid, timestamp)));
        ReturnCode {
            kind,
            piid,
            timestamp,
            signature,
        }
    }

    /// Parses a return code (whitespace and dashes ignored). Nothing is trusted yet: see
    /// [`ReturnCode::verify`].
    pub fn parse(text: &str) -> Result<ReturnCode, CodeError> {
        let bytes = base58::decode_grouped(text).map_err(CodeError::InvalidReturn)?;
        decode(&bytes).map_err(CodeError::InvalidReturn)
    }

    /// Checks the signature against the reservation public key the manager holds for the
    /// piid.
    pub fn verify(&self, reservation_public_key: &[u8; 32]) -> Result<(), CodeError> {
        let msg = signed_message(&payload(self.kind, self.piid, self.timestamp));
        if crypto::verify_device_signature(reservation_public_key, &msg, &self.signature) {
            Ok(())
        } else {
            Err(CodeError::ForgedReturn)
        }
    }

    /// What is returned.
    pub fn kind(&self) -> ReturnKind {
        self.kind
    }

    /// The piid of the returned code.
    pub fn piid(&self) -> Uuid {
        self.piid
    }

    /// The returned code's timestamp.
    pub fn timestamp(&self) -> DateTime<Utc> {
        self.timestamp
    }
}

fn payload(kind: ReturnKind, piid: Uuid, timestamp: DateTime<Utc>) -> [u8; PAYLOAD_LEN] {
    let mut out = [0u8; PAYLOAD_LEN];
    out[0] = match kind {
        ReturnKind::Installed => kind_byte::RETURN_INSTALLED,
        ReturnKind::Authorization => kind_byte::RETURN_AUTHORIZATION,
    };
    out[1..17].copy_from_slice(&piid.0);
    out[17..25].copy_from_slice(&timestamp.timestamp_millis().to_be_bytes());
    out
}

fn signed_message(payload: &[u8]) -> Vec<u8> {
    [DOMAIN, payload].concat()
}

fn decode(bytes: &[u8]) -> Result<ReturnCode, Defect> {
    let mut r = Reader::new(bytes);
    let first = r.u8()?;
    let found = kind_byte::kind(first)?;
    if found != CodeKind::Return {
        return Err(Defect::WrongKind {
            expected: CodeKind::Return,
            found,
        });
    }
    let kind = if first == kind_byte::RETURN_INSTALLED {
        ReturnKind::Installed
    } else {
        ReturnKind::Authorization
    };
    let piid = Uuid(r.array()?);
    let timestamp = millis(r.i64()?)?;
    let signature = r.array()?;
    finish(&r)?;
    Ok(ReturnCode {
        kind,
        piid,
        timestamp,
        signature,
    })
}

impl fmt::Display for ReturnCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut bytes = payload(self.kind, self.piid, self.timestamp).to_vec();
        bytes.extend_from_slice(&self.signature);
        f.write_str(&base58::encode_grouped(&bytes))
    }
}

impl FromStr for ReturnCode {
    type Err = CodeError;
    fn from_str(s: &str) -> Result<Self, CodeError> {
        ReturnCode::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_sizes_are_checked() {
        let key = DeviceKey::from_seed([1; 32]);
        let t = DateTime::from_timestamp_millis(5).unwrap_or_default();
        let code = ReturnCode::sign(ReturnKind::Authorization, Uuid([2; 16]), t, &key);
        assert_eq!(ReturnCode::parse(&code.to_string()), Ok(code.clone()));
        let mut bytes = payload(code.kind, code.piid, code.timestamp).to_vec();
        bytes.extend_from_slice(&code.signature);
        bytes.push(0);
        assert_eq!(decode(&bytes), Err(Defect::TrailingBytes(1)));
        assert_eq!(decode(&bytes[..88]), Err(Defect::Truncated));
        bytes[0] = kind_byte::PLR;
        assert_eq!(
            decode(&bytes[..89]),
            Err(Defect::WrongKind {
                expected: CodeKind::Return,
                found: CodeKind::PlrAuthorization
            })
        );
        assert_eq!(
            ReturnCode::parse("CvfS8d-Fx1Yev-qmViq3-1KhkSR-iJfCzN-biB").err(),
            Some(CodeError::InvalidReturn(Defect::BadChecksum))
        );
    }
}
