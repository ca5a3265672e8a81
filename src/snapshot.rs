//! The persisted state of an agent (SPEC §12): a versioned container holding a **licensing
//! part** and a **communication part**, integrity-checked by default or sealed with a product
//! key.
//!
//! ```text
//! magic "SMAGSNAP" | version u16 | mode u8 (0 integrity, 1 sealed) | payload
//! integrity payload: u32 len | licensing | u32 len | communication | SHA-256 of all before
//! sealed payload:    nonce[12] | AES-256-GCM(len-prefixed parts, aad = header)
//! ```
//! Sealing is deterministic so that byte-identity still means "unchanged": the MAC and AEAD
//! keys are derived from the product key with HKDF-SHA256, and the nonce is the first 12
//! bytes of HMAC-SHA256(MAC key, plaintext), checked again after opening.

use std::fmt;

use ring::{aead, digest, hkdf, hmac};

use crate::codec::{CodecError, Reader, Writer};

/// The first bytes of every snapshot.
pub const MAGIC: &[u8; 8] = b"SMAGSNAP";
/// The container version this crate writes. Every version from [`FIRST_VERSION`] up to it is
/// read; newer ones are refused with [`SnapshotError::UnsupportedVersion`].
///
/// | version | written by | what it added |
/// |---|---|---|
/// | 1 | the first release | licensing and communication parts |
/// | 2 | — | dormant registrations kept at restore; one outstanding-request layout for every operation |
/// | 3 | this release | License Reservation (SPEC §6) |
pub const VERSION: u16 = 3;
/// The first version ever written.
pub const FIRST_VERSION: u16 = 1;

const MODE_INTEGRITY: u8 = 0;
const MODE_SEALED: u8 = 1;
const HEADER_LEN: usize = 8 + 2 + 1;

/// A 32-byte product key used to seal snapshots. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct ProductKey([u8; 32]);

impl ProductKey {
    /// A key from 32 bytes the product keeps secret (e.g. in its keystore).
    pub fn new(bytes: [u8; 32]) -> Self {
        ProductKey(bytes)
    }
}

impl fmt::Debug for ProductKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProductKey(<redacted>)")
    }
}

/// How snapshots are protected.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Protection {
    /// A SHA-256 digest detects corruption; contents are readable.
    #[default]
    Integrity,
    /// Authenticated encryption with keys derived from the product key.
    Sealed(ProductKey),
}

/// Why a snapshot could not be opened.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// Not a snapshot at all.
    #[error("not a smart-agent snapshot (wrong magic)")]
    WrongMagic,
    /// Written by a newer version of the crate.
    #[error("unsupported snapshot version {0}")]
    UnsupportedVersion(u16),
    /// Damaged: failed the integrity check or the seal, or its contents do not decode.
    #[error("corrupt snapshot: {0}")]
    Corrupt(String),
    /// Sealed while the agent expects an integrity-checked snapshot, or the other way round.
    #[error("snapshot protection does not match the configuration")]
    ProtectionMismatch,
}

/// Refuses a version this crate does not read.
pub fn check_version(version: u16) -> Result<(), SnapshotError> {
    if (FIRST_VERSION..=VERSION).contains(&version) {
        Ok(())
    } else {
        Err(SnapshotError::UnsupportedVersion(version))
    }
}

/// The two parts, as the bytes the agent encodes them to; tests compare them separately.
/// `Debug` shows only lengths and digests: the parts hold key seeds and tokens.
#[derive(Clone, PartialEq, Eq)]
pub struct SnapshotParts {
    /// The format version the parts are written in ([`VERSION`] for parts the agent makes; a
    /// product that stores parts itself must keep it with them).
    pub version: u16,
    /// Keys, identity, grant, evaluation, declared usage, settings.
    pub licensing: Vec<u8>,
    /// Outstanding request, attempts and backoff, highest time seen, notification cursor.
    pub communication: Vec<u8>,
}

impl fmt::Debug for SnapshotParts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digest = |b: &[u8]| -> String {
            digest::digest(&digest::SHA256, b).as_ref()[..8]
                .iter()
                .map(|x| format!("{x:02x}"))
                .collect()
        };
        f.debug_struct("SnapshotParts")
            .field("version", &self.version)
            .field(
                "licensing",
                &format_args!(
                    "{} bytes, sha256 {}…",
                    self.licensing.len(),
                    digest(&self.licensing)
                ),
            )
            .field(
                "communication",
                &format_args!(
                    "{} bytes, sha256 {}…",
                    self.communication.len(),
                    digest(&self.communication)
                ),
            )
            .finish()
    }
}

struct SealKeys {
    mac: hmac::Key,
    aead: aead::LessSafeKey,
}

struct Len(usize);
impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn derive_keys(key: &ProductKey) -> Option<SealKeys> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"smart-agent snapshot v1").extract(&key.0);
    let expand = |info: &'static [u8]| -> Option<[u8; 32]> {
        let infos = [info];
        let okm = prk.expand(&infos, Len(32)).ok()?;
        let mut out = [0u8; 32];
        okm.fill(&mut out).ok()?;
        Some(out)
    };
    let mac = hmac::Key::new(hmac::HMAC_SHA256, &expand(b"mac")?);
    let unbound = aead::UnboundKey::new(&aead::AES_256_GCM, &expand(b"aead")?).ok()?;
    Some(SealKeys {
        mac,
        aead: aead::LessSafeKey::new(unbound),
    })
}

fn header(version: u16, mode: u8) -> Vec<u8> {
    let mut h = MAGIC.to_vec();
    h.extend_from_slice(&version.to_be_bytes());
    h.push(mode);
    h
}

fn join_parts(parts: &SnapshotParts) -> Vec<u8> {
    let mut w = Writer::default();
    w.bytes(&parts.licensing);
    w.bytes(&parts.communication);
    w.finish()
}

fn split_parts(version: u16, payload: &[u8]) -> Result<SnapshotParts, SnapshotError> {
    let mut r = Reader::new(payload);
    let licensing = r.bytes()?.to_vec();
    let communication = r.bytes()?.to_vec();
    r.end()?;
    Ok(SnapshotParts {
        version,
        licensing,
        communication,
    })
}

/// Wraps the parts in a container protected as configured, labelled with their version.
pub fn seal(parts: &SnapshotParts, protection: &Protection) -> Vec<u8> {
    let plain = join_parts(parts);
    match protection {
        Protection::Integrity => {
            let mut out = header(parts.version, MODE_INTEGRITY);
            out.extend_from_slice(&plain);
            let d = digest::digest(&digest::SHA256, &out);
            out.extend_from_slice(d.as_ref());
            out
        }
        Protection::Sealed(key) => {
            let mut out = header(parts.version, MODE_SEALED);
            // HKDF and AES key setup cannot fail for these fixed lengths; if ring ever
            // refused, an empty seal would be refused on restore rather than leak plaintext.
            let Some(keys) = derive_keys(key) else {
                return out;
            };
            let tag = hmac::sign(&keys.mac, &plain);
            let mut nonce = [0u8; 12];
            nonce.copy_from_slice(&tag.as_ref()[..12]);
            let mut buf = plain;
            let sealed = keys.aead.seal_in_place_append_tag(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(out.clone()),
                &mut buf,
            );
            if sealed.is_err() {
                return out;
            }
            out.extend_from_slice(&nonce);
            out.extend_from_slice(&buf);
            out
        }
    }
}

/// Opens a container: magic, version, protection mode, integrity or seal. What the snapshot
/// fuzz target runs first.
pub fn open(bytes: &[u8], protection: &Protection) -> Result<SnapshotParts, SnapshotError> {
    if bytes.len() < 8 || &bytes[..8] != MAGIC {
        return Err(SnapshotError::WrongMagic);
    }
    if bytes.len() < HEADER_LEN {
        return Err(SnapshotError::Corrupt("truncated header".into()));
    }
    let version = u16::from_be_bytes([bytes[8], bytes[9]]);
    check_version(version)?;
    let (head, body) = bytes.split_at(HEADER_LEN);
    match (head[10], protection) {
        (MODE_INTEGRITY, Protection::Integrity) => {
            if body.len() < 32 {
                return Err(SnapshotError::Corrupt("truncated".into()));
            }
            let (content, sum) = bytes.split_at(bytes.len() - 32);
            let d = digest::digest(&digest::SHA256, content);
            if d.as_ref() != sum {
                return Err(SnapshotError::Corrupt("integrity check failed".into()));
            }
            split_parts(version, &body[..body.len() - 32])
        }
        (MODE_SEALED, Protection::Sealed(key)) => {
            let keys = derive_keys(key).ok_or(SnapshotError::ProtectionMismatch)?;
            if body.len() < 12 + aead::AES_256_GCM.tag_len() {
                return Err(SnapshotError::Corrupt("truncated".into()));
            }
            let (nonce, sealed) = body.split_at(12);
            let mut buf = sealed.to_vec();
            let mut n = [0u8; 12];
            n.copy_from_slice(nonce);
            let plain = keys
                .aead
                .open_in_place(
                    aead::Nonce::assume_unique_for_key(n),
                    aead::Aad::from(head.to_vec()),
                    &mut buf,
                )
                .map_err(|_| {
                    SnapshotError::Corrupt(
                        "seal check failed (damaged, or another product key)".into(),
                    )
                })?;
            let tag = hmac::sign(&keys.mac, plain);
            if tag.as_ref()[..12] != n {
                return Err(SnapshotError::Corrupt("seal nonce does not match".into()));
            }
            split_parts(version, plain)
        }
        (MODE_INTEGRITY | MODE_SEALED, _) => Err(SnapshotError::ProtectionMismatch),
        (mode, _) => Err(SnapshotError::Corrupt(format!(
            "unknown protection mode {mode}"
        ))),
    }
}

impl From<CodecError> for SnapshotError {
    fn from(e: CodecError) -> Self {
        SnapshotError::Corrupt(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts() -> SnapshotParts {
        SnapshotParts {
            version: VERSION,
            licensing: b"licensing".to_vec(),
            communication: b"comm".to_vec(),
        }
    }

    #[test]
    fn integrity_container_round_trips_and_detects_any_flipped_bit() {
        let bytes = seal(&parts(), &Protection::Integrity);
        assert_eq!(open(&bytes, &Protection::Integrity).unwrap(), parts());
        for i in 11..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            assert!(matches!(
                open(&b, &Protection::Integrity),
                Err(SnapshotError::Corrupt(_))
            ));
        }
    }

    #[test]
    fn sealing_is_deterministic_and_key_bound() {
        let key = Protection::Sealed(ProductKey::new([4; 32]));
        let a = seal(&parts(), &key);
        assert_eq!(a, seal(&parts(), &key));
        assert!(!a.windows(9).any(|w| w == b"licensing"));
        assert_eq!(open(&a, &key).unwrap(), parts());
        let other = Protection::Sealed(ProductKey::new([5; 32]));
        assert!(matches!(open(&a, &other), Err(SnapshotError::Corrupt(_))));
        assert_eq!(
            open(&a, &Protection::Integrity),
            Err(SnapshotError::ProtectionMismatch)
        );
    }

    #[test]
    fn wrong_magic_and_newer_version_are_typed_errors() {
        assert_eq!(
            open(b"not a snapshot", &Protection::Integrity),
            Err(SnapshotError::WrongMagic)
        );
        let mut b = seal(&parts(), &Protection::Integrity);
        b[8..10].copy_from_slice(&(VERSION + 1).to_be_bytes());
        assert_eq!(
            open(&b, &Protection::Integrity),
            Err(SnapshotError::UnsupportedVersion(VERSION + 1))
        );
        b[8..10].copy_from_slice(&0u16.to_be_bytes());
        assert_eq!(
            open(&b, &Protection::Integrity),
            Err(SnapshotError::UnsupportedVersion(0))
        );
    }
}
