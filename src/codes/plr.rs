//! The Permanent License Reservation authorization code (ours; shape of 004:727).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use super::{
    base58, finish, kind_byte, millis, CodeError, CodeKind, Defect, ReservationKeyHash, UdiForm,
};
use crate::codec::Reader;
use crate::crypto::{self, Environment, TrustAnchor};
use crate::entitlement::Tag;
use crate::udi::{Udi, Uuid};

/// Signed before the payload, so a PLR signature means nothing anywhere else.
const DOMAIN: &[u8] = b"smart-agent PLR authorization code\0";

/// Flag bit: the reservation includes export control.
const EXPORT_CONTROLLED: u8 = 0x01;

/// Tag forms.
const TAG_COMPACT: u8 = 0;
const TAG_VERBATIM: u8 = 1;

/// One reserved entitlement of a PLR code.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PlrEntitlement {
    /// The entitlement tag.
    pub tag: Tag,
    /// How many are reserved.
    pub count: u32,
}

/// What a PLR code grants (all signed), and what the manager puts in one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlrClaims {
    /// The product instance id.
    pub piid: Uuid,
    /// When the manager issued the code (whole milliseconds).
    pub timestamp: DateTime<Utc>,
    /// The instance the code is for.
    pub udi: Udi,
    /// The SHA-256 of the request's reservation public key.
    pub reservation_key: ReservationKeyHash,
    /// The manager's environment.
    pub environment: Environment,
    /// The reservation includes export control (the code then also lists the export-control
    /// PLR entitlement, e.g. "Expressway PLR with Export Control").
    pub export_controlled: bool,
    /// The reserved entitlements.
    pub entitlements: Vec<PlrEntitlement>,
}

/// A PLR authorization code: `C`, base58 of the bytes below, two check characters, in
/// dash-separated groups of 6 (`CAVfS8-tqmsHn-…`, 004:727). Readers ignore any whitespace and
/// every dash; anything else wrong is named ([`Defect`]). The check characters
/// ([`base58`](super::base58#grouped-codes-plr-authorization-and-return-codes)) catch every
/// single substitution and adjacent swap as "mistyped" before the signature is looked at.
///
/// Byte layout (layout 1; integers big-endian):
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 1 | kind byte `0x11` (layout 1, PLR authorization) |
/// | 1 | 16 | piid |
/// | 17 | 8 | timestamp, ms since the epoch (i64) |
/// | 25 | 32 | reservation key hash (SHA-256 of the reservation public key) |
/// | 57 | 1 | environment: 0 production, 1 development |
/// | 58 | 1 | flags: bit 0 export controlled, other bits 0 |
/// | 59 | 2 + n | UDI, request-code form (`PExpressway,S…`), length n (u16) then ASCII |
/// | … | 1 | number of entitlements k (≤ 255) |
/// | … | k × … | entitlement: tag (below), then count (u32) |
/// | … | 1 + s | ECDSA P-256 signature (DER), length s (u8) then bytes |
///
/// A tag is written compact when it is `regid.<yyyy>-<mm>.com.cisco.<name>,<version>_<uuid>`
/// with a lowercase UUID — byte `0`, year (u16), month (u8), name length (u8) and name, version
/// length (u8) and version, the UUID's 16 bytes — and verbatim otherwise: byte `1`, length (u8),
/// the text. The signature is over `"smart-agent PLR authorization code\0"` followed by every
/// byte before the signature length.
///
/// **Length** (measured in `tests/codes.rs`), for the UDI `PExpressway,S08F8FF3C,V1.0,H320aa69d`:
/// about 272 characters with no entitlement, 400 with 2 and 460 with 3 compact tags (a few
/// characters either way with the DER signature's length). An entitlement with a compact tag
/// takes 26 bytes plus its name and version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlrCode {
    /// Everything before the signature length byte, as received.
    payload: Vec<u8>,
    signature: Vec<u8>,
    claims: PlrClaims,
}

impl PlrCode {
    /// Parses a PLR code. Nothing is trusted yet: see [`PlrCode::verify`].
    pub fn parse(text: &str) -> Result<PlrCode, CodeError> {
        let bytes = base58::decode_grouped(text).map_err(CodeError::InvalidAuthorization)?;
        decode(&bytes).map_err(CodeError::InvalidAuthorization)
    }

    /// The signature check of SPEC §6: signed by a trust anchor of `environment`, and naming
    /// that environment. Returns what the code grants.
    pub fn verify(
        &self,
        anchors: &[TrustAnchor],
        environment: Environment,
    ) -> Result<PlrClaims, CodeError> {
        crypto::verify_manager_signature(
            anchors,
            environment,
            self.claims.environment,
            &signed_message(&self.payload),
            &self.signature,
        )
        .map_err(CodeError::UntrustedAuthorization)?;
        Ok(self.claims.clone())
    }

    /// The claims before verification (for display and diagnosis only).
    pub fn unverified_claims(&self) -> &PlrClaims {
        &self.claims
    }

    /// The DER ECDSA signature.
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }
}

fn signed_message(payload: &[u8]) -> Vec<u8> {
    [DOMAIN, payload].concat()
}

fn decode(bytes: &[u8]) -> Result<PlrCode, Defect> {
    let mut r = Reader::new(bytes);
    let kind = kind_byte::kind(r.u8()?)?;
    if kind != CodeKind::PlrAuthorization {
        return Err(Defect::WrongKind {
            expected: CodeKind::PlrAuthorization,
            found: kind,
        });
    }
    let piid = Uuid(r.array()?);
    let timestamp = millis(r.i64()?)?;
    let reservation_key = ReservationKeyHash(r.array()?);
    let environment = match r.u8()? {
        0 => Environment::Production,
        1 => Environment::Development,
        b => return Err(Defect::invalid("environment", &b.to_string())),
    };
    let flags = r.u8()?;
    if flags & !EXPORT_CONTROLLED != 0 {
        return Err(Defect::invalid("flags", &format!("{flags:#04x}")));
    }
    let udi_len = usize::from(r.u16()?);
    let udi_text =
        std::str::from_utf8(r.take(udi_len)?).map_err(|_| Defect::invalid("udi", "not UTF-8"))?;
    let udi = Udi::parse_request_form(udi_text).map_err(|error| Defect::WrongUdiForm {
        form: UdiForm::Request,
        error,
    })?;
    let n = r.u8()?;
    let mut entitlements = Vec::with_capacity(usize::from(n));
    for _ in 0..n {
        let tag = read_tag(&mut r)?;
        entitlements.push(PlrEntitlement {
            tag,
            count: r.u32()?,
        });
    }
    let payload = bytes[..r.position()].to_vec();
    let sig_len = usize::from(r.u8()?);
    if sig_len == 0 {
        return Err(Defect::Unsigned);
    }
    let signature = r.take(sig_len)?.to_vec();
    finish(&r)?;
    Ok(PlrCode {
        payload,
        signature,
        claims: PlrClaims {
            piid,
            timestamp,
            udi,
            reservation_key,
            environment,
            export_controlled: flags & EXPORT_CONTROLLED != 0,
            entitlements,
        },
    })
}

fn utf8(bytes: &[u8]) -> Result<&str, Defect> {
    std::str::from_utf8(bytes)
        .map_err(|_| Defect::InvalidTag(String::from_utf8_lossy(bytes).into_owned()))
}

fn read_tag(r: &mut Reader<'_>) -> Result<Tag, Defect> {
    let text = match r.u8()? {
        TAG_COMPACT => {
            let year = r.u16()?;
            let month = r.u8()?;
            let name_len = usize::from(r.u8()?);
            let name = utf8(r.take(name_len)?)?.to_string();
            let version_len = usize::from(r.u8()?);
            let version = utf8(r.take(version_len)?)?.to_string();
            let uuid = Uuid(r.array()?);
            format!("regid.{year:04}-{month:02}.com.cisco.{name},{version}_{uuid}")
        }
        TAG_VERBATIM => {
            let len = usize::from(r.u8()?);
            utf8(r.take(len)?)?.to_string()
        }
        other => return Err(Defect::invalid("tag form", &other.to_string())),
    };
    Tag::parse(&text).map_err(|_| Defect::InvalidTag(text))
}

impl fmt::Display for PlrCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut bytes = self.payload.clone();
        bytes.push(self.signature.len() as u8);
        bytes.extend_from_slice(&self.signature);
        f.write_str(&base58::encode_grouped(&bytes))
    }
}

impl FromStr for PlrCode {
    type Err = CodeError;
    fn from_str(s: &str) -> Result<Self, CodeError> {
        PlrCode::parse(s)
    }
}

#[cfg(feature = "manager")]
mod issue {
    use super::*;
    use crate::codes::{to_millis, IssueError};
    use crate::crypto::ManagerSigningKey;

    fn too_long(field: &'static str) -> IssueError {
        IssueError::Unrepresentable {
            field,
            reason: "is too long",
        }
    }

    fn short_len(field: &'static str, len: usize) -> Result<u8, IssueError> {
        u8::try_from(len).map_err(|_| too_long(field))
    }

    /// Writes a tag compact when it reads back identically, verbatim otherwise.
    fn write_tag(out: &mut Vec<u8>, tag: &Tag) -> Result<(), IssueError> {
        let text = tag.as_str();
        let uuid = text
            .len()
            .checked_sub(36)
            .and_then(|at| text.get(at..))
            .and_then(Uuid::parse_hyphenated);
        let year: Option<u16> = tag.date().get(..4).and_then(|y| y.parse().ok());
        let month: Option<u8> = tag.date().get(5..).and_then(|m| m.parse().ok());
        if let (Some(uuid), Some(year), Some(month)) = (uuid, year, month) {
            let rebuilt = format!(
                "regid.{year:04}-{month:02}.com.cisco.{},{}_{uuid}",
                tag.name(),
                tag.version()
            );
            if rebuilt == text {
                out.extend_from_slice(&[TAG_COMPACT]);
                out.extend_from_slice(&year.to_be_bytes());
                out.push(month);
                out.push(short_len("tag", tag.name().len())?);
                out.extend_from_slice(tag.name().as_bytes());
                out.push(short_len("tag", tag.version().len())?);
                out.extend_from_slice(tag.version().as_bytes());
                out.extend_from_slice(&uuid.0);
                return Ok(());
            }
        }
        out.push(TAG_VERBATIM);
        out.push(short_len("tag", text.len())?);
        out.extend_from_slice(text.as_bytes());
        Ok(())
    }

    /// Whether the text of `bytes` (first byte non-zero) would exceed what readers accept.
    /// Base58 takes between `(n − 1)·log₅₈256` and `n·log₅₈256 + 1` characters for `n` such
    /// bytes (log₅₈256 ≈ 1.36565), so only codes near the limit are encoded to find out.
    fn too_long_for_readers(bytes: &[u8]) -> bool {
        let max = base58::MAX_GROUPED_CHARS - 3;
        let n = bytes.len();
        if n.saturating_sub(1) * 1365 / 1000 > max {
            true
        } else if n * 1366 / 1000 < max {
            false
        } else {
            base58::encode(bytes).len() > max
        }
    }

    impl PlrCode {
        /// The manager's side: writes `claims` in the layout above and signs it. The
        /// timestamp is cut to whole milliseconds; the code reads back to exactly that.
        pub fn issue(claims: &PlrClaims, key: &ManagerSigningKey) -> Result<PlrCode, IssueError> {
            let mut payload = vec![kind_byte::PLR];
            payload.extend_from_slice(&claims.piid.0);
            payload.extend_from_slice(&claims.timestamp.timestamp_millis().to_be_bytes());
            payload.extend_from_slice(&claims.reservation_key.0);
            payload.push(match claims.environment {
                Environment::Production => 0,
                Environment::Development => 1,
            });
            payload.push(if claims.export_controlled {
                EXPORT_CONTROLLED
            } else {
                0
            });
            let udi = claims.udi.request_form();
            let udi_len = u16::try_from(udi.len()).map_err(|_| too_long("udi"))?;
            payload.extend_from_slice(&udi_len.to_be_bytes());
            payload.extend_from_slice(udi.as_bytes());
            payload.push(short_len("entitlements", claims.entitlements.len())?);
            for e in &claims.entitlements {
                write_tag(&mut payload, &e.tag)?;
                payload.extend_from_slice(&e.count.to_be_bytes());
            }
            let signature = key
                .sign(&signed_message(&payload))
                .map_err(|_| IssueError::Random)?;
            let mut bytes = payload;
            bytes.push(short_len("signature", signature.len())?);
            bytes.extend_from_slice(&signature);
            if too_long_for_readers(&bytes) {
                return Err(IssueError::Unrepresentable {
                    field: "entitlements",
                    reason: "make the code longer than a reader accepts",
                });
            }
            let code = decode(&bytes).map_err(|_| IssueError::Unrepresentable {
                field: "code",
                reason: "does not read back",
            })?;
            let mut expected = claims.clone();
            expected.timestamp = to_millis(claims.timestamp);
            if code.claims != expected {
                return Err(IssueError::Unrepresentable {
                    field: "code",
                    reason: "does not read back",
                });
            }
            Ok(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes of a code for `PX1` with no entitlement and signature `sig`.
    fn bytes(flags: u8, environment: u8, sig: &[u8]) -> Vec<u8> {
        let mut b = vec![kind_byte::PLR];
        b.extend_from_slice(&[0; 16 + 8 + 32]);
        b.extend_from_slice(&[environment, flags, 0, 3]);
        b.extend_from_slice(b"PX1");
        b.push(0);
        b.push(sig.len() as u8);
        b.extend_from_slice(sig);
        b
    }

    #[test]
    fn layout_fields_are_checked() {
        let code = decode(&bytes(1, 1, &[1, 2])).unwrap();
        assert!(code.claims.export_controlled);
        assert_eq!(code.claims.environment, Environment::Development);
        assert_eq!(code.claims.udi.pid(), "X1");
        assert_eq!(PlrCode::parse(&code.to_string()).unwrap(), code);
        assert_eq!(decode(&bytes(0, 0, &[])), Err(Defect::Unsigned));
        assert_eq!(
            decode(&bytes(2, 0, &[1])),
            Err(Defect::invalid("flags", "0x02"))
        );
        assert_eq!(
            decode(&bytes(0, 2, &[1])),
            Err(Defect::invalid("environment", "2"))
        );
        let mut long = bytes(0, 0, &[1]);
        long.push(0);
        assert_eq!(decode(&long), Err(Defect::TrailingBytes(1)));
        for cut in 0..long.len() - 1 {
            assert_eq!(decode(&long[..cut]), Err(Defect::Truncated), "cut {cut}");
        }
    }

    #[test]
    fn wrong_kinds_versions_and_cuts_are_named() {
        let ret = base58::encode_grouped(&[kind_byte::RETURN_INSTALLED, 0, 0]);
        assert_eq!(
            PlrCode::parse(&ret),
            Err(CodeError::InvalidAuthorization(Defect::WrongKind {
                expected: CodeKind::PlrAuthorization,
                found: CodeKind::Return
            }))
        );
        let v2 = base58::encode_grouped(&[0x21, 0, 0]);
        assert_eq!(
            PlrCode::parse(&v2),
            Err(CodeError::InvalidAuthorization(Defect::UnsupportedVersion(
                2
            )))
        );
        let short = base58::encode_grouped(&[kind_byte::PLR, 0, 0]);
        assert_eq!(
            PlrCode::parse(&short),
            Err(CodeError::InvalidAuthorization(Defect::Truncated))
        );
        // The seed's PLR code is Cisco's, not ours: its check characters do not match.
        assert_eq!(
            PlrCode::parse("CAVfS8-tqmsHn-ntioqo-Z8Q4wK-jsddDU-3YkM"),
            Err(CodeError::InvalidAuthorization(Defect::BadChecksum))
        );
    }
}
