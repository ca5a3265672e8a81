//! Expressway's export-limit governor (SPEC §7, 004:1644-1681) in the harness: `session start |
//! end [n]`, `webrtc on|off`, `vcs on|off` (with `--product expressway`), its alarms printed
//! with their texts and logged as events, and its counts in `show license all`.
//!
//! The governor ([`smart_agent::export_limit::ExportLimit`]) is the product's, not the agent's:
//! the agent's snapshot does not hold it. The harness keeps it in `DIR/export-limit`, a file
//! whose absence means the defaults (no sessions, WebRTC off, not a VCS) — so a directory that
//! never used these commands has no such file, every older directory reads as it did, and the
//! CLI state version stays 2:
//!
//! ```text
//! smart-agent export limit 1
//! sessions 2480
//! webrtc off
//! vcs off
//! key off
//! refusing on
//! ```
//! `key` is whether the instance held the `EXPY_Export_Limit_Key` export authorization key
//! when the file was written; each invocation tells the governor again what the agent holds
//! now, so a key granted or returned in between lifts or re-imposes the cap then (with its
//! alarms). `refusing` is the one piece of history the count does not tell: once the limit was
//! reached, new sessions stay refused until the count is below the low watermark.

use smart_agent::export_limit::{
    Admission, AlarmKind, ExportLimit, ExportLimitAlarm, EXPORT_LIMIT_KEY_FEATURE,
};
use smart_agent::Vocabulary;

use crate::session::{Outcome, Session};
use crate::Run;

const HEADER: &str = "smart-agent export limit 1";

/// The governor's state as stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stored {
    pub sessions: u64,
    pub webrtc: bool,
    pub vcs: bool,
    pub key: bool,
    pub refusing: bool,
}

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

impl Stored {
    pub fn parse(text: &str) -> Result<Stored, String> {
        let mut lines = text.lines();
        if lines.next() != Some(HEADER) {
            return Err(format!("not an export limit state (no `{HEADER}` line)"));
        }
        let mut stored = Stored::default();
        let mut seen = Vec::new();
        for line in lines {
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            if seen.contains(&key) {
                return Err(format!("{key} given twice"));
            }
            seen.push(key);
            let flag = || match value {
                "on" => Ok(true),
                "off" => Ok(false),
                _ => Err(format!("{key}: on or off")),
            };
            match key {
                "sessions" => {
                    stored.sessions = value
                        .parse()
                        .map_err(|_| "sessions: a whole number".to_string())?
                }
                "webrtc" => stored.webrtc = flag()?,
                "vcs" => stored.vcs = flag()?,
                "key" => stored.key = flag()?,
                "refusing" => stored.refusing = flag()?,
                other => return Err(format!("unknown line {}", crate::text::shown(other))),
            }
        }
        for needed in ["sessions", "webrtc", "vcs", "key", "refusing"] {
            if !seen.contains(&needed) {
                return Err(format!("no {needed} line"));
            }
        }
        let governor = stored.governor();
        if governor.alarm_active(AlarmKind::Reached) != stored.refusing {
            return Err("refusing does not fit the count and the limit".into());
        }
        Ok(stored)
    }

    pub fn format(&self) -> String {
        format!(
            "{HEADER}\nsessions {}\nwebrtc {}\nvcs {}\nkey {}\nrefusing {}\n",
            self.sessions,
            on_off(self.webrtc),
            on_off(self.vcs),
            on_off(self.key),
            on_off(self.refusing)
        )
    }

    fn of(g: &ExportLimit) -> Stored {
        Stored {
            sessions: g.count(),
            webrtc: g.webrtc(),
            vcs: g.vcs(),
            key: g.export_key_held(),
            refusing: g.alarm_active(AlarmKind::Reached),
        }
    }

    /// The governor in this state, rebuilt through its public calls only (the crate keeps its
    /// inner state private): the sessions are started with the cap lifted, then the cap is
    /// re-imposed — a governor refusing below the limit first reaches it and comes back down.
    /// The alarms of the rebuild are dropped: they were raised when the state was reached.
    fn governor(&self) -> ExportLimit {
        let mut g = ExportLimit::new();
        g.set_webrtc(self.webrtc);
        g.set_export_key_held(true);
        let limit = u64::from(g.limit());
        let target = if self.refusing {
            self.sessions.max(limit)
        } else {
            self.sessions
        };
        let mut left = target;
        while left > 0 {
            let n = u32::try_from(left).unwrap_or(u32::MAX);
            let _ = g.try_start(n);
            left -= u64::from(n);
        }
        g.set_vcs(self.vcs);
        g.set_export_key_held(self.key);
        let mut extra = target - self.sessions;
        while extra > 0 {
            let n = u32::try_from(extra).unwrap_or(u32::MAX);
            g.end(n);
            extra -= u64::from(n);
        }
        while g.poll_alarm().is_some() {}
        g
    }
}

/// The governor of this invocation and the state it was read in.
pub struct Governor {
    pub limit: ExportLimit,
    /// The file's text as read (`None`: no file).
    pub loaded: Option<String>,
}

impl Governor {
    /// From `DIR/export-limit`'s text.
    pub fn load(text: &str) -> Result<Governor, String> {
        let stored = Stored::parse(text)?;
        Ok(Governor {
            limit: stored.governor(),
            loaded: Some(text.to_string()),
        })
    }

    /// A new one (no file yet).
    pub fn new() -> Governor {
        Governor {
            limit: ExportLimit::new(),
            loaded: None,
        }
    }

    /// What the file should hold now.
    pub fn text(&self) -> String {
        Stored::of(&self.limit).format()
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// `<n> of <L> in use`, or without the limit while it is lifted.
pub fn in_use(g: &ExportLimit) -> String {
    if g.is_capped() {
        format!("{} of {} in use", g.count(), g.limit())
    } else {
        format!(
            "{} in use, no limit (the {EXPORT_LIMIT_KEY_FEATURE} export authorization key is held)",
            g.count()
        )
    }
}

/// The alarm texts of SPEC §7, one per line.
fn alarm_lines(alarms: &[ExportLimitAlarm]) -> String {
    alarms.iter().map(|a| format!("{a}\n")).collect()
}

/// Tells the governor whether the agent holds the key now; the alarms that causes, logged.
pub fn sync(s: &mut Session) -> Vec<ExportLimitAlarm> {
    let now = s.now;
    let held = s
        .driver
        .agent()
        .export_key_allowed(EXPORT_LIMIT_KEY_FEATURE, now);
    let Some(g) = s.governor.as_mut() else {
        return Vec::new();
    };
    if g.limit.export_key_held() != held {
        g.limit.set_export_key_held(held);
    }
    drain(s)
}

/// The alarms queued in the governor, logged as events.
fn drain(s: &mut Session) -> Vec<ExportLimitAlarm> {
    let Some(g) = s.governor.as_mut() else {
        return Vec::new();
    };
    let alarms: Vec<ExportLimitAlarm> = std::iter::from_fn(|| g.limit.poll_alarm()).collect();
    for a in &alarms {
        s.log_extra(a.to_string());
    }
    alarms
}

/// Runs `f` on the governor (made if the directory has none), Expressway only.
fn with_governor(f: impl FnOnce(&mut ExportLimit) -> Result<String, String> + 'static) -> Run {
    Box::new(move |s| {
        if s.style.vocabulary != Vocabulary::Expressway {
            return Outcome::refused(
                "session, webrtc and vcs drive Expressway's export-limit governor: give --product expressway",
            );
        }
        if s.governor.is_none() {
            s.governor = Some(Governor::new());
        }
        let mut before = sync(s);
        let Some(g) = s.governor.as_mut() else {
            return Outcome::refused("no governor");
        };
        match f(&mut g.limit) {
            Ok(line) => {
                before.extend(drain(s));
                Outcome::ok(format!("{line}\n{}", alarm_lines(&before)))
            }
            Err(refused) => Outcome::refused(refused),
        }
    })
}

/// `session start [n]`.
pub fn start(n: u32) -> Run {
    with_governor(move |g| {
        match g.try_start(n) {
        Admission::Admitted => Ok(format!(
            "Started {n} encrypted session{}: {}.",
            plural(n.into()),
            in_use(g)
        )),
        Admission::RefusedAtLimit => Err(format!(
            "Refused: the export control limit is reached: {} of {} encrypted sessions in use; new ones are refused until fewer than {} are in use",
            g.count(),
            g.limit(),
            g.low_watermark()
        )),
        Admission::RefusedNoRoom { headroom } => Err(format!(
            "Refused: {n} more encrypted session{} would pass the export control limit: {} of {} in use, room for {headroom}",
            plural(n.into()),
            g.count(),
            g.limit()
        )),
    }
    })
}

/// `session end [n]`.
pub fn end(n: u32) -> Run {
    with_governor(move |g| {
        let ended = g.end(n);
        let only = if ended < n {
            format!(" (only {ended} were in use)")
        } else {
            String::new()
        };
        Ok(format!(
            "Ended {ended} encrypted session{}{only}: {}.",
            plural(ended.into()),
            in_use(g)
        ))
    })
}

/// `the export control limit is <L> (<n> in use)`, or that there is none while the key is held.
fn limit_text(g: &ExportLimit) -> String {
    if g.is_capped() {
        format!(
            "the export control limit is {} ({} in use)",
            g.limit(),
            g.count()
        )
    } else {
        format!(
            "no export control limit while the {EXPORT_LIMIT_KEY_FEATURE} export authorization key is held ({} in use)",
            g.count()
        )
    }
}

/// `webrtc on|off`.
pub fn webrtc(on: bool) -> Run {
    with_governor(move |g| {
        g.set_webrtc(on);
        Ok(format!("WebRTC: {}: {}.", on_off(on), limit_text(g)))
    })
}

/// `vcs on|off`.
pub fn vcs(on: bool) -> Run {
    with_governor(move |g| {
        g.set_vcs(on);
        Ok(if on {
            format!(
                "VCS: on: {}; no export authorization key lifts it.",
                limit_text(g)
            )
        } else {
            format!("VCS: off: {}.", limit_text(g))
        })
    })
}

/// The `show license all` section (Expressway, once the governor was used).
pub fn section(g: &ExportLimit) -> String {
    let mut out = vec![
        "Export Control Limit".to_string(),
        "====================".to_string(),
        format!("Encrypted Sessions In Use: {}", g.count()),
    ];
    out.push(if g.is_capped() {
        format!(
            "Export Control Limit: {} (WebRTC {}{})",
            g.limit(),
            if g.webrtc() { "enabled" } else { "disabled" },
            if g.vcs() { ", VCS" } else { "" }
        )
    } else {
        format!("Export Control Limit: Not Applied ({EXPORT_LIMIT_KEY_FEATURE} held)")
    });
    if g.is_capped() {
        out.push(if g.admitting() {
            "New Sessions: Admitted".to_string()
        } else {
            format!(
                "New Sessions: Refused until fewer than {} are in use",
                g.low_watermark()
            )
        });
        let mut alarms = Vec::new();
        if g.alarm_active(AlarmKind::Approaching) {
            alarms.push("Export control limit approaching");
        }
        if g.alarm_active(AlarmKind::Reached) {
            alarms.push("Export control limit reached");
        }
        out.push(format!(
            "Active Alarms: {}",
            if alarms.is_empty() {
                "None".to_string()
            } else {
                alarms.join(", ")
            }
        ));
    }
    out.join("\n") + "\n"
}
