//! The crypto floor of a run: each signature operation the protocol performs, timed bare with
//! ring in this process right after the simulation, so that the run's time can be set against
//! the pure crypto time of the operations it counted (issue 14 item 3).

use std::hint::black_box;
use std::time::Instant;

use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};

/// Seconds per operation: Ed25519 sign, Ed25519 verify, ECDSA P-256 sign, ECDSA P-256 verify.
pub struct Floor {
    pub ed25519_sign: f64,
    pub ed25519_verify: f64,
    pub ecdsa_sign: f64,
    pub ecdsa_verify: f64,
}

/// How many times each operation is timed (the mean is taken).
const ROUNDS: u32 = 400;

/// Times each operation over 1 KiB messages (about a request or an answer).
pub fn measure() -> Result<Floor, String> {
    let rng = SystemRandom::new();
    let message = [0x5a_u8; 1024];
    let bad = |e: ring::error::Unspecified| format!("crypto floor: {e}");
    let ed_pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(bad)?;
    let ed = Ed25519KeyPair::from_pkcs8(ed_pkcs8.as_ref()).map_err(|e| e.to_string())?;
    let ed_public = UnparsedPublicKey::new(&signature::ED25519, ed.public_key().as_ref().to_vec());
    let ec_alg = &signature::ECDSA_P256_SHA256_ASN1_SIGNING;
    let ec_pkcs8 = EcdsaKeyPair::generate_pkcs8(ec_alg, &rng).map_err(bad)?;
    let ec =
        EcdsaKeyPair::from_pkcs8(ec_alg, ec_pkcs8.as_ref(), &rng).map_err(|e| e.to_string())?;
    let ec_public = UnparsedPublicKey::new(
        &signature::ECDSA_P256_SHA256_ASN1,
        ec.public_key().as_ref().to_vec(),
    );
    let ed_sig = ed.sign(&message);
    let ec_sig = ec.sign(&rng, &message).map_err(bad)?;
    let time = |f: &mut dyn FnMut() -> Result<(), String>| -> Result<f64, String> {
        let start = Instant::now();
        for _ in 0..ROUNDS {
            f()?;
        }
        Ok(start.elapsed().as_secs_f64() / f64::from(ROUNDS))
    };
    Ok(Floor {
        ed25519_sign: time(&mut || {
            black_box(ed.sign(black_box(&message)));
            Ok(())
        })?,
        ed25519_verify: time(&mut || {
            ed_public
                .verify(black_box(&message), ed_sig.as_ref())
                .map_err(bad)
        })?,
        ecdsa_sign: time(&mut || {
            black_box(ec.sign(&rng, black_box(&message)).map_err(bad)?);
            Ok(())
        })?,
        ecdsa_verify: time(&mut || {
            ec_public
                .verify(black_box(&message), ec_sig.as_ref())
                .map_err(bad)
        })?,
    })
}
