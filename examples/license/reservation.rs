//! License Reservation (SPEC §6) in both products' words. Unified CM (003:392-400): `license
//! smart reservation enable | disable | request | cancel | install "<code>" | install-file
//! <url> | return | return-authorization "<code>"`. Expressway (004:491-498): `xconfiguration
//! License Smart ReservationEnable: On|Off`, `xcommand License Smart Reservation Request |
//! Install "<code>" | Return | ReturnAuthorization "<code>" | Cancel`, answering `OK` where
//! the seed shows it (004:537-540, 897-900).
//!
//! Every step is local: codes travel by copy and paste, nothing is sent. The device lines are
//! SPEC §6's exactly: "Enter the following reservation request code into the CSSM:", then the
//! code; "Authorization code installed." and, for SLR, "Please enter the confirmation code to
//! CSSM account: <code>"; "Enter the following return code into the CSSM:", then the code. A
//! refused command prints the agent's message and changes nothing (exit 1).

use std::path::{Path, PathBuf};

use smart_agent::{EventKind, ReservationKind};

use crate::session::{Outcome, Session};
use crate::show::event_text;
use crate::Run;

/// Which product's command was typed: Expressway's configuration and cancel answer `OK`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Words {
    Ucm,
    Expressway,
}

/// The largest authorization-code file read (a genuine one is a few KiB).
const CODE_FILE_LIMIT: u64 = 1 << 20;

/// The code as pasted: the words the shell split it into joined again, and one pair of
/// double quotes around it dropped (typed inside single quotes, the seed's `"<code>"` keeps
/// them).
fn pasted(words: &[String]) -> String {
    let code = words.join(" ");
    let code = code.trim();
    code.strip_prefix('"')
        .and_then(|c| c.strip_suffix('"'))
        .unwrap_or(code)
        .trim()
        .to_string()
}

/// Runs a local agent call, then lets the driver collect its events (nothing is sent).
fn local<T>(
    s: &mut Session,
    call: impl FnOnce(
        &mut smart_agent::Agent,
        chrono::DateTime<chrono::Utc>,
    ) -> Result<T, smart_agent::Error>,
) -> Result<T, Outcome> {
    let now = s.now;
    let value = call(s.agent(), now).map_err(|e| Outcome::refused(e.to_string()))?;
    s.exchange();
    Ok(value)
}

/// The command's events on stdout, but those its own lines already say.
fn other_events(s: &Session) -> String {
    s.command_events()
        .iter()
        .filter(|e| {
            !matches!(
                e.kind,
                EventKind::ReservationInstalled { .. } | EventKind::ReservationReturned
            )
        })
        .map(|e| event_text(&e.kind, e.alarm().map(|a| a.name())) + "\n")
        .collect()
}

/// `license smart reservation enable`, `xconfiguration License Smart ReservationEnable: On`.
pub fn enable(words: Words) -> Run {
    Box::new(move |s| {
        let was = s.status().reservation.enabled;
        if let Err(refused) = local(s, |a, now| a.reservation_enable(now)) {
            return refused;
        }
        let said = match (words, was) {
            (Words::Expressway, _) => "OK",
            (Words::Ucm, false) => {
                "License Reservation enabled: request a code with `license smart reservation request`."
            }
            (Words::Ucm, true) => "License Reservation is enabled already.",
        };
        Outcome::ok(format!("{said}\n{}", other_events(s)))
    })
}

/// `license smart reservation disable`, `xconfiguration License Smart ReservationEnable: Off`
/// (setting Expressway's configuration to what it is already is `OK` too).
pub fn disable(words: Words) -> Run {
    Box::new(move |s| {
        if words == Words::Expressway && !s.status().reservation.enabled {
            return Outcome::ok("OK\n");
        }
        if let Err(refused) = local(s, |a, now| a.reservation_disable(now)) {
            return refused;
        }
        let said = match words {
            Words::Expressway => "OK",
            Words::Ucm => "License Reservation disabled.",
        };
        Outcome::ok(format!("{said}\n{}", other_events(s)))
    })
}

/// `license smart reservation request`, `xcommand License Smart Reservation Request`.
pub fn request() -> Run {
    Box::new(|s| match local(s, |a, now| a.reservation_request(now)) {
        Ok(code) => Outcome::ok(format!(
            "Enter the following reservation request code into the CSSM:\n{code}\n{}",
            other_events(s)
        )),
        Err(refused) => refused,
    })
}

/// `license smart reservation cancel`, `xcommand License Smart Reservation Cancel`.
pub fn cancel(words: Words) -> Run {
    Box::new(move |s| {
        let outstanding = s.status().reservation.request_code.is_some();
        if let Err(refused) = local(s, |a, now| a.reservation_cancel(now)) {
            return refused;
        }
        let said = match (words, outstanding) {
            (Words::Expressway, _) => "OK",
            (Words::Ucm, true) => {
                "Reservation request cancelled: a code the manager issued for it can still be returned with `license smart reservation return-authorization \"<code>\"`."
            }
            (Words::Ucm, false) => "No reservation request is in progress: nothing to cancel.",
        };
        Outcome::ok(format!("{said}\n{}", other_events(s)))
    })
}

fn installed(s: &mut Session, code: &str) -> Outcome {
    match local(s, |a, now| a.reservation_install(code, now)) {
        Ok(installed) => {
            let mut out = String::from("Authorization code installed.\n");
            if let (ReservationKind::Specific, Some(confirmation)) =
                (installed.kind, installed.confirmation)
            {
                out.push_str(&format!(
                    "Please enter the confirmation code to CSSM account: {confirmation}\n"
                ));
            }
            out.push_str(&other_events(s));
            Outcome::ok(out)
        }
        Err(refused) => refused,
    }
}

/// `license smart reservation install "<code>"`, `xcommand License Smart Reservation Install
/// "<code>"` (or unquoted).
pub fn install(code: Vec<String>) -> Run {
    Box::new(move |s| installed(s, &pasted(&code)))
}

/// `license smart reservation install-file <path | file://…>`.
pub fn install_file(url: String) -> Run {
    Box::new(move |s| {
        let path = match local_path(&url) {
            Ok(path) => path,
            Err(refused) => return Outcome::refused(refused),
        };
        match read_code_file(&path) {
            Ok(code) => installed(s, code.trim()),
            Err(refused) => Outcome::refused(refused),
        }
    })
}

/// The local file `url` names: a path, or a `file://` URL (`file:///path`,
/// `file://localhost/path`, percent-escapes decoded). Anything else — the seed's `sftp://` URL
/// (003:466) included — is refused: the harness reads local files only.
pub fn local_path(url: &str) -> Result<PathBuf, String> {
    let shown = crate::text::shown(url);
    let remote = || {
        format!(
            "{shown}: the harness reads local files only; copy the authorization-code file to this system and give its path or a file:// URL"
        )
    };
    if url.is_empty() {
        return Err("install-file needs a path or a file:// URL".into());
    }
    let Some(rest) = url.strip_prefix("file://") else {
        let scheme = url.split_once("://").map(|(s, _)| s);
        if scheme.is_some_and(|s| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        }) {
            return Err(remote());
        }
        return Ok(PathBuf::from(url));
    };
    let path = match rest.strip_prefix("localhost") {
        Some(p) if p.starts_with('/') => p,
        _ if rest.starts_with('/') => rest,
        _ => return Err(remote()),
    };
    percent_decoded(path)
        .map(PathBuf::from)
        .ok_or_else(|| format!("{shown}: not a file:// URL (a bad %-escape)"))
}

fn percent_decoded(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The code file: a regular file (never a FIFO or device), no larger than any genuine code,
/// UTF-8 text.
fn read_code_file(path: &Path) -> Result<String, String> {
    let fail = |e: &dyn std::fmt::Display| {
        format!("{}: {e}", crate::text::shown(&path.display().to_string()))
    };
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() => return Err(fail(&"not a regular file")),
        Ok(m) if m.len() > CODE_FILE_LIMIT => {
            return Err(fail(&"larger than any authorization code"))
        }
        Ok(_) => {}
        Err(e) => return Err(fail(&e)),
    }
    let bytes = std::fs::read(path).map_err(|e| fail(&e))?;
    String::from_utf8(bytes).map_err(|_| fail(&"not UTF-8 text"))
}

/// `license smart reservation return`, `xcommand License Smart Reservation Return`.
pub fn give_back() -> Run {
    Box::new(|s| match local(s, |a, now| a.reservation_return(now)) {
        Ok(code) => Outcome::ok(format!(
            "Enter the following return code into the CSSM:\n{code}\n{}",
            other_events(s)
        )),
        Err(refused) => refused,
    })
}

/// `license smart reservation return-authorization "<code>"`, `xcommand License Smart
/// Reservation ReturnAuthorization "<code>"`.
pub fn return_authorization(code: Vec<String>) -> Run {
    Box::new(move |s| {
        let code = pasted(&code);
        match local(s, |a, now| a.reservation_return_authorization(&code, now)) {
            Ok(ret) => Outcome::ok(format!(
                "Enter the following return code into the CSSM:\n{ret}\n{}",
                other_events(s)
            )),
            Err(refused) => refused,
        }
    })
}
