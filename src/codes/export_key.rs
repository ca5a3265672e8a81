//! The export authorization key (SPEC §7, 003:817-883): a manager-signed XML document that
//! lets one registered product instance use one export-restricted feature, held until it is
//! returned. It is signed like the SLR code (detached: [`xmlsig::locate_detached`]), so it is
//! verifiable offline by [`ExportKey::verify_for`], a pure function.
//!
//! ```text
//! <exportAuthorization><exportKey><keyId>UUID</keyId><feature>NAME</feature><piid>UUID</piid>
//!   <udi>P:UCM,S:…</udi><issuedAt>ms since the epoch</issuedAt><environment>production
//!   </environment></exportKey><signature>base64 DER ECDSA P-256</signature></exportAuthorization>
//! ```
//! The signed bytes are the `<exportKey>` element's, CR and LF removed. About 480 characters
//! for a Unified CM UDI and a 40-character feature name.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use chrono::{DateTime, Utc};

use super::xml::{layout_defect, leaf, non_empty, one, only, timestamp, tree};
use super::{CodeError, Defect, UdiForm};
use crate::crypto::{Environment, TrustAnchor, B64};
use crate::udi::{Udi, Uuid};
use crate::xmlsig;

const ROOT: &str = "exportAuthorization";
const KEY: &str = "exportKey";
/// Keys are small; anything larger is refused before parsing.
const MAX_LEN: usize = 16 * 1024;
/// The longest feature name accepted.
pub const MAX_FEATURE_LEN: usize = 64;

/// Whether `feature` is a feature name: 1–64 characters of `[A-Za-z0-9_.-]`, as in
/// `CUCM_Export_Restricted_Authorization_Key` (003:827).
pub fn is_feature_name(feature: &str) -> bool {
    !feature.is_empty()
        && feature.len() <= MAX_FEATURE_LEN
        && feature
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// An export authorization key as issued: what it names, and its signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportKey {
    signed: String,
    signature: Vec<u8>,
    key_id: Uuid,
    feature: String,
    piid: Uuid,
    udi: Udi,
    issued_at: DateTime<Utc>,
    environment: Environment,
}

impl ExportKey {
    /// Parses a key: well formed, every field of its type, a signature present. Nothing is
    /// trusted yet: see [`ExportKey::verify`].
    pub fn parse(text: &str) -> Result<ExportKey, CodeError> {
        parse(text).map_err(CodeError::InvalidExportKey)
    }

    /// Verifies the signature: a trust anchor of `environment`, and the key naming that
    /// environment.
    pub fn verify(
        &self,
        anchors: &[TrustAnchor],
        environment: Environment,
    ) -> Result<(), CodeError> {
        xmlsig::verify_detached(
            self.signed.as_bytes(),
            &self.signature,
            anchors,
            environment,
            self.environment,
        )
        .map_err(CodeError::UntrustedExportKey)
    }

    /// The offline check a product (or the agent at restore) runs: signed by a trusted key
    /// of this environment, for this instance and this feature.
    pub fn verify_for(
        &self,
        anchors: &[TrustAnchor],
        environment: Environment,
        udi: &Udi,
        feature: &str,
    ) -> Result<(), CodeError> {
        self.verify(anchors, environment)?;
        if self.udi != *udi {
            return Err(CodeError::ExportKeyForAnotherInstance(self.udi.long_form()));
        }
        if self.feature != feature {
            return Err(CodeError::ExportKeyForAnotherFeature(self.feature.clone()));
        }
        Ok(())
    }

    /// The key's own id (the manager frees it by this id on return).
    pub fn key_id(&self) -> Uuid {
        self.key_id
    }

    /// The feature it authorizes.
    pub fn feature(&self) -> &str {
        &self.feature
    }

    /// The product instance it was issued to.
    pub fn piid(&self) -> Uuid {
        self.piid
    }

    /// The instance's UDI (signed).
    pub fn udi(&self) -> &Udi {
        &self.udi
    }

    /// When the manager issued it.
    pub fn issued_at(&self) -> DateTime<Utc> {
        self.issued_at
    }

    /// The environment it was signed for.
    pub fn environment(&self) -> Environment {
        self.environment
    }
}

impl fmt::Display for ExportKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<{ROOT}>{}<signature>{}</signature></{ROOT}>",
            self.signed,
            B64.encode(&self.signature)
        )
    }
}

impl FromStr for ExportKey {
    type Err = CodeError;
    fn from_str(s: &str) -> Result<Self, CodeError> {
        ExportKey::parse(s)
    }
}

fn parse(text: &str) -> Result<ExportKey, Defect> {
    if text.trim().is_empty() {
        return Err(Defect::Empty);
    }
    if text.len() > MAX_LEN {
        return Err(Defect::TooLong { max: MAX_LEN });
    }
    let located = xmlsig::locate_detached(text.as_bytes(), KEY).map_err(layout_defect)?;
    if located.root() != ROOT {
        return Err(Defect::WrongRoot {
            expected: ROOT,
            found: located.root().to_string(),
        });
    }
    let root = tree(located.text())?;
    only(&root, &[KEY, "signature"])?;
    let key = one(&root, ROOT, KEY)?;
    only(
        key,
        &["keyId", "feature", "piid", "udi", "issuedAt", "environment"],
    )?;
    let uuid = |element: &'static str| -> Result<Uuid, Defect> {
        let t = non_empty(one(key, KEY, element)?, element)?;
        Uuid::parse_hyphenated(t).ok_or_else(|| Defect::invalid(element, t))
    };
    let feature = non_empty(one(key, KEY, "feature")?, "feature")?;
    if !is_feature_name(feature) {
        return Err(Defect::invalid("feature", feature));
    }
    let udi_text = non_empty(one(key, KEY, "udi")?, "udi")?;
    let udi = Udi::parse_code_form(udi_text).map_err(|error| Defect::WrongUdiForm {
        form: UdiForm::Code,
        error,
    })?;
    let env_text = non_empty(one(key, KEY, "environment")?, "environment")?;
    let environment =
        Environment::parse(env_text).ok_or_else(|| Defect::invalid("environment", env_text))?;
    Ok(ExportKey {
        signed: String::from_utf8_lossy(located.signed_bytes()).into_owned(),
        signature: located.signature().to_vec(),
        key_id: uuid("keyId")?,
        feature: feature.to_string(),
        piid: uuid("piid")?,
        udi,
        issued_at: timestamp(leaf(one(key, KEY, "issuedAt")?)?)?,
        environment,
    })
}

#[cfg(feature = "manager")]
mod issue {
    use super::*;
    use crate::codes::IssueError;
    use crate::crypto::ManagerSigningKey;
    use quick_xml::escape::escape;

    impl ExportKey {
        /// The manager's side: writes and signs a key for `feature`, issued to `piid` / `udi`.
        pub fn issue(
            key_id: Uuid,
            feature: &str,
            piid: Uuid,
            udi: &Udi,
            issued_at: DateTime<Utc>,
            environment: Environment,
            key: &ManagerSigningKey,
        ) -> Result<ExportKey, IssueError> {
            if !is_feature_name(feature) {
                return Err(IssueError::Unrepresentable {
                    field: "feature",
                    reason: "is not a feature name",
                });
            }
            let element = format!(
                "<{KEY}><keyId>{key_id}</keyId><feature>{feature}</feature><piid>{piid}</piid>\
                 <udi>{}</udi><issuedAt>{}</issuedAt><environment>{environment}</environment>\
                 </{KEY}>",
                escape(udi.code_form()),
                issued_at.timestamp_millis().max(0),
            );
            let signature = key
                .sign(element.as_bytes())
                .map_err(|_| IssueError::Random)?;
            let text = format!(
                "<{ROOT}>{element}<signature>{}</signature></{ROOT}>",
                B64.encode(&signature)
            );
            parse(&text).map_err(|_| IssueError::Unrepresentable {
                field: "key",
                reason: "does not read back",
            })
        }
    }
}

#[cfg(all(test, feature = "manager"))]
mod tests {
    use super::*;
    use crate::crypto::ManagerSigningKey;

    fn issued(key: &ManagerSigningKey) -> ExportKey {
        ExportKey::issue(
            Uuid([1; 16]),
            "CUCM_Export_Restricted_Authorization_Key",
            Uuid([2; 16]),
            &"PID:UCM,SN:37624".parse().unwrap(),
            DateTime::from_timestamp_millis(1_800_000_000_123).unwrap(),
            Environment::Production,
            key,
        )
        .unwrap()
    }

    #[test]
    fn a_key_round_trips_and_verifies_offline_only_for_its_instance_and_feature() {
        let signer = ManagerSigningKey::generate().unwrap();
        let key = issued(&signer);
        let text = key.to_string();
        assert_eq!(ExportKey::parse(&text).unwrap(), key);
        let anchors = [TrustAnchor::new(
            signer.public_key().clone(),
            Environment::Production,
        )];
        let udi: Udi = "PID:UCM,SN:37624".parse().unwrap();
        let feature = "CUCM_Export_Restricted_Authorization_Key";
        assert_eq!(
            key.verify_for(&anchors, Environment::Production, &udi, feature),
            Ok(())
        );
        let other: Udi = "PID:UCM,SN:1".parse().unwrap();
        assert!(matches!(
            key.verify_for(&anchors, Environment::Production, &other, feature),
            Err(CodeError::ExportKeyForAnotherInstance(_))
        ));
        assert!(matches!(
            key.verify_for(
                &anchors,
                Environment::Production,
                &udi,
                "EXPY_Export_Limit_Key"
            ),
            Err(CodeError::ExportKeyForAnotherFeature(_))
        ));
        let stranger = [TrustAnchor::new(
            ManagerSigningKey::generate().unwrap().public_key().clone(),
            Environment::Production,
        )];
        assert!(matches!(
            key.verify(&stranger, Environment::Production),
            Err(CodeError::UntrustedExportKey(_))
        ));
        // A changed feature inside the signed element no longer verifies.
        let forged = text.replace(
            "CUCM_Export_Restricted_Authorization_Key",
            "EXPY_Export_Limit_Key",
        );
        let forged = ExportKey::parse(&forged).unwrap();
        assert!(forged.verify(&anchors, Environment::Production).is_err());
        assert!(text.len() < 600, "{}", text.len());
    }

    #[test]
    fn damaged_keys_are_typed_errors() {
        let signer = ManagerSigningKey::generate().unwrap();
        let text = issued(&signer).to_string();
        for cut in 0..text.len() {
            assert!(ExportKey::parse(&text[..cut]).is_err(), "cut at {cut}");
        }
        assert!(matches!(
            ExportKey::parse("<exportAuthorization><exportKey/></exportAuthorization>"),
            Err(CodeError::InvalidExportKey(Defect::Unsigned))
        ));
    }
}
