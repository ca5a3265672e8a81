//! `DIR/settings`: the state directory's own record — the CLI state version, the instance's
//! UDI and the manager the directory was first used with — so that later invocations need no
//! manager flags and a slip cannot point the agent at a manager that would not trust it.
//!
//! ```text
//! smart-agent CLI state 2
//! udi PID:UCM,SN:37624,UUID:6fe83addc80240bc92dc071ac7a37624
//! manager embedded
//! ```
//! or, for a manager over HTTPS (certificates and keys as base64 DER, so the directory does not
//! depend on the files they came from; a list of anchors, so keys can rotate):
//! ```text
//! smart-agent CLI state 2
//! udi …
//! manager remote
//! url https://127.0.0.1:8443/SmartTransport
//! environment development
//! ca MIIB…
//! anchor MFkw…
//! ```
//!
//! Versions: 1 had no record (the UDI in `DIR/udi`, the manager implied: embedded when
//! `DIR/manager/` exists, otherwise a remote one given again on every command); 2 is this file.
//! Readers take both; writers write 2; a newer version is refused (exit 3).

use base64::Engine as _;
use smart_agent::{Environment, ManagerPublicKey, TrustAnchor, Udi};

use crate::text::shown;

/// The CLI state version this harness writes.
pub const VERSION: u32 = 2;
/// The oldest it reads.
pub const OLDEST: u32 = 1;

const HEADER: &str = "smart-agent CLI state";

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The manager a directory remembers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Manager {
    /// In-process, state under `DIR/manager/`.
    Embedded,
    /// Over HTTPS.
    Remote(Remote),
}

/// A manager over HTTPS, as remembered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remote {
    pub url: String,
    /// The environment the agent accepts signatures for.
    pub environment: Environment,
    /// The CA certificates (DER) the TLS server must chain to.
    pub cas: Vec<Vec<u8>>,
    /// The manager signing keys (SPKI DER) the agent trusts.
    pub anchors: Vec<Vec<u8>>,
}

impl Remote {
    /// The trust anchors, for the agent's configuration.
    pub fn trust_anchors(&self) -> Result<Vec<TrustAnchor>, String> {
        self.anchors
            .iter()
            .map(|der| {
                ManagerPublicKey::from_spki_der(der)
                    .map(|k| TrustAnchor::new(k, self.environment))
                    .map_err(|e| format!("anchor: {e}"))
            })
            .collect()
    }

    /// The CA certificates as one PEM document.
    pub fn ca_pem(&self) -> String {
        self.cas.iter().map(|der| pem("CERTIFICATE", der)).collect()
    }

    /// `<url> (environment <env>, N CA certificate(s), M trust anchor(s))`, for messages.
    pub fn describe(&self) -> String {
        format!(
            "{} (environment {}, {} CA certificate{}, {} trust anchor{})",
            shown(&self.url),
            self.environment,
            self.cas.len(),
            if self.cas.len() == 1 { "" } else { "s" },
            self.anchors.len(),
            if self.anchors.len() == 1 { "" } else { "s" },
        )
    }
}

/// The record of a version-2 directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub udi: Udi,
    pub manager: Manager,
}

/// Why a record does not load.
#[derive(Debug, PartialEq, Eq)]
pub enum RecordError {
    /// Written by a newer harness.
    Newer(u32),
    /// Not a record this harness wrote.
    Malformed(String),
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordError::Newer(v) => write!(
                f,
                "CLI state version {v} is newer than this harness reads ({OLDEST} to {VERSION}): use a newer harness"
            ),
            RecordError::Malformed(why) => write!(f, "not a CLI state record: {}", shown(why)),
        }
    }
}

fn malformed(why: impl Into<String>) -> RecordError {
    RecordError::Malformed(why.into())
}

impl Record {
    pub fn parse(text: &str) -> Result<Record, RecordError> {
        let mut lines = text.lines();
        let header = lines.next().unwrap_or_default();
        let version = header
            .strip_prefix(HEADER)
            .map(str::trim)
            .ok_or_else(|| malformed("no header line"))?;
        let version: u32 = version
            .parse()
            .map_err(|_| malformed(format!("version {version}")))?;
        if version > VERSION {
            return Err(RecordError::Newer(version));
        }
        if version < 2 {
            return Err(malformed(format!("version {version} has no record file")));
        }
        let (mut udi, mut kind, mut url, mut environment) = (None, None, None, None);
        let (mut cas, mut anchors) = (Vec::new(), Vec::new());
        for line in lines {
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            let once = |slot: &mut Option<String>| {
                if slot.replace(value.to_string()).is_some() {
                    Err(malformed(format!("{key} given twice")))
                } else {
                    Ok(())
                }
            };
            match key {
                "udi" => once(&mut udi)?,
                "manager" => once(&mut kind)?,
                "url" => once(&mut url)?,
                "environment" => once(&mut environment)?,
                "ca" => cas.push(B64.decode(value).map_err(|_| malformed("ca: not base64"))?),
                "anchor" => {
                    let der = B64
                        .decode(value)
                        .map_err(|_| malformed("anchor: not base64"))?;
                    ManagerPublicKey::from_spki_der(&der)
                        .map_err(|e| malformed(format!("anchor: {e}")))?;
                    anchors.push(der)
                }
                "" => {}
                other => return Err(malformed(format!("unknown line {other}"))),
            }
        }
        let udi: Udi = udi
            .ok_or_else(|| malformed("no udi"))?
            .parse()
            .map_err(|e| malformed(format!("udi: {e}")))?;
        let manager = match kind.as_deref() {
            Some("embedded") if url.is_none() && cas.is_empty() && anchors.is_empty() => {
                Manager::Embedded
            }
            Some("remote") => {
                let environment = environment
                    .as_deref()
                    .and_then(Environment::parse)
                    .ok_or_else(|| malformed("remote: no environment"))?;
                let url = url.ok_or_else(|| malformed("remote: no url"))?;
                if anchors.is_empty() {
                    return Err(malformed("remote: no anchor"));
                }
                Manager::Remote(Remote {
                    url,
                    environment,
                    cas,
                    anchors,
                })
            }
            _ => return Err(malformed("manager: embedded or remote")),
        };
        Ok(Record { udi, manager })
    }

    pub fn format(&self) -> String {
        let mut out = format!("{HEADER} {VERSION}\nudi {}\n", self.udi);
        match &self.manager {
            Manager::Embedded => out.push_str("manager embedded\n"),
            Manager::Remote(r) => {
                out.push_str(&format!(
                    "manager remote\nurl {}\nenvironment {}\n",
                    r.url, r.environment
                ));
                for ca in &r.cas {
                    out.push_str(&format!("ca {}\n", B64.encode(ca)));
                }
                for anchor in &r.anchors {
                    out.push_str(&format!("anchor {}\n", B64.encode(anchor)));
                }
            }
        }
        out
    }
}

/// PEM armour for `der`.
pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = B64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The DER of every `label` block of a PEM document.
pub fn pem_blocks(text: &str, label: &str) -> Result<Vec<Vec<u8>>, String> {
    let (begin, end) = (
        format!("-----BEGIN {label}-----"),
        format!("-----END {label}-----"),
    );
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(&begin) {
        let body = &rest[start + begin.len()..];
        let stop = body
            .find(&end)
            .ok_or_else(|| format!("a {label} block without its END line"))?;
        let b64: String = body[..stop].split_whitespace().collect();
        blocks.push(
            B64.decode(b64)
                .map_err(|_| format!("a {label} block that is not base64"))?,
        );
        rest = &body[stop + end.len()..];
    }
    if blocks.is_empty() {
        return Err(format!("no {label} block"));
    }
    Ok(blocks)
}
