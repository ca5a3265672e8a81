//! Entitlement tags: `regid.<yyyy-mm>.com.cisco.<Name>,<version>_<uuid>` (SPEC §2, 002:62-67).

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// An entitlement tag, kept exactly as written so it prints back identically.
///
/// ```
/// use smart_agent::Tag;
/// let tag: Tag = "regid.2016-07.com.cisco.UCM_Enhanced,12.0_66d0d1cf-4863-4761-91d0-d01d3eb1949a"
///     .parse()
///     .unwrap();
/// assert_eq!(tag.name(), "UCM_Enhanced");
/// assert_eq!(tag.version(), "12.0");
/// assert_eq!(tag.date(), "2016-07");
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tag {
    text: String,
    /// Byte ranges of the name and version inside `text`.
    name: (usize, usize),
    version: (usize, usize),
}

/// "Expressway PLR with Export Control" (004:588): a PLR entitlement linked with export
/// control (tag ours).
pub const EXPY_PLR_WITH_EXPORT_CONTROL: &str =
    "regid.2021-05.com.cisco.EXPY_PLR_Export,14.0_6a5a3c1e-0c55-4c8e-9b2b-5d2f0e7a9c01";
/// "Expressway PLR without Export Control" (004:589) (tag ours).
pub const EXPY_PLR_WITHOUT_EXPORT_CONTROL: &str =
    "regid.2021-05.com.cisco.EXPY_PLR_NoExport,14.0_6a5a3c1e-0c55-4c8e-9b2b-5d2f0e7a9c02";
/// "Expressway Advanced Account Security" (004:587): an SLR entitlement "linked with Export
/// Control" (004:1117) (tag ours).
pub const EXPY_ADVANCED_ACCOUNT_SECURITY: &str =
    "regid.2021-05.com.cisco.EXPY_Advanced_Account_Security,14.0_6a5a3c1e-0c55-4c8e-9b2b-5d2f0e7a9c03";

/// Whether a reserved entitlement allows export-controlled functionality when its reserved
/// count is at least one (SPEC §6: "Expressway PLR with Export Control", "Expressway Advanced
/// Account Security").
pub fn is_export_controlled_reservation(tag: &str) -> bool {
    tag == EXPY_PLR_WITH_EXPORT_CONTROL || tag == EXPY_ADVANCED_ACCOUNT_SECURITY
}

const PREFIX: &str = "regid.";
const VENDOR: &str = ".com.cisco.";

impl Tag {
    /// Parses a tag; the error is the crate's 400 [`Error::InvalidTag`].
    pub fn parse(s: &str) -> Result<Tag, Error> {
        Tag::split(s).ok_or(Error::InvalidTag)
    }

    fn split(s: &str) -> Option<Tag> {
        if s.len() > 200 {
            return None;
        }
        let rest = s.strip_prefix(PREFIX)?;
        let (date, rest) = (rest.get(..7)?, rest.get(7..)?);
        let d = date.as_bytes();
        let date_ok = d[..4].iter().all(u8::is_ascii_digit)
            && d[4] == b'-'
            && d[5..].iter().all(u8::is_ascii_digit);
        let rest = rest.strip_prefix(VENDOR)?;
        let (name, rest) = rest.split_once(',')?;
        let (version, uuid) = rest.split_once('_')?;
        let name_ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        let version_ok = !version.is_empty()
            && version.bytes().all(|b| b.is_ascii_digit() || b == b'.')
            && !version.starts_with('.')
            && !version.ends_with('.')
            && !version.contains("..");
        let uuid_ok = crate::udi::Uuid::parse_hyphenated(uuid).is_some();
        if !(date_ok && name_ok && version_ok && uuid_ok) {
            return None;
        }
        let name_start = PREFIX.len() + 7 + VENDOR.len();
        let version_start = name_start + name.len() + 1;
        Some(Tag {
            text: s.to_string(),
            name: (name_start, name_start + name.len()),
            version: (version_start, version_start + version.len()),
        })
    }

    /// The tag as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The entitlement name, e.g. `UCM_Enhanced`.
    pub fn name(&self) -> &str {
        &self.text[self.name.0..self.name.1]
    }

    /// The version after the comma, e.g. `12.0` (002:95).
    pub fn version(&self) -> &str {
        &self.text[self.version.0..self.version.1]
    }

    /// The `yyyy-mm` registration date of the tag.
    pub fn date(&self) -> &str {
        &self.text[PREFIX.len()..PREFIX.len() + 7]
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tag({})", self.text)
    }
}

impl FromStr for Tag {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tag::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn seed_tags_parse() {
        for t in [
            "regid.2017-02.com.cisco.UCM_CUWL,12.0_cc59375a-1cd8-4b36-8366-6f4d2abba965",
            "regid.2016-07.com.cisco.UCM_TelePresenceRoom,12.0_d9a71418-29e9-4c9a-9d3a-1366ebe38e7c",
            "regid.2018-09.com.cisco.EXPY_RMS,1.0_3585abe5-bf6a-49ed-a8d6-a17463d0e734",
        ] {
            assert_eq!(Tag::parse(t).unwrap().as_str(), t);
        }
    }

    #[test]
    fn malformed_tags_are_invalid_parameter() {
        for t in [
            "",
            "regid.2016-07.com.cisco.UCM_Enhanced.12.0_66d0d1cf-4883-4761-91d0-d01d3eb1949a",
            "regid 2016-07.com.cisco.UCM_Enhanced,12.0_66d0d1cf-4863-4761-91d0-d01d3eb1949a",
            "regid.2016-07.com.cisco.UCM_Enhanced,12.0_66d0d1cf-4863-4761-91d0-d01d3eb1949",
            "regid.2016-7.com.cisco.UCM_Enhanced,12.0_66d0d1cf-4863-4761-91d0-d01d3eb1949a",
            "regid.2016-07.com.cisco.,12.0_66d0d1cf-4863-4761-91d0-d01d3eb1949a",
            // A version is dot-separated numbers: no empty part.
            "regid.2016-07.com.cisco.UCM_Enhanced,1..0_66d0d1cf-4863-4761-91d0-d01d3eb1949a",
            "regid.2016-07.com.cisco.UCM_Enhanced,.12_66d0d1cf-4863-4761-91d0-d01d3eb1949a",
            "regid.2016-07.com.cisco.UCM_Enhanced,12._66d0d1cf-4863-4761-91d0-d01d3eb1949a",
        ] {
            assert_eq!(Tag::parse(t), Err(Error::InvalidTag), "{t}");
        }
    }

    proptest! {
        #[test]
        fn tag_round_trips(y in 1990u32..2100, m in 1u32..13, name in "[A-Za-z][A-Za-z0-9_]{0,30}",
                           major in 0u32..100, minor in 0u32..100, uuid in any::<[u8; 16]>()) {
            let s = format!("regid.{y:04}-{m:02}.com.cisco.{name},{major}.{minor}_{}", crate::udi::Uuid(uuid));
            let tag = Tag::parse(&s).unwrap();
            prop_assert_eq!(tag.to_string(), s.clone());
            prop_assert_eq!(tag.name(), name.as_str());
            prop_assert_eq!(tag.version(), format!("{major}.{minor}"));
            prop_assert_eq!(Tag::parse(tag.as_str()).unwrap(), tag);
        }

        #[test]
        fn tag_parse_never_panics(s in "\\PC{0,120}") {
            let _ = Tag::parse(&s);
        }
    }
}
