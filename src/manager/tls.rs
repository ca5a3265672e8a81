//! The served manager's TLS material: a test CA and a server certificate made with rcgen
//! (ECDSA P-256, ring), and the rustls server configuration (ring provider).
//!
//! The CA's subject names the CA uniquely (`smart-agent reference manager CA` and 8 hex
//! digits of its key's digest): two state directories never make CAs of the same name, so a
//! client trusting one and shown the other fails with "unknown issuer", not with a bad
//! signature (toolchain notes). The CA's parameters are a function of its key, so the server
//! certificate can be issued again (other host names) from the CA key alone.

use std::net::IpAddr;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use ring::digest;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

/// The names every server certificate carries besides those the operator adds.
pub const DEFAULT_SERVER_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The subject common name prefix of every reference manager CA.
pub const CA_NAME_PREFIX: &str = "smart-agent reference manager CA";

/// A certificate and its private key, both PEM.
pub(crate) struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

fn rcgen_error(e: rcgen::Error) -> String {
    format!("certificate generation failed: {e}")
}

/// The CA's parameters, derived from its key alone.
fn ca_params(key: &KeyPair) -> CertificateParams {
    let sum = digest::digest(&digest::SHA256, key.public_key_raw());
    let id: String = sum.as_ref()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, format!("{CA_NAME_PREFIX} {id}"));
    params
        .distinguished_name
        .push(DnType::OrganizationName, "smart-agent");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// A fresh self-signed CA.
pub(crate) fn new_ca() -> Result<Issued, String> {
    let key = KeyPair::generate().map_err(rcgen_error)?;
    let cert = ca_params(&key).self_signed(&key).map_err(rcgen_error)?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Whether `name` can be a subject alternative name: an IP address or a DNS name of letters,
/// digits and hyphens in dot-separated labels.
pub(crate) fn valid_host(name: &str) -> bool {
    name.parse::<IpAddr>().is_ok() || crate::settings::valid_dns_name(name)
}

/// A server certificate for `names` (each [`valid_host`]) with a fresh key, signed by the CA
/// whose key is `ca_key_pem`.
pub(crate) fn issue_server(ca_key_pem: &str, names: &[String]) -> Result<Issued, String> {
    let ca_key = KeyPair::from_pem(ca_key_pem).map_err(rcgen_error)?;
    let issuer = Issuer::new(ca_params(&ca_key), ca_key);
    let mut params = CertificateParams::new(names.to_vec()).map_err(rcgen_error)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "smart-agent reference manager");
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().map_err(rcgen_error)?;
    let cert = params.signed_by(&key, &issuer).map_err(rcgen_error)?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// The rustls server configuration (ring provider, TLS 1.2 and 1.3) presenting the
/// certificate chain in `cert_pem` with the key in `key_pem`.
pub(crate) fn server_config(cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<ServerConfig>, String> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("server certificate: {e}"))?;
    if chain.is_empty() {
        return Err("server certificate: no certificate in the file".into());
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| format!("server key: {e}"))?;
    let provider = crate::crypto::tls_provider();
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("TLS configuration: {e}"))?;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_checked() {
        for ok in [
            "localhost",
            "manager.example.com",
            "10.0.0.1",
            "fe80::1",
            "a-b.c",
        ] {
            assert!(valid_host(ok), "{ok}");
        }
        for bad in [
            "",
            "has space",
            "-lead.example",
            "a..b",
            "ünï.example",
            "x/y",
        ] {
            assert!(!valid_host(bad), "{bad}");
        }
    }

    #[test]
    fn cas_have_distinct_names_and_reissue_keeps_the_issuer() {
        let a = new_ca().unwrap();
        let b = new_ca().unwrap();
        assert_ne!(a.cert_pem, b.cert_pem);
        let names: Vec<String> = DEFAULT_SERVER_NAMES.iter().map(|s| s.to_string()).collect();
        let leaf = issue_server(&a.key_pem, &names).unwrap();
        assert!(server_config(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes()).is_ok());
        // The key must match the certificate.
        let other = issue_server(&a.key_pem, &names).unwrap();
        assert!(server_config(leaf.cert_pem.as_bytes(), other.key_pem.as_bytes()).is_err());
        assert!(server_config(b"", leaf.key_pem.as_bytes()).is_err());
    }
}
