//! Keys, signatures and trust (SPEC §2), all with ring.
//!
//! - The device signs with **Ed25519**; its key is made from a 32-byte seed chosen at
//!   registration and kept in the snapshot (`Ed25519KeyPair::from_seed_unchecked`), so signatures
//!   are deterministic for a fixed seed.
//! - The manager signs with **ECDSA P-256 / SHA-256** (DER); its public keys travel as SPKI PEM.
//! - The agent accepts a manager signature only from a configured [`TrustAnchor`] of its own
//!   [`Environment`]; a development key never verifies as production.
//!
//! Randomness comes through the crate's own [`Random`] trait: ring's `SecureRandom` is sealed,
//! so it cannot be the seam that tests replace.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use ring::rand::SecureRandom as _;
use ring::signature::{self, KeyPair as _};

/// The standard base64 alphabet with padding, used for every signature and key on the wire.
pub(crate) const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The one rustls crypto provider of every TLS endpoint in the crate (transport clients,
/// manager server): ring, set explicitly. ureq panics at first use without one, and a
/// default provider could pull aws-lc-rs (a C build) into the tree.
pub(crate) fn tls_provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}

/// A source of random bytes for nonces, key seeds and identifiers.
pub trait Random: Send {
    /// Fills `dest` with random bytes.
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), RandomError>;
}

/// The random source failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the random number generator failed")]
pub struct RandomError;

/// The operating system's random source (ring's `SystemRandom`).
#[derive(Debug)]
pub struct SystemRandom(ring::rand::SystemRandom);

impl Default for SystemRandom {
    fn default() -> Self {
        SystemRandom::new()
    }
}

impl SystemRandom {
    /// A new handle to the system source.
    pub fn new() -> Self {
        SystemRandom(ring::rand::SystemRandom::new())
    }
}

impl Random for SystemRandom {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), RandomError> {
        self.0.fill(dest).map_err(|_| RandomError)
    }
}

/// A reproducible stream (HMAC-SHA256 of the seed over a counter) for tests, simulations and
/// demos. Never use it for a real product instance: its keys are predictable.
///
/// ```
/// use smart_agent::{DeterministicRandom, Random};
/// let (mut a, mut b) = (DeterministicRandom::new(7), DeterministicRandom::new(7));
/// let (mut x, mut y) = ([0u8; 40], [0u8; 40]);
/// a.fill(&mut x).unwrap();
/// b.fill(&mut y).unwrap();
/// assert_eq!(x, y);
/// ```
pub struct DeterministicRandom {
    key: ring::hmac::Key,
    counter: u64,
}

impl DeterministicRandom {
    /// A stream determined by `seed`.
    pub fn new(seed: u64) -> Self {
        DeterministicRandom {
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &seed.to_be_bytes()),
            counter: 0,
        }
    }
}

impl fmt::Debug for DeterministicRandom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeterministicRandom")
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

impl Random for DeterministicRandom {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), RandomError> {
        for chunk in dest.chunks_mut(32) {
            let block = ring::hmac::sign(&self.key, &self.counter.to_be_bytes());
            self.counter += 1;
            chunk.copy_from_slice(&block.as_ref()[..chunk.len()]);
        }
        Ok(())
    }
}

/// Fills a fixed-size array from a random source.
pub(crate) fn random_array<const N: usize>(rng: &mut dyn Random) -> Result<[u8; N], RandomError> {
    let mut out = [0u8; N];
    rng.fill(&mut out)?;
    Ok(out)
}

/// Which manager deployment a signed document comes from (SPEC §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Environment {
    /// Cisco's production servers, or a manager configured as such.
    Production,
    /// A development or test manager; never trusted by a production agent.
    Development,
}

impl Environment {
    /// `production` or `development`, as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Production => "production",
            Environment::Development => "development",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(s: &str) -> Option<Environment> {
        match s {
            "production" => Some(Environment::Production),
            "development" => Some(Environment::Development),
            _ => None,
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The device's Ed25519 key, made from a 32-byte seed. `Debug` shows only the public key.
#[derive(Clone)]
pub struct DeviceKey {
    seed: [u8; 32],
    /// The key pair, made from the seed once and shared by clones: making it costs a
    /// base-point multiplication, as much again as a signature.
    pair: Option<Arc<signature::Ed25519KeyPair>>,
}

impl PartialEq for DeviceKey {
    /// The same seed is the same key (the pair is made from it).
    fn eq(&self, other: &DeviceKey) -> bool {
        self.seed == other.seed
    }
}

impl Eq for DeviceKey {}

impl DeviceKey {
    /// The key for `seed`.
    pub fn from_seed(seed: [u8; 32]) -> DeviceKey {
        // from_seed_unchecked only fails for a seed of the wrong length, which the type rules
        // out; without a pair the public key and signatures read as zeros.
        let pair = signature::Ed25519KeyPair::from_seed_unchecked(&seed)
            .ok()
            .map(Arc::new);
        DeviceKey { seed, pair }
    }

    /// A fresh key from `rng`.
    pub fn generate(rng: &mut dyn Random) -> Result<DeviceKey, RandomError> {
        Ok(DeviceKey::from_seed(random_array(rng)?))
    }

    /// The seed, for the snapshot.
    pub(crate) fn seed(&self) -> &[u8; 32] {
        &self.seed
    }

    /// The 32-byte public key.
    pub fn public_key(&self) -> [u8; 32] {
        let mut p = [0u8; 32];
        if let Some(pair) = &self.pair {
            p.copy_from_slice(pair.public_key().as_ref());
        }
        p
    }

    /// Signs `msg` (64 bytes, deterministic).
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        let mut out = [0u8; 64];
        if let Some(pair) = &self.pair {
            out.copy_from_slice(pair.sign(msg).as_ref());
        }
        out
    }
}

impl fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceKey(public {})", B64.encode(self.public_key()))
    }
}

/// Verifies an Ed25519 signature by a device public key.
pub fn verify_device_signature(public_key: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    signature::UnparsedPublicKey::new(&signature::ED25519, public_key)
        .verify(msg, sig)
        .is_ok()
}

/// The DER prefix of a P-256 SubjectPublicKeyInfo; the 65-byte uncompressed point follows.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// Why a manager public key did not load.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Not a `PUBLIC KEY` PEM block.
    #[error("not a PEM public key")]
    NotPem,
    /// Not a P-256 SubjectPublicKeyInfo with an uncompressed point.
    #[error("not an ECDSA P-256 public key")]
    NotP256,
    /// A private key (PKCS#8) that ring rejected.
    #[error("invalid ECDSA P-256 private key")]
    BadPrivateKey,
}

/// A manager's ECDSA P-256 public key (the 65-byte uncompressed point).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ManagerPublicKey([u8; 65]);

impl ManagerPublicKey {
    /// Loads a DER SubjectPublicKeyInfo, checking and stripping the P-256 prefix.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        let point = der
            .strip_prefix(&P256_SPKI_PREFIX[..])
            .ok_or(KeyError::NotP256)?;
        ManagerPublicKey::from_point(point)
    }

    /// Loads an uncompressed point (`04 || x || y`).
    pub fn from_point(point: &[u8]) -> Result<Self, KeyError> {
        let arr: [u8; 65] = point.try_into().map_err(|_| KeyError::NotP256)?;
        if arr[0] != 4 {
            return Err(KeyError::NotP256);
        }
        Ok(ManagerPublicKey(arr))
    }

    /// Loads a `-----BEGIN PUBLIC KEY-----` PEM block.
    pub fn from_spki_pem(pem: &str) -> Result<Self, KeyError> {
        let body = pem
            .trim()
            .strip_prefix("-----BEGIN PUBLIC KEY-----")
            .and_then(|s| s.trim_end().strip_suffix("-----END PUBLIC KEY-----"))
            .ok_or(KeyError::NotPem)?;
        let b64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let der = B64.decode(b64).map_err(|_| KeyError::NotPem)?;
        ManagerPublicKey::from_spki_der(&der)
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn to_spki_der(&self) -> Vec<u8> {
        [&P256_SPKI_PREFIX[..], &self.0[..]].concat()
    }

    /// The PEM SubjectPublicKeyInfo, 64 characters a line.
    pub fn to_spki_pem(&self) -> String {
        let b64 = B64.encode(self.to_spki_der());
        let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END PUBLIC KEY-----\n");
        pem
    }

    /// The uncompressed point.
    pub fn point(&self) -> &[u8; 65] {
        &self.0
    }

    fn verifies(&self, msg: &[u8], sig: &[u8]) -> bool {
        signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, &self.0[..])
            .verify(msg, sig)
            .is_ok()
    }
}

impl fmt::Debug for ManagerPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex: String = self.0[1..9].iter().map(|b| format!("{b:02x}")).collect();
        write!(f, "ManagerPublicKey({hex}…)")
    }
}

/// A manager key the product trusts, and the environment it signs for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TrustAnchor {
    /// The manager's public key.
    pub key: ManagerPublicKey,
    /// The environment whose documents this key may sign.
    pub environment: Environment,
}

impl TrustAnchor {
    /// An anchor for `key` in `environment`.
    pub fn new(key: ManagerPublicKey, environment: Environment) -> Self {
        TrustAnchor { key, environment }
    }
}

/// Why a manager signature was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The signature is not base64 of a DER signature.
    #[error("signature is not valid base64")]
    Encoding,
    /// No configured anchor verifies the signature.
    #[error("signature does not verify with any trusted key")]
    Untrusted,
    /// The document or the key that verifies it belongs to another environment.
    #[error("signed for the {signed} environment, expected {expected}")]
    WrongEnvironment {
        /// The environment of the key or document.
        signed: Environment,
        /// The agent's environment.
        expected: Environment,
    },
}

/// Verifies a manager signature over `msg`: it must come from an anchor of the agent's own
/// environment, and the document must name that environment.
pub(crate) fn verify_manager_signature(
    anchors: &[TrustAnchor],
    expected: Environment,
    document_environment: Environment,
    msg: &[u8],
    sig: &[u8],
) -> Result<(), SignatureError> {
    // Anchors of our own environment first, so that a key listed for both environments
    // verifies as ours whatever the order of the list.
    let own = anchors
        .iter()
        .filter(|a| a.environment == expected)
        .any(|a| a.key.verifies(msg, sig));
    if own {
        return if document_environment == expected {
            Ok(())
        } else {
            Err(SignatureError::WrongEnvironment {
                signed: document_environment,
                expected,
            })
        };
    }
    match anchors
        .iter()
        .find(|a| a.environment != expected && a.key.verifies(msg, sig))
    {
        Some(other) => Err(SignatureError::WrongEnvironment {
            signed: other.environment,
            expected,
        }),
        None => Err(SignatureError::Untrusted),
    }
}

/// A manager's ECDSA P-256 signing key. Signatures are randomized (ring's `SystemRandom`).
pub struct ManagerSigningKey {
    pkcs8: Vec<u8>,
    pair: signature::EcdsaKeyPair,
    public: ManagerPublicKey,
}

impl ManagerSigningKey {
    /// A fresh key.
    pub fn generate() -> Result<Self, RandomError> {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = signature::EcdsaKeyPair::generate_pkcs8(
            &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            &rng,
        )
        .map_err(|_| RandomError)?;
        Self::from_pkcs8(pkcs8.as_ref()).map_err(|_| RandomError)
    }

    /// Loads a PKCS#8 document made by [`ManagerSigningKey::pkcs8`].
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, KeyError> {
        let rng = ring::rand::SystemRandom::new();
        let pair = signature::EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            pkcs8,
            &rng,
        )
        .map_err(|_| KeyError::BadPrivateKey)?;
        let public = ManagerPublicKey::from_point(pair.public_key().as_ref())?;
        Ok(ManagerSigningKey {
            pkcs8: pkcs8.to_vec(),
            pair,
            public,
        })
    }

    /// The PKCS#8 document, for the manager's own storage.
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The public key.
    pub fn public_key(&self) -> &ManagerPublicKey {
        &self.public
    }

    /// Signs `msg`: DER ECDSA P-256 / SHA-256.
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, RandomError> {
        let rng = ring::rand::SystemRandom::new();
        self.pair
            .sign(&rng, msg)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| RandomError)
    }
}

impl fmt::Debug for ManagerSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ManagerSigningKey({:?})", self.public)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spki_pem_round_trips() {
        let key = ManagerSigningKey::generate().unwrap();
        let pem = key.public_key().to_spki_pem();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert_eq!(
            &ManagerPublicKey::from_spki_pem(&pem).unwrap(),
            key.public_key()
        );
        assert_eq!(
            ManagerPublicKey::from_spki_der(&[0x30, 0x59]),
            Err(KeyError::NotP256)
        );
    }

    #[test]
    fn development_key_never_verifies_as_production() {
        let key = ManagerSigningKey::generate().unwrap();
        let sig = key.sign(b"doc").unwrap();
        let dev = [TrustAnchor::new(
            key.public_key().clone(),
            Environment::Development,
        )];
        let prod = Environment::Production;
        assert_eq!(
            verify_manager_signature(&dev, prod, prod, b"doc", &sig),
            Err(SignatureError::WrongEnvironment {
                signed: Environment::Development,
                expected: prod
            })
        );
        let dev_env = Environment::Development;
        assert_eq!(
            verify_manager_signature(&dev, dev_env, dev_env, b"doc", &sig),
            Ok(())
        );
        assert_eq!(
            verify_manager_signature(&dev, dev_env, dev_env, b"dog", &sig),
            Err(SignatureError::Untrusted)
        );
        // The same key listed for both environments verifies as production, in either order.
        let both = [
            dev[0].clone(),
            TrustAnchor::new(key.public_key().clone(), Environment::Production),
        ];
        assert_eq!(
            verify_manager_signature(&both, prod, prod, b"doc", &sig),
            Ok(())
        );
    }

    #[test]
    fn device_signatures_are_deterministic_for_a_seed() {
        let k = DeviceKey::from_seed([9; 32]);
        assert_eq!(k.sign(b"m"), DeviceKey::from_seed([9; 32]).sign(b"m"));
        assert!(verify_device_signature(
            &k.public_key(),
            b"m",
            &k.sign(b"m")
        ));
        assert!(!verify_device_signature(
            &k.public_key(),
            b"n",
            &k.sign(b"m")
        ));
        assert!(!format!("{k:?}").contains(&B64.encode([9u8; 32])));
    }
}
