//! The Unique Device Identifier of a product instance and the UUIDs it and the manager use.
//!
//! A UDI has three spellings (SPEC §2): the long form of `show license udi`
//! (`PID:UCM,SN:37624,UUID:6fe83addc80240bc92dc071ac7a37624`, 002:124), the compact XML code form
//! (`P:UCM,S:37624,U:6fe83add-c802-40bc-92dc-071ac7a37624`) and the request-code form
//! (`PUCM,S37624,U6fe83addc80240bc92dc071ac7a37624`, 004:573). Each parses and prints losslessly
//! for the fields it carries; UUIDs print in lowercase.

use std::fmt;
use std::str::FromStr;

/// A 128-bit UUID, printed hyphenated (`6fe83add-c802-40bc-92dc-071ac7a37624`) by `Display`.
///
/// ```
/// use smart_agent::Uuid;
/// let u: Uuid = "6fe83add-c802-40bc-92dc-071ac7a37624".parse().unwrap();
/// assert_eq!(u.simple(), "6fe83addc80240bc92dc071ac7a37624");
/// assert_eq!(Uuid::parse_simple("6fe83addc80240bc92dc071ac7a37624"), Some(u));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    /// A random (version 4) UUID made of 16 random bytes: the version and variant bits are
    /// set, the rest kept.
    pub fn from_random(mut bytes: [u8; 16]) -> Uuid {
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        Uuid(bytes)
    }

    /// Parses 32 hex digits without hyphens (either case).
    pub fn parse_simple(s: &str) -> Option<Uuid> {
        if s.len() != 32 {
            return None;
        }
        Uuid::from_hex_digits(s.bytes())
    }

    /// Parses the hyphenated 8-4-4-4-12 form (either case).
    pub fn parse_hyphenated(s: &str) -> Option<Uuid> {
        let b = s.as_bytes();
        if b.len() != 36 || HYPHENS.iter().any(|&i| b[i] != b'-') {
            return None;
        }
        let digits = b
            .iter()
            .enumerate()
            .filter(|(i, _)| !HYPHENS.contains(i))
            .map(|(_, &d)| d);
        Uuid::from_hex_digits(digits)
    }

    /// The UUID of exactly 32 hex digits (either case), two a byte.
    fn from_hex_digits(mut digits: impl Iterator<Item = u8>) -> Option<Uuid> {
        fn value(digit: u8) -> Option<u8> {
            (digit as char).to_digit(16).map(|v| v as u8)
        }
        let mut out = [0u8; 16];
        for byte in &mut out {
            *byte = value(digits.next()?)? << 4 | value(digits.next()?)?;
        }
        digits.next().is_none().then_some(Uuid(out))
    }

    /// The 32 lowercase hex digits without hyphens.
    pub fn simple(&self) -> String {
        let mut out = String::with_capacity(32);
        for b in self.0 {
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0xf)] as char);
        }
        out
    }
}

/// Where the hyphenated form has its hyphens.
const HYPHENS: [usize; 4] = [8, 13, 18, 23];
const HEX: &[u8; 16] = b"0123456789abcdef";

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = [b'-'; 36];
        let mut at = 0;
        for b in self.0 {
            if HYPHENS.contains(&at) {
                at += 1;
            }
            out[at] = HEX[usize::from(b >> 4)];
            out[at + 1] = HEX[usize::from(b & 0xf)];
            at += 2;
        }
        // Only ASCII hex digits and hyphens were written.
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Uuid({self})")
    }
}

impl FromStr for Uuid {
    type Err = UdiError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_hyphenated(s)
            .or_else(|| Uuid::parse_simple(s))
            .ok_or(UdiError::InvalidUuid)
    }
}

/// Why a UDI string did not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UdiError {
    /// The product id (`PID`) is missing or empty.
    #[error("the UDI has no product id")]
    MissingPid,
    /// A field is not known, repeated or out of order.
    #[error("unexpected UDI field {0:?}")]
    UnexpectedField(String),
    /// A field value is empty or has characters outside `[A-Za-z0-9._/-]`.
    #[error("invalid value in UDI field {0}")]
    InvalidValue(&'static str),
    /// The UUID is not 32 hex digits (hyphenated in the XML form).
    #[error("invalid UUID in UDI")]
    InvalidUuid,
}

/// A product instance's UDI (SPEC §2).
///
/// ```
/// use smart_agent::Udi;
/// let udi: Udi = "PID:UCM,SN:37624,UUID:6fe83addc80240bc92dc071ac7a37624".parse().unwrap();
/// assert_eq!(udi.to_string(), "PID:UCM,SN:37624,UUID:6fe83addc80240bc92dc071ac7a37624");
/// assert_eq!(udi.code_form(), "P:UCM,S:37624,U:6fe83add-c802-40bc-92dc-071ac7a37624");
/// assert_eq!(udi.request_form(), "PUCM,S37624,U6fe83addc80240bc92dc071ac7a37624");
/// assert_eq!(smart_agent::Udi::parse_code_form(&udi.code_form()).unwrap(), udi);
/// ```
///
/// Fields are private so that every `Udi` is valid: one that is stored in a snapshot always
/// reads back.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Udi {
    pid: String,
    sn: Option<String>,
    vid: Option<String>,
    uuid: Option<Uuid>,
    hid: Option<String>,
    mac: Option<String>,
}

/// The three spellings of each field, in the fixed order of SPEC §2.
const FIELDS: [(&str, &str, &str); 6] = [
    ("PID", "P", "P"),
    ("SN", "S", "S"),
    ("VID", "V", "V"),
    ("UUID", "U", "U"),
    ("HID", "H", "H"),
    ("MAC", "M", "M"),
];
const FIELD_NAMES: [&str; 6] = ["PID", "SN", "VID", "UUID", "HID", "MAC"];

#[derive(Clone, Copy)]
enum Form {
    Long,
    Code,
    Request,
}

fn valid_value(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 64
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'/' | b'-'))
}

fn checked(value: &str, field: &'static str) -> Result<String, UdiError> {
    if valid_value(value) {
        Ok(value.to_string())
    } else {
        Err(UdiError::InvalidValue(field))
    }
}

impl Udi {
    /// A UDI with only a product id (1–64 characters of `[A-Za-z0-9._/-]`).
    ///
    /// ```
    /// use smart_agent::{Udi, Uuid};
    /// let udi = Udi::new("UCM").unwrap().with_serial("37624").unwrap().with_uuid(Uuid([1; 16]));
    /// assert_eq!(udi.to_string(), "PID:UCM,SN:37624,UUID:01010101010101010101010101010101");
    /// assert!(Udi::new("a,b").is_err());
    /// ```
    pub fn new(pid: &str) -> Result<Udi, UdiError> {
        Ok(Udi {
            pid: checked(pid, "PID")?,
            sn: None,
            vid: None,
            uuid: None,
            hid: None,
            mac: None,
        })
    }

    /// With a serial number.
    pub fn with_serial(mut self, sn: &str) -> Result<Udi, UdiError> {
        self.sn = Some(checked(sn, "SN")?);
        Ok(self)
    }

    /// With a version id.
    pub fn with_version_id(mut self, vid: &str) -> Result<Udi, UdiError> {
        self.vid = Some(checked(vid, "VID")?);
        Ok(self)
    }

    /// With an instance UUID.
    pub fn with_uuid(mut self, uuid: Uuid) -> Udi {
        self.uuid = Some(uuid);
        self
    }

    /// With a host id.
    pub fn with_host_id(mut self, hid: &str) -> Result<Udi, UdiError> {
        self.hid = Some(checked(hid, "HID")?);
        Ok(self)
    }

    /// With a MAC address, e.g. `0050.56a1.b2c3`.
    pub fn with_mac(mut self, mac: &str) -> Result<Udi, UdiError> {
        self.mac = Some(checked(mac, "MAC")?);
        Ok(self)
    }

    /// Product id, e.g. `UCM` or `Expressway`.
    pub fn pid(&self) -> &str {
        &self.pid
    }

    /// Serial number.
    pub fn serial(&self) -> Option<&str> {
        self.sn.as_deref()
    }

    /// Version id.
    pub fn version_id(&self) -> Option<&str> {
        self.vid.as_deref()
    }

    /// Instance UUID.
    pub fn uuid(&self) -> Option<Uuid> {
        self.uuid
    }

    /// Host id.
    pub fn host_id(&self) -> Option<&str> {
        self.hid.as_deref()
    }

    /// MAC address.
    pub fn mac(&self) -> Option<&str> {
        self.mac.as_deref()
    }

    fn values(&self) -> [Option<String>; 6] {
        [
            Some(self.pid.clone()),
            self.sn.clone(),
            self.vid.clone(),
            self.uuid.map(|u| u.simple()),
            self.hid.clone(),
            self.mac.clone(),
        ]
    }

    fn print(&self, form: Form) -> String {
        let mut parts = Vec::new();
        for (i, value) in self.values().into_iter().enumerate() {
            let Some(mut value) = value else { continue };
            if i == 3 {
                if let (Form::Code, Some(u)) = (form, self.uuid) {
                    value = u.to_string();
                }
            }
            let (long, code, request) = FIELDS[i];
            parts.push(match form {
                Form::Long => format!("{long}:{value}"),
                Form::Code => format!("{code}:{value}"),
                Form::Request => format!("{request}{value}"),
            });
        }
        parts.join(",")
    }

    fn parse(s: &str, form: Form) -> Result<Udi, UdiError> {
        let mut values: [Option<String>; 6] = Default::default();
        let mut next = 0;
        for part in s.split(',') {
            let found = (next..6).find_map(|i| {
                let (long, code, request) = FIELDS[i];
                let rest = match form {
                    Form::Long => part.strip_prefix(long)?.strip_prefix(':')?,
                    Form::Code => part.strip_prefix(code)?.strip_prefix(':')?,
                    Form::Request => part.strip_prefix(request)?,
                };
                Some((i, rest))
            });
            let Some((i, value)) = found else {
                return Err(UdiError::UnexpectedField(part.chars().take(16).collect()));
            };
            if !valid_value(value) {
                return Err(UdiError::InvalidValue(FIELD_NAMES[i]));
            }
            values[i] = Some(value.to_string());
            next = i + 1;
        }
        let [pid, sn, vid, uuid, hid, mac] = values;
        let uuid = match uuid {
            None => None,
            Some(u) => Some(
                match form {
                    Form::Code => Uuid::parse_hyphenated(&u),
                    Form::Long | Form::Request => Uuid::parse_simple(&u),
                }
                .ok_or(UdiError::InvalidUuid)?,
            ),
        };
        Ok(Udi {
            pid: pid.ok_or(UdiError::MissingPid)?,
            sn,
            vid,
            uuid,
            hid,
            mac,
        })
    }

    /// The long form, as `show license udi` prints it (same as `Display`).
    pub fn long_form(&self) -> String {
        self.print(Form::Long)
    }

    /// The compact form used in XML documents (`P:…,S:…,U:<hyphenated uuid>`).
    pub fn code_form(&self) -> String {
        self.print(Form::Code)
    }

    /// The form carried inside reservation request codes (`PUCM,S37624,U…`).
    pub fn request_form(&self) -> String {
        self.print(Form::Request)
    }

    /// Parses the long form.
    pub fn parse_long_form(s: &str) -> Result<Udi, UdiError> {
        Udi::parse(s, Form::Long)
    }

    /// Parses the compact XML form.
    pub fn parse_code_form(s: &str) -> Result<Udi, UdiError> {
        Udi::parse(s, Form::Code)
    }

    /// Parses the request-code form.
    pub fn parse_request_form(s: &str) -> Result<Udi, UdiError> {
        Udi::parse(s, Form::Request)
    }
}

impl fmt::Display for Udi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.long_form())
    }
}

impl FromStr for Udi {
    type Err = UdiError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Udi::parse_long_form(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn seed_udi_parses_in_every_form() {
        let udi: Udi = "PID:UCM,SN:37624,UUID:6fe83addc80240bc92dc071ac7a37624"
            .parse()
            .unwrap();
        assert_eq!(udi.pid(), "UCM");
        assert_eq!(udi.serial(), Some("37624"));
        assert_eq!(Udi::parse_request_form(&udi.request_form()).unwrap(), udi);
        let expressway = Udi::parse_request_form("PExpressway,S08F8FF3C,V1.0,H320aa69d").unwrap();
        assert_eq!(expressway.version_id(), Some("1.0"));
        assert_eq!(
            expressway.request_form(),
            "PExpressway,S08F8FF3C,V1.0,H320aa69d"
        );
    }

    #[test]
    fn udi_rejects_missing_pid_order_and_bad_uuid() {
        assert_eq!(Udi::parse_long_form("SN:1"), Err(UdiError::MissingPid));
        assert_eq!(
            Udi::parse_long_form("PID:UCM,UUID:00"),
            Err(UdiError::InvalidUuid)
        );
        assert!(matches!(
            Udi::parse_long_form("SN:1,PID:UCM"),
            Err(UdiError::UnexpectedField(_))
        ));
        assert_eq!(
            Udi::parse_code_form("P:UCM,U:6fe83addc80240bc92dc071ac7a37624"),
            Err(UdiError::InvalidUuid)
        );
        assert_eq!(
            Udi::parse_long_form("PID:"),
            Err(UdiError::InvalidValue("PID"))
        );
        assert_eq!(
            Udi::parse_long_form("PID:a b"),
            Err(UdiError::InvalidValue("PID"))
        );
    }

    fn value() -> impl Strategy<Value = String> {
        "[A-Za-z0-9._/-]{1,12}"
    }

    prop_compose! {
        fn any_udi()(pid in value(), sn in proptest::option::of(value()), vid in proptest::option::of(value()),
                     uuid in proptest::option::of(any::<[u8; 16]>()), hid in proptest::option::of(value()),
                     mac in proptest::option::of(value())) -> Udi {
            Udi { pid, sn, vid, uuid: uuid.map(Uuid), hid, mac }
        }
    }

    proptest! {
        #[test]
        fn udi_round_trips_through_every_form(udi in any_udi()) {
            prop_assert_eq!(Udi::parse_long_form(&udi.long_form()).unwrap(), udi.clone());
            prop_assert_eq!(Udi::parse_code_form(&udi.code_form()).unwrap(), udi.clone());
            prop_assert_eq!(Udi::parse_request_form(&udi.request_form()).unwrap(), udi.clone());
        }

        #[test]
        fn canonical_long_form_prints_back_identically(udi in any_udi()) {
            let s = udi.long_form();
            prop_assert_eq!(Udi::parse_long_form(&s).unwrap().long_form(), s);
        }

        #[test]
        fn uuid_round_trips(bytes in any::<[u8; 16]>()) {
            let u = Uuid(bytes);
            prop_assert_eq!(u.to_string().parse::<Uuid>().unwrap(), u);
            prop_assert_eq!(Uuid::parse_simple(&u.simple()), Some(u));
        }
    }
}
