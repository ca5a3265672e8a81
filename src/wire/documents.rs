//! The two separately signed documents the manager grants: the identity certificate and the
//! authorization grant. Their raw bytes are kept verbatim and re-verified on restore.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{AnswerError, GrantError, IdentityError};
use crate::crypto::{verify_manager_signature, Environment, SignatureError, TrustAnchor, B64};
use crate::entitlement::Tag;
use crate::time::parse as parse_time;
use crate::udi::{Udi, Uuid};
use crate::xmlsig::enveloped::locate;
#[cfg(feature = "manager")]
use {
    super::xml_out::XmlOut,
    crate::crypto::{ManagerSigningKey, RandomError},
    crate::time::format as format_time,
    crate::xmlsig::enveloped::sign_document,
};

/// The manager-signed identity of a product instance (SPEC §2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityCertificate {
    /// The product-instance id.
    pub piid: Uuid,
    /// The instance's UDI.
    pub udi: Udi,
    /// The device's Ed25519 public key.
    pub public_key: [u8; 32],
    /// Valid from.
    pub not_before: DateTime<Utc>,
    /// Valid until (exclusive): the registration expires at this instant.
    pub not_after: DateTime<Utc>,
    /// Smart Account name.
    pub smart_account: String,
    /// Virtual Account name.
    pub virtual_account: String,
    /// Whether the token allowed export-controlled functionality (SPEC §7).
    pub export_controlled: bool,
    /// The environment of the signing manager.
    pub environment: Environment,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename = "identity")]
struct IdentityXml {
    piid: String,
    udi: String,
    #[serde(rename = "publicKey")]
    public_key: String,
    #[serde(rename = "notBefore")]
    not_before: String,
    #[serde(rename = "notAfter")]
    not_after: String,
    #[serde(rename = "smartAccount")]
    smart_account: String,
    #[serde(rename = "virtualAccount")]
    virtual_account: String,
    #[serde(rename = "exportControlled")]
    export_controlled: bool,
    environment: String,
    #[serde(skip_serializing, default)]
    #[allow(dead_code)]
    signature: Option<String>,
}

/// Serializes and signs an identity certificate (the manager's side).
#[cfg(feature = "manager")]
pub fn encode_identity(
    cert: &IdentityCertificate,
    key: &ManagerSigningKey,
) -> Result<Vec<u8>, RandomError> {
    let xml = IdentityXml {
        piid: cert.piid.to_string(),
        udi: cert.udi.code_form(),
        public_key: B64.encode(cert.public_key),
        not_before: format_time(cert.not_before),
        not_after: format_time(cert.not_after),
        smart_account: cert.smart_account.clone(),
        virtual_account: cert.virtual_account.clone(),
        export_controlled: cert.export_controlled,
        environment: cert.environment.as_str().to_string(),
        signature: None,
    };
    let doc = quick_xml::se::to_string(&xml).map_err(|_| RandomError)?;
    let sig = key.sign(doc.as_bytes())?;
    Ok(sign_document(&doc, "identity", &sig))
}

fn text(raw: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(raw).map_err(|_| "not UTF-8".to_string())
}

fn check_signature(
    raw: &[u8],
    root: &str,
    environment: Environment,
    anchors: Option<(&[TrustAnchor], Environment)>,
) -> Result<Located, DocumentError> {
    let signed =
        locate(raw).map_err(|e| DocumentError::Malformed(AnswerError::from(e).to_string()))?;
    if signed.root != root {
        return Err(DocumentError::Malformed(format!(
            "unexpected root <{}>",
            signed.root
        )));
    }
    let located = Located {
        signed_bytes: signed.signed_bytes(),
        signature: signed.signature,
    };
    if let Some(trust) = anchors {
        verify_located(&located, environment, trust)?;
    }
    Ok(located)
}

/// A signed document's signature, located: the bytes it covers and the signature itself.
#[derive(Clone, Debug)]
pub(crate) struct Located {
    signed_bytes: Vec<u8>,
    signature: Vec<u8>,
}

fn verify_located(
    located: &Located,
    environment: Environment,
    (anchors, expected): (&[TrustAnchor], Environment),
) -> Result<(), DocumentError> {
    verify_manager_signature(
        anchors,
        expected,
        environment,
        &located.signed_bytes,
        &located.signature,
    )
    .map_err(DocumentError::Signature)
}

/// Why a signed document was not accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DocumentError {
    Malformed(String),
    Signature(SignatureError),
}

impl std::fmt::Display for DocumentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DocumentError::Malformed(m) => f.write_str(m),
            DocumentError::Signature(s) => write!(f, "{s}"),
        }
    }
}

impl DocumentError {
    pub(crate) fn into_identity(self) -> AnswerError {
        AnswerError::Identity(match self {
            DocumentError::Malformed(m) => IdentityError::Malformed(m),
            DocumentError::Signature(s) => IdentityError::Signature(s),
        })
    }
    pub(crate) fn into_grant(self) -> AnswerError {
        AnswerError::Grant(match self {
            DocumentError::Malformed(m) => GrantError::Malformed(m),
            DocumentError::Signature(s) => GrantError::Signature(s),
        })
    }
}

/// Parses an identity certificate; with `anchors`, also verifies its signature.
pub(crate) fn parse_identity(
    raw: &[u8],
    anchors: Option<(&[TrustAnchor], Environment)>,
) -> Result<IdentityCertificate, DocumentError> {
    parse_identity_located(raw, anchors).map(|(cert, _)| cert)
}

/// [`parse_identity`], also returning where its signature is (for [`verify_identity`]).
pub(crate) fn parse_identity_located(
    raw: &[u8],
    anchors: Option<(&[TrustAnchor], Environment)>,
) -> Result<(IdentityCertificate, Located), DocumentError> {
    let xml: IdentityXml = quick_xml::de::from_str(text(raw).map_err(DocumentError::Malformed)?)
        .map_err(|e| DocumentError::Malformed(format!("identity: {e}")))?;
    let bad = |what: &str| DocumentError::Malformed(format!("identity: bad {what}"));
    let environment = Environment::parse(&xml.environment).ok_or_else(|| bad("environment"))?;
    let located = check_signature(raw, "identity", environment, anchors)?;
    let public_key: [u8; 32] = B64
        .decode(&xml.public_key)
        .ok()
        .and_then(|k| k.try_into().ok())
        .ok_or_else(|| bad("publicKey"))?;
    let cert = IdentityCertificate {
        piid: xml.piid.parse().map_err(|_| bad("piid"))?,
        udi: Udi::parse_code_form(&xml.udi).map_err(|_| bad("udi"))?,
        public_key,
        not_before: parse_time(&xml.not_before).ok_or_else(|| bad("notBefore"))?,
        not_after: parse_time(&xml.not_after).ok_or_else(|| bad("notAfter"))?,
        smart_account: xml.smart_account,
        virtual_account: xml.virtual_account,
        export_controlled: xml.export_controlled,
        environment,
    };
    if cert.not_after <= cert.not_before {
        return Err(bad("validity"));
    }
    Ok((cert, located))
}

/// Verifies the signature of `cert` where `parse_identity_located(raw, None)` located it:
/// with that parse, the same as `parse_identity(raw, Some(trust))`, without parsing again.
pub(crate) fn verify_identity(
    located: &Located,
    cert: &IdentityCertificate,
    trust: (&[TrustAnchor], Environment),
) -> Result<(), DocumentError> {
    verify_located(located, cert.environment, trust)
}

/// The manager's verdict for one tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum GrantStatus {
    /// Fully served.
    InCompliance,
    /// Not (fully) served.
    OutOfCompliance,
    /// The manager does not know the tag.
    InvalidTag,
}

impl GrantStatus {
    fn as_str(self) -> &'static str {
        match self {
            GrantStatus::InCompliance => "InCompliance",
            GrantStatus::OutOfCompliance => "OutOfCompliance",
            GrantStatus::InvalidTag => "InvalidTag",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        [
            GrantStatus::InCompliance,
            GrantStatus::OutOfCompliance,
            GrantStatus::InvalidTag,
        ]
        .into_iter()
        .find(|g| g.as_str() == s)
    }
}

/// One entry of a grant, validated on its own: a bad entry makes only its tag `Invalid`
/// (SPEC §4, per-tag rule 8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantEntry {
    /// The tag text as the manager wrote it.
    pub tag: String,
    /// The validated content, or why the entry failed validation.
    pub content: Result<GrantEntryContent, String>,
}

/// A grant entry that passed validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantEntryContent {
    /// Count the agent reported.
    pub requested: u32,
    /// Count the manager allocated.
    pub authorized: u32,
    /// The manager's verdict.
    pub status: GrantStatus,
    /// Display name, e.g. `UC Manager Enhanced License (12.x)`.
    pub display_name: Option<String>,
    /// Description, e.g. `UC Manager Enhanced License`.
    pub description: Option<String>,
}

/// A manager-signed authorization grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The product-instance id it is for.
    pub piid: Uuid,
    /// The UDI it is for.
    pub udi: Udi,
    /// The usage report sequence number it answers.
    pub sequence: u64,
    /// When the manager issued it.
    pub issued_at: DateTime<Utc>,
    /// Signed expiry; the agent's deadline is the earlier of this and success + 90 days.
    pub not_after: DateTime<Utc>,
    /// The environment of the signing manager.
    pub environment: Environment,
    /// One entry per tag reported with a count above zero.
    pub entries: Vec<GrantEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename = "grant")]
struct GrantXml {
    piid: String,
    udi: String,
    sequence: u64,
    #[serde(rename = "issuedAt")]
    issued_at: String,
    #[serde(rename = "notAfter")]
    not_after: String,
    environment: String,
    #[serde(rename = "entitlement", default)]
    entries: Vec<GrantEntryXml>,
    #[serde(skip_serializing, default)]
    #[allow(dead_code)]
    signature: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct GrantEntryXml {
    tag: String,
    #[serde(default)]
    requested: String,
    #[serde(default)]
    authorized: String,
    #[serde(default)]
    status: String,
    #[serde(
        rename = "displayName",
        skip_serializing_if = "Option::is_none",
        default
    )]
    display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    description: Option<String>,
}

fn validate_entry(e: GrantEntryXml) -> GrantEntry {
    let content = (|| {
        Tag::parse(&e.tag).map_err(|_| "tag is not a valid entitlement tag".to_string())?;
        let requested: u32 = e
            .requested
            .parse()
            .map_err(|_| "requested is not a count")?;
        let authorized: u32 = e
            .authorized
            .parse()
            .map_err(|_| "authorized is not a count")?;
        let status = GrantStatus::parse(&e.status).ok_or("unknown status")?;
        let consistent = match status {
            GrantStatus::InCompliance => authorized == requested,
            GrantStatus::OutOfCompliance => authorized < requested,
            GrantStatus::InvalidTag => authorized == 0,
        };
        if !consistent {
            return Err("counts disagree with the status".to_string());
        }
        Ok(GrantEntryContent {
            requested,
            authorized,
            status,
            display_name: e.display_name.filter(|s| !s.is_empty()),
            description: e.description.filter(|s| !s.is_empty()),
        })
    })();
    GrantEntry {
        tag: e.tag,
        content,
    }
}

/// Serializes and signs a grant. Entries with an `Err` content are written as an empty status
/// (used by tests of entry validation).
#[cfg(feature = "manager")]
pub fn encode_grant(grant: &Grant, key: &ManagerSigningKey) -> Result<Vec<u8>, RandomError> {
    let doc = grant_xml(grant);
    let sig = key.sign(doc.as_bytes())?;
    Ok(sign_document(&doc, "grant", &sig))
}

/// The grant's document before its signature: what serializing its [`GrantXml`] writes.
#[cfg(feature = "manager")]
fn grant_xml(grant: &Grant) -> String {
    let mut w = XmlOut::with_capacity(320 + 256 * grant.entries.len());
    w.element("grant", |w| {
        w.text("piid", &grant.piid.to_string());
        w.text("udi", &grant.udi.code_form());
        w.value("sequence", grant.sequence);
        w.text("issuedAt", &format_time(grant.issued_at));
        w.text("notAfter", &format_time(grant.not_after));
        w.text("environment", grant.environment.as_str());
        for e in &grant.entries {
            w.element("entitlement", |w| {
                w.text("tag", &e.tag);
                match &e.content {
                    Ok(c) => {
                        w.value("requested", c.requested);
                        w.value("authorized", c.authorized);
                        w.text("status", c.status.as_str());
                        w.opt_text("displayName", c.display_name.as_deref());
                        w.opt_text("description", c.description.as_deref());
                    }
                    Err(_) => {
                        w.text("requested", "");
                        w.text("authorized", "");
                        w.text("status", "");
                    }
                }
            });
        }
    });
    w.finish()
}

pub(crate) fn parse_grant(
    raw: &[u8],
    anchors: Option<(&[TrustAnchor], Environment)>,
) -> Result<Grant, DocumentError> {
    parse_grant_located(raw, anchors).map(|(grant, _)| grant)
}

/// [`parse_grant`], also returning where its signature is (for [`verify_grant`]).
pub(crate) fn parse_grant_located(
    raw: &[u8],
    anchors: Option<(&[TrustAnchor], Environment)>,
) -> Result<(Grant, Located), DocumentError> {
    let xml: GrantXml = quick_xml::de::from_str(text(raw).map_err(DocumentError::Malformed)?)
        .map_err(|e| DocumentError::Malformed(format!("grant: {e}")))?;
    let bad = |what: &str| DocumentError::Malformed(format!("grant: bad {what}"));
    let environment = Environment::parse(&xml.environment).ok_or_else(|| bad("environment"))?;
    let located = check_signature(raw, "grant", environment, anchors)?;
    // Collected in place, the entries would keep the buffer of the larger XML entries.
    let mut entries: Vec<GrantEntry> = xml.entries.into_iter().map(validate_entry).collect();
    entries.shrink_to_fit();
    let grant = Grant {
        piid: xml.piid.parse().map_err(|_| bad("piid"))?,
        udi: Udi::parse_code_form(&xml.udi).map_err(|_| bad("udi"))?,
        sequence: xml.sequence,
        issued_at: parse_time(&xml.issued_at).ok_or_else(|| bad("issuedAt"))?,
        not_after: parse_time(&xml.not_after).ok_or_else(|| bad("notAfter"))?,
        environment,
        entries,
    };
    Ok((grant, located))
}

/// Verifies the signature of `grant` where `parse_grant_located(raw, None)` located it: with
/// that parse, the same as `parse_grant(raw, Some(trust))`, without parsing again.
pub(crate) fn verify_grant(
    located: &Located,
    grant: &Grant,
    trust: (&[TrustAnchor], Environment),
) -> Result<(), DocumentError> {
    verify_located(located, grant.environment, trust)
}

#[cfg(all(test, feature = "manager"))]
mod tests {
    use super::*;

    fn cert() -> IdentityCertificate {
        let t = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        IdentityCertificate {
            piid: Uuid([3; 16]),
            udi: "PID:UCM,SN:1".parse().unwrap(),
            public_key: [5; 32],
            not_before: t,
            not_after: t + chrono::TimeDelta::days(365),
            smart_account: "BU Production Test".into(),
            virtual_account: "TAC & Collab".into(),
            export_controlled: true,
            environment: Environment::Production,
        }
    }

    #[test]
    fn identity_round_trips_and_verifies() {
        let key = ManagerSigningKey::generate().unwrap();
        let raw = encode_identity(&cert(), &key).unwrap();
        let anchors = [TrustAnchor::new(
            key.public_key().clone(),
            Environment::Production,
        )];
        let parsed = parse_identity(&raw, Some((&anchors, Environment::Production))).unwrap();
        assert_eq!(parsed, cert());
        let other = ManagerSigningKey::generate().unwrap();
        let wrong = [TrustAnchor::new(
            other.public_key().clone(),
            Environment::Production,
        )];
        assert_eq!(
            parse_identity(&raw, Some((&wrong, Environment::Production))),
            Err(DocumentError::Signature(SignatureError::Untrusted))
        );
    }

    #[test]
    fn a_bad_grant_entry_fails_alone() {
        let key = ManagerSigningKey::generate().unwrap();
        let t = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let good_tag =
            "regid.2016-07.com.cisco.UCM_Basic,12.0_ef827a2f-f4ae-4ebb-887f-052737063d3a";
        let grant = Grant {
            piid: Uuid([3; 16]),
            udi: "PID:UCM".parse().unwrap(),
            sequence: 2,
            issued_at: t,
            not_after: t,
            environment: Environment::Development,
            entries: vec![
                GrantEntry {
                    tag: good_tag.into(),
                    content: Ok(GrantEntryContent {
                        requested: 2,
                        authorized: 1,
                        status: GrantStatus::OutOfCompliance,
                        display_name: Some("UC Manager Basic License (12.x)".into()),
                        description: None,
                    }),
                },
                GrantEntry {
                    tag: "regid.2016-07.com.cisco.X,1.0_ef827a2f-f4ae-4ebb-887f-052737063d3a"
                        .into(),
                    content: Err("written broken".into()),
                },
            ],
        };
        let raw = encode_grant(&grant, &key).unwrap();
        let parsed = parse_grant(&raw, None).unwrap();
        assert_eq!(parsed.entries[0], grant.entries[0]);
        assert_eq!(
            parsed.entries[1].content,
            Err("requested is not a count".into())
        );
    }

    /// What serde wrote for a grant, before [`grant_xml`] wrote it directly.
    fn grant_by_serde(grant: &Grant) -> String {
        let xml = GrantXml {
            piid: grant.piid.to_string(),
            udi: grant.udi.code_form(),
            sequence: grant.sequence,
            issued_at: format_time(grant.issued_at),
            not_after: format_time(grant.not_after),
            environment: grant.environment.as_str().to_string(),
            entries: grant
                .entries
                .iter()
                .map(|e| match &e.content {
                    Ok(c) => GrantEntryXml {
                        tag: e.tag.clone(),
                        requested: c.requested.to_string(),
                        authorized: c.authorized.to_string(),
                        status: c.status.as_str().to_string(),
                        display_name: c.display_name.clone(),
                        description: c.description.clone(),
                    },
                    Err(_) => GrantEntryXml {
                        tag: e.tag.clone(),
                        requested: String::new(),
                        authorized: String::new(),
                        status: String::new(),
                        display_name: None,
                        description: None,
                    },
                })
                .collect(),
            signature: None,
        };
        quick_xml::se::to_string(&xml).unwrap()
    }

    #[test]
    fn the_grant_is_written_as_serde_wrote_it() {
        let t = DateTime::from_timestamp(1_800_000_000, 123_456_789).unwrap();
        let texts = [
            "",
            "plain",
            "a & b < c > d \" e ' f",
            " spaced\tout\r\nlines ",
            "ünïcødé ✓",
            "]]> <![CDATA[ x ]]>",
            "&amp; already",
        ];
        let mut entries = Vec::new();
        for (n, text) in texts.iter().enumerate() {
            let content = |status, requested, authorized| {
                Ok(GrantEntryContent {
                    requested,
                    authorized,
                    status,
                    display_name: (n % 3 != 0).then(|| text.to_string()),
                    description: (n % 2 == 0).then(|| format!("{text}{n}")),
                })
            };
            entries.push(GrantEntry {
                tag: format!("regid.2016-07.com.cisco.{n}{text}"),
                content: content(GrantStatus::InCompliance, n as u32, n as u32),
            });
            entries.push(GrantEntry {
                tag: text.to_string(),
                content: content(GrantStatus::OutOfCompliance, u32::MAX, 1),
            });
            entries.push(GrantEntry {
                tag: text.to_string(),
                content: Err("bad".into()),
            });
        }
        for entries in [Vec::new(), entries] {
            let grant = Grant {
                piid: Uuid([0xa5; 16]),
                udi: "PID:UCM,SN:1".parse().unwrap(),
                sequence: u64::MAX,
                issued_at: t,
                not_after: t + chrono::TimeDelta::days(90),
                environment: Environment::Development,
                entries,
            };
            assert_eq!(grant_xml(&grant), grant_by_serde(&grant));
        }
    }
}
