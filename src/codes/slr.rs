//! The Specific License Reservation authorization code (SPEC §6; 003:638-700).

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use chrono::{DateTime, NaiveDate, Utc};

use super::xml::{
    digits, layout_defect, leaf, named, non_empty, one, only, opt, timestamp, tree, Node,
};
use super::{CodeError, ConfirmationCode, Defect, ReservationKeyHash, UdiForm};
use crate::crypto::{Environment, TrustAnchor, B64};
use crate::entitlement::Tag;
use crate::udi::{Udi, Uuid};
use crate::xmlsig;

const ROOT: &str = "specificPLR";
const AUTH: &str = "authorizationCode";
const ENTS: &str = "entitlements";
const ENT: &str = "entitlement";

/// How long an SLR code may be, in bytes (a thousand entitlements).
const MAX_LEN: usize = 1 << 20;

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `PERPETUAL` or `TERM`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LicenseType {
    /// Never ends.
    Perpetual,
    /// Ends at the entitlement's end date.
    Term,
}

impl LicenseType {
    /// The spelling in the code.
    pub fn as_str(self) -> &'static str {
        match self {
            LicenseType::Perpetual => "PERPETUAL",
            LicenseType::Term => "TERM",
        }
    }
}

impl fmt::Display for LicenseType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `<entitlement>` of an SLR code.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SlrEntitlement {
    /// `<tag>`.
    pub tag: Tag,
    /// `<count>`: never empty.
    pub count: u32,
    /// `<startDate>` (`2020-Mar-04 UTC`), `None` when empty.
    pub start_date: Option<NaiveDate>,
    /// `<endDate>`, `None` when empty.
    pub end_date: Option<NaiveDate>,
    /// `<licenseType>`.
    pub license_type: LicenseType,
    /// `<displayName>`, e.g. `UC Manager Enhanced License (12.X)`.
    pub display_name: String,
    /// `<tagDescription>`.
    pub tag_description: String,
    /// `<subscriptionID>`, `None` when absent or empty.
    pub subscription_id: Option<String>,
}

/// What a verified SLR code grants — every field signed — and what the manager puts in one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlrClaims {
    /// The product instance id (`<piid>`; `<pid>` and `<productId>` are read too).
    pub piid: Uuid,
    /// When the manager issued the code (milliseconds since the epoch on the wire).
    pub timestamp: DateTime<Utc>,
    /// The instance the code is for (signed `<udi>`, XML code form).
    pub udi: Udi,
    /// The SHA-256 of the request's reservation public key (signed `<reservationKey>`).
    pub reservation_key: ReservationKeyHash,
    /// The manager's environment (signed `<environment>`).
    pub environment: Environment,
    /// `<exportControlled>true</exportControlled>` is present (SPEC §6, §7).
    pub export_controlled: bool,
    /// The reserved entitlements.
    pub entitlements: Vec<SlrEntitlement>,
}

/// An SLR authorization code: `<specificPLR><authorizationCode>…</authorizationCode>
/// <signature>B64</signature><udi>…</udi></specificPLR>`.
///
/// - The signed bytes are the exact bytes of `<authorizationCode>` with every CR and LF removed
///   ([`xmlsig::locate_detached`]); line breaks a person adds anywhere are harmless, an added
///   space breaks the signature.
/// - Inside `<authorizationCode>`: `<flag>`, `<version>`, one of `<piid>`/`<pid>`/`<productId>`
///   (UUID), `<timestamp>` (ms since the epoch), `<entitlements>`, and ours: `<udi>` (XML code
///   form), `<reservationKey>`, `<environment>`, optional `<exportControlled>true
///   </exportControlled>`. Codes of other managers (the seed samples) may lack ours; they parse,
///   and [`SlrCode::verify`] refuses them.
/// - The outer `<udi>` is informational: kept and printed, never trusted.
///
/// `Display` prints `<specificPLR>`, the signed element exactly, the signature in base64 and
/// the outer `<udi>` if there was one, on one line, so `parse(display(x)) == x`.
///
/// ```
/// use smart_agent::codes::{CodeError, Defect, SlrCode};
/// use smart_agent::Environment;
/// let err = SlrCode::parse("<specificPLR><authorizationCode>").unwrap_err();
/// assert_eq!(err, CodeError::InvalidAuthorization(Defect::Truncated));
/// assert_eq!(err.to_string(), "The Reservation Authorization Code is not valid: it is truncated");
///
/// // A code of another manager parses, and is not trusted.
/// let foreign = "<specificPLR><authorizationCode><flag>A</flag><version>C</version>\
///     <piid>6191f5e5-319e-41ff-abba-be220ea4b2e1</piid><timestamp>1585405336190</timestamp>\
///     <entitlements/></authorizationCode><signature>MEQCIA==</signature></specificPLR>";
/// let code = SlrCode::parse(foreign).unwrap();
/// assert_eq!(code.to_string(), foreign);
/// let err = code.verify(&[], Environment::Production).unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "The Reservation Authorization Code is not signed by a trusted Smart Software Manager"
/// );
/// ```
///
/// **Length** (measured in `tests/codes.rs`): 573 characters with no entitlement, 1 333 with 2
/// and 1 705 with 3 for a Unified CM UDI — about 370 per entitlement, depending on its names and
/// dates. The base64 signature is always 96 characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlrCode {
    signed: String,
    signature: Vec<u8>,
    informational_udi: Option<String>,
    flag: String,
    version: String,
    piid: Uuid,
    timestamp: DateTime<Utc>,
    udi: Option<Udi>,
    reservation_key: Option<ReservationKeyHash>,
    environment: Option<Environment>,
    export_controlled: bool,
    entitlements: Vec<SlrEntitlement>,
}

impl SlrCode {
    /// Parses an SLR code: well formed, every field of its type, a signature present.
    /// Nothing is trusted yet: see [`SlrCode::verify`].
    pub fn parse(text: &str) -> Result<SlrCode, CodeError> {
        parse(text).map_err(CodeError::InvalidAuthorization)
    }

    /// The install checks on the signature (SPEC §6): signed by a trust anchor of
    /// `environment`, naming that environment, and carrying the signed `<udi>`,
    /// `<reservationKey>` and `<environment>`. Returns what the code grants; the caller then
    /// compares the UDI, reservation key, piid and timestamp with its own state.
    pub fn verify(
        &self,
        anchors: &[TrustAnchor],
        environment: Environment,
    ) -> Result<SlrClaims, CodeError> {
        // A code that names no environment is checked as ours: if the signature holds, the
        // missing signed field refuses it below.
        let document = self.environment.unwrap_or(environment);
        xmlsig::verify_detached(
            self.signed.as_bytes(),
            &self.signature,
            anchors,
            environment,
            document,
        )
        .map_err(CodeError::UntrustedAuthorization)?;
        self.claims().map_err(CodeError::InvalidAuthorization)
    }

    /// The claims, unverified; an error names the first missing signed field.
    fn claims(&self) -> Result<SlrClaims, Defect> {
        let missing = |element| Defect::MissingElement {
            parent: AUTH,
            element,
        };
        Ok(SlrClaims {
            piid: self.piid,
            timestamp: self.timestamp,
            udi: self.udi.clone().ok_or_else(|| missing("udi"))?,
            reservation_key: self
                .reservation_key
                .ok_or_else(|| missing("reservationKey"))?,
            environment: self.environment.ok_or_else(|| missing("environment"))?,
            export_controlled: self.export_controlled,
            entitlements: self.entitlements.clone(),
        })
    }

    /// The signed bytes: `<authorizationCode>…</authorizationCode>` without CR and LF.
    pub fn signed_bytes(&self) -> &[u8] {
        self.signed.as_bytes()
    }

    /// The DER ECDSA signature.
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// What the device prints after installing this code.
    pub fn confirmation_code(&self) -> ConfirmationCode {
        ConfirmationCode::of_signed_bytes(self.signed.as_bytes())
    }

    /// The product instance id (unverified).
    pub fn piid(&self) -> Uuid {
        self.piid
    }

    /// The issue time (unverified).
    pub fn timestamp(&self) -> DateTime<Utc> {
        self.timestamp
    }

    /// `<flag>` (`A` in every known code).
    pub fn flag(&self) -> &str {
        &self.flag
    }

    /// `<version>` (`C` in every known code).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The signed `<udi>`, if the code has one (unverified).
    pub fn signed_udi(&self) -> Option<&Udi> {
        self.udi.as_ref()
    }

    /// The signed `<reservationKey>`, if the code has one (unverified).
    pub fn reservation_key(&self) -> Option<ReservationKeyHash> {
        self.reservation_key
    }

    /// The signed `<environment>`, if the code has one (unverified).
    pub fn environment(&self) -> Option<Environment> {
        self.environment
    }

    /// The signed export flag (unverified).
    pub fn export_controlled(&self) -> bool {
        self.export_controlled
    }

    /// The entitlements (unverified).
    pub fn entitlements(&self) -> &[SlrEntitlement] {
        &self.entitlements
    }

    /// The outer `<udi>` text: informational, never a reason to trust or refuse.
    pub fn informational_udi(&self) -> Option<&str> {
        self.informational_udi.as_deref()
    }
}

impl fmt::Display for SlrCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<{ROOT}>{}<signature>{}</signature>",
            self.signed,
            B64.encode(&self.signature)
        )?;
        if let Some(udi) = &self.informational_udi {
            write!(f, "<udi>{}</udi>", quick_xml::escape::escape(udi.as_str()))?;
        }
        write!(f, "</{ROOT}>")
    }
}

impl FromStr for SlrCode {
    type Err = CodeError;
    fn from_str(s: &str) -> Result<Self, CodeError> {
        SlrCode::parse(s)
    }
}

fn parse_date(text: &str, element: &'static str) -> Result<Option<NaiveDate>, Defect> {
    if text.is_empty() {
        return Ok(None);
    }
    let bad = || Defect::invalid(element, text);
    let body = text.strip_suffix(" UTC").ok_or_else(bad)?;
    let mut parts = body.split('-');
    let (Some(y), Some(m), Some(d), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    if y.len() != 4 || d.len() != 2 {
        return Err(bad());
    }
    let year: i32 = digits(y, element).map_err(|_| bad())?;
    let day: u32 = digits(d, element).map_err(|_| bad())?;
    let month = MONTHS.iter().position(|&n| n == m).ok_or_else(bad)? as u32 + 1;
    NaiveDate::from_ymd_opt(year, month, day)
        .map(Some)
        .ok_or_else(bad)
}

fn entitlement(node: &Node) -> Result<SlrEntitlement, Defect> {
    only(
        node,
        &[
            "tag",
            "count",
            "startDate",
            "endDate",
            "licenseType",
            "displayName",
            "tagDescription",
            "subscriptionID",
        ],
    )?;
    let tag_text = non_empty(one(node, ENT, "tag")?, "tag")?;
    let tag = Tag::parse(tag_text).map_err(|_| Defect::InvalidTag(tag_text.to_string()))?;
    let count = digits(non_empty(one(node, ENT, "count")?, "count")?, "count")?;
    let start_date = parse_date(leaf(one(node, ENT, "startDate")?)?, "startDate")?;
    let end_date = parse_date(leaf(one(node, ENT, "endDate")?)?, "endDate")?;
    let license_type = match non_empty(one(node, ENT, "licenseType")?, "licenseType")? {
        "PERPETUAL" => LicenseType::Perpetual,
        "TERM" => LicenseType::Term,
        other => return Err(Defect::invalid("licenseType", other)),
    };
    let subscription_id = match opt(node, ENT, "subscriptionID")? {
        Some(n) => Some(leaf(n)?.to_string()).filter(|s| !s.is_empty()),
        None => None,
    };
    Ok(SlrEntitlement {
        tag,
        count,
        start_date,
        end_date,
        license_type,
        display_name: leaf(one(node, ENT, "displayName")?)?.to_string(),
        tag_description: leaf(one(node, ENT, "tagDescription")?)?.to_string(),
        subscription_id,
    })
}

fn parse(text: &str) -> Result<SlrCode, Defect> {
    if text.trim().is_empty() {
        return Err(Defect::Empty);
    }
    if text.len() > MAX_LEN {
        return Err(Defect::TooLong { max: MAX_LEN });
    }
    let located = xmlsig::locate_detached(text.as_bytes(), AUTH).map_err(layout_defect)?;
    if located.root() != ROOT {
        return Err(Defect::WrongRoot {
            expected: ROOT,
            found: located.root().to_string(),
        });
    }
    let root = tree(located.text())?;
    only(&root, &[AUTH, "signature", "udi"])?;
    let informational_udi = match opt(&root, ROOT, "udi")? {
        Some(n) => Some(leaf(n)?.to_string()),
        None => None,
    };
    let auth = one(&root, ROOT, AUTH)?;
    only(
        auth,
        &[
            "flag",
            "version",
            "piid",
            "pid",
            "productId",
            "timestamp",
            "udi",
            "reservationKey",
            "environment",
            "exportControlled",
            ENTS,
        ],
    )?;
    let mut ids = ["piid", "pid", "productId"]
        .into_iter()
        .flat_map(|name| named(auth, name));
    let id = ids.next().ok_or(Defect::MissingElement {
        parent: AUTH,
        element: "piid",
    })?;
    if let Some(second) = ids.next() {
        return Err(Defect::DuplicateElement {
            parent: AUTH,
            element: second.name.clone(),
        });
    }
    let id_text = non_empty(id, "piid")?;
    let piid = Uuid::parse_hyphenated(id_text).ok_or_else(|| Defect::invalid("piid", id_text))?;
    let udi = match opt(auth, AUTH, "udi")? {
        Some(n) => Some(Udi::parse_code_form(non_empty(n, "udi")?).map_err(|error| {
            Defect::WrongUdiForm {
                form: UdiForm::Code,
                error,
            }
        })?),
        None => None,
    };
    let reservation_key = match opt(auth, AUTH, "reservationKey")? {
        Some(n) => {
            let t = non_empty(n, "reservationKey")?;
            Some(
                t.parse()
                    .map_err(|_| Defect::invalid("reservationKey", t))?,
            )
        }
        None => None,
    };
    let environment = match opt(auth, AUTH, "environment")? {
        Some(n) => {
            let t = non_empty(n, "environment")?;
            Some(Environment::parse(t).ok_or_else(|| Defect::invalid("environment", t))?)
        }
        None => None,
    };
    let export_controlled = match opt(auth, AUTH, "exportControlled")? {
        Some(n) => match leaf(n)? {
            "true" => true,
            other => return Err(Defect::invalid("exportControlled", other)),
        },
        None => false,
    };
    let ents = one(auth, AUTH, ENTS)?;
    only(ents, &[ENT])?;
    let entitlements = ents
        .children
        .iter()
        .map(entitlement)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SlrCode {
        // The span starts at `<` and ends after `>`, on character boundaries of the text.
        signed: match located.text().get(located.element_span()) {
            Some(signed) => signed.to_string(),
            None => String::from_utf8_lossy(located.signed_bytes()).into_owned(),
        },
        signature: located.signature().to_vec(),
        informational_udi,
        flag: leaf(one(auth, AUTH, "flag")?)?.to_string(),
        version: leaf(one(auth, AUTH, "version")?)?.to_string(),
        piid,
        timestamp: timestamp(non_empty(one(auth, AUTH, "timestamp")?, "timestamp")?)?,
        udi,
        reservation_key,
        environment,
        export_controlled,
        entitlements,
    })
}

#[cfg(feature = "manager")]
mod issue {
    use super::*;
    use crate::codes::IssueError;
    use crate::crypto::ManagerSigningKey;
    use chrono::Datelike as _;
    use quick_xml::escape::escape;

    fn unrepresentable(field: &'static str, reason: &'static str) -> IssueError {
        IssueError::Unrepresentable { field, reason }
    }

    fn text(field: &'static str, value: &str) -> Result<String, IssueError> {
        if value.chars().any(char::is_control) {
            return Err(unrepresentable(field, "contains a control character"));
        }
        Ok(escape(value).into_owned())
    }

    fn format_date(date: NaiveDate) -> String {
        format!(
            "{:04}-{}-{:02} UTC",
            date.year(),
            MONTHS[date.month0() as usize],
            date.day()
        )
    }

    fn date(field: &'static str, value: Option<NaiveDate>) -> Result<String, IssueError> {
        match value {
            None => Ok(String::new()),
            Some(d) if (0..=9999).contains(&d.year()) => Ok(format_date(d)),
            Some(_) => Err(unrepresentable(field, "has a year outside 0-9999")),
        }
    }

    fn entitlement(e: &SlrEntitlement) -> Result<String, IssueError> {
        let subscription = match &e.subscription_id {
            Some(s) if s.is_empty() => return Err(unrepresentable("subscriptionID", "is empty")),
            Some(s) => text("subscriptionID", s)?,
            None => String::new(),
        };
        Ok(format!(
            "<entitlement><tag>{}</tag><count>{}</count><startDate>{}</startDate>\
             <endDate>{}</endDate><licenseType>{}</licenseType><displayName>{}</displayName>\
             <tagDescription>{}</tagDescription><subscriptionID>{}</subscriptionID></entitlement>",
            escape(e.tag.as_str()),
            e.count,
            date("startDate", e.start_date)?,
            date("endDate", e.end_date)?,
            e.license_type,
            text("displayName", &e.display_name)?,
            text("tagDescription", &e.tag_description)?,
            subscription,
        ))
    }

    impl SlrCode {
        /// The manager's side: writes `claims` as an SLR code (`<piid>`, our signed fields
        /// inside `<authorizationCode>`, the outer `<udi>` copied from the signed one) and signs
        /// it. The timestamp is written in whole milliseconds. The code reads back to exactly
        /// `claims` (with that timestamp), or this refuses.
        pub fn issue(claims: &SlrClaims, key: &ManagerSigningKey) -> Result<SlrCode, IssueError> {
            let ms = claims.timestamp.timestamp_millis();
            if ms < 0 {
                return Err(unrepresentable("timestamp", "is before 1970"));
            }
            let mut element = format!(
                "<{AUTH}><flag>A</flag><version>C</version><piid>{}</piid>\
                 <timestamp>{ms}</timestamp><udi>{}</udi><reservationKey>{}</reservationKey>\
                 <environment>{}</environment>",
                claims.piid,
                escape(claims.udi.code_form()),
                claims.reservation_key,
                claims.environment,
            );
            if claims.export_controlled {
                element.push_str("<exportControlled>true</exportControlled>");
            }
            element.push_str("<entitlements>");
            for e in &claims.entitlements {
                element.push_str(&entitlement(e)?);
            }
            element.push_str(&format!("</entitlements></{AUTH}>"));
            let signature = key
                .sign(element.as_bytes())
                .map_err(|_| IssueError::Random)?;
            let text = format!(
                "<{ROOT}>{element}<signature>{}</signature><udi>{}</udi></{ROOT}>",
                B64.encode(&signature),
                escape(claims.udi.code_form()),
            );
            let code =
                SlrCode::parse(&text).map_err(|_| unrepresentable("code", "does not read back"))?;
            let mut expected = claims.clone();
            expected.timestamp = code.timestamp;
            if code.claims().ok() != Some(expected) || code.timestamp.timestamp_millis() != ms {
                return Err(unrepresentable("code", "does not read back"));
            }
            Ok(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "<specificPLR><authorizationCode><flag>A</flag><version>C</version>\
        <pid>6191f5e5-319e-41ff-abba-be220ea4b2e1</pid><timestamp>1585405336190</timestamp>\
        <entitlements><entitlement><tag>regid.2016-07.com.cisco.UCM_Enhanced,12.0_66d0d1cf-4863-4761-91d0-d01d3eb1949a</tag>\
        <count>1</count><startDate>2020-Mar-04 UTC</startDate><endDate></endDate>\
        <licenseType>TERM</licenseType><displayName>UC &amp; M</displayName><tagDescription/>\
        </entitlement></entitlements></authorizationCode><signature>AAEC</signature></specificPLR>";

    #[test]
    fn a_foreign_code_parses_with_its_fields() {
        let code = SlrCode::parse(MINIMAL).unwrap();
        assert_eq!(code.flag(), "A");
        assert_eq!(code.timestamp().timestamp_millis(), 1585405336190);
        assert_eq!(code.signed_udi(), None);
        assert_eq!(code.informational_udi(), None);
        let e = &code.entitlements()[0];
        assert_eq!(e.display_name, "UC & M");
        assert_eq!(e.start_date, NaiveDate::from_ymd_opt(2020, 3, 4));
        assert_eq!(e.end_date, None);
        assert_eq!(e.subscription_id, None);
        assert_eq!(SlrCode::parse(&code.to_string()).unwrap(), code);
        assert!(code
            .signed_bytes()
            .starts_with(b"<authorizationCode><flag>"));
    }

    #[test]
    fn field_errors_are_named() {
        let cases = [
            ("<count>1</count>", "<count></count>", Defect::EmptyElement("count")),
            ("<count>1</count>", "<count>-1</count>", Defect::invalid("count", "-1")),
            ("TERM", "TEBM", Defect::invalid("licenseType", "TEBM")),
            ("2020-Mar-04 UTC", "2020-mar-04 UTC", Defect::invalid("startDate", "2020-mar-04 UTC")),
            ("2020-Mar-04 UTC", "2020-Feb-30 UTC", Defect::invalid("startDate", "2020-Feb-30 UTC")),
            ("UCM_Enhanced,12.0", "UCM_Enhanced.12.0", Defect::InvalidTag(
                "regid.2016-07.com.cisco.UCM_Enhanced.12.0_66d0d1cf-4863-4761-91d0-d01d3eb1949a".into())),
            ("<pid>", "<piid>x</piid><pid>", Defect::DuplicateElement { parent: AUTH, element: "pid".into() }),
            ("<flag>A</flag>", "", Defect::MissingElement { parent: AUTH, element: "flag" }),
            ("<flag>A</flag>", "<flag>A</flag><extra/>", Defect::UnexpectedElement { parent: AUTH.into(), element: "extra".into() }),
            ("<flag>A</flag>", "<flag a='1'>A</flag>", Defect::UnexpectedAttribute { element: "flag".into() }),
            ("<flag>A</flag>", "<flag>A<b/></flag>", Defect::UnexpectedText { element: "flag".into() }),
            ("<flag>A</flag>", "<flag>A</flag><udi>PID:UCM</udi>", Defect::WrongUdiForm {
                form: UdiForm::Code, error: crate::udi::UdiError::UnexpectedField("PID:UCM".into()) }),
            ("<flag>A</flag>", "<flag>A</flag><exportControlled>false</exportControlled>",
                Defect::invalid("exportControlled", "false")),
            ("<timestamp>1585405336190</timestamp>", "<timestamp>99999999999999999999</timestamp>",
                Defect::invalid("timestamp", "99999999999999999999")),
            ("<signature>AAEC</signature>", "", Defect::Unsigned),
            ("<signature>AAEC</signature>", "<signature>AAE</signature>", Defect::SignatureEncoding),
        ];
        for (from, to, want) in cases {
            let text = MINIMAL.replacen(from, to, 1);
            assert_eq!(parse(&text).err(), Some(want), "{to}");
        }
        assert_eq!(
            parse(&MINIMAL.replace("specificPLR", "other")).err(),
            Some(Defect::WrongRoot {
                expected: ROOT,
                found: "other".into()
            })
        );
        assert_eq!(
            SlrCode::parse(&MINIMAL.replacen("<count>1</count>", "<count></count>", 1))
                .unwrap_err()
                .to_string(),
            "The Reservation Authorization Code is not valid: <count> is empty"
        );
    }

    #[test]
    fn every_cut_is_refused() {
        for cut in 0..MINIMAL.len() {
            assert!(parse(&MINIMAL[..cut]).is_err(), "cut {cut}");
        }
    }
}
