//! `DIR/events.log`: the event and alarm log, oldest first.
//!
//! Version 1 (no header): one line per event, `<RFC 3339>\t<message>\t<alarm>`. Version 2: a
//! header line `smart-agent events 2` (followed by ` dropped=<n>` once older entries were
//! dropped), then one line per entry, `<first>\t<message>\t<alarm>\t<count>\t<last>`: a run of
//! identical failures is one entry with a count and the times of its first and last
//! occurrence, and the log keeps at most [`MAX_ENTRIES`] entries (the oldest go first, and
//! are counted). Messages are stored with control characters shown as `\xNN`, so none can
//! break a line or add a field. Readers take both versions; writers write 2; a newer version
//! is refused (exit 3).

use chrono::{DateTime, SecondsFormat, Utc};

use crate::show::Zone;
use crate::text::shown;

/// The log version this harness writes.
pub const VERSION: u32 = 2;
/// The most entries kept.
pub const MAX_ENTRIES: usize = 1000;

const HEADER: &str = "smart-agent events";

/// One entry: an event, or a run of identical failures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub first: DateTime<Utc>,
    pub message: String,
    /// Empty when the event raises no alarm.
    pub alarm: String,
    pub count: u64,
    pub last: DateTime<Utc>,
}

impl Entry {
    /// `<date>  <message>  [<ALARM>]`, and for a run `  (and N more like it, the last on
    /// <date>)`.
    pub fn show(&self, zone: &Zone) -> String {
        let mut line = format!("{}  {}", zone.date(self.first), shown(&self.message));
        if !self.alarm.is_empty() {
            line.push_str(&format!("  [{}]", shown(&self.alarm)));
        }
        if self.count > 1 {
            line.push_str(&format!(
                "  (and {} more like it, the last on {})",
                self.count - 1,
                zone.date(self.last)
            ));
        }
        line
    }
}

/// The log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Log {
    /// Entries dropped to keep the bound.
    pub dropped: u64,
    pub entries: Vec<Entry>,
}

/// Why a log does not load.
pub enum LogError {
    Newer(u32),
    Malformed(String),
}

impl std::fmt::Display for LogError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LogError::Newer(v) => write!(
                f,
                "event log version {v} is newer than this harness reads (1 to {VERSION}): use a newer harness"
            ),
            LogError::Malformed(why) => write!(f, "not an event log: {}", shown(why)),
        }
    }
}

fn time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

impl Log {
    /// Reads either version.
    pub fn parse(text: &str) -> Result<Log, LogError> {
        let mut lines = text.lines().peekable();
        let Some(header) = lines.peek().and_then(|l| l.strip_prefix(HEADER)) else {
            return Log::parse_v1(text);
        };
        let mut words = header.split_whitespace();
        let version: u32 = words
            .next()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| LogError::Malformed("header without a version".into()))?;
        if version > VERSION {
            return Err(LogError::Newer(version));
        }
        if version != 2 {
            return Err(LogError::Malformed(format!("version {version}")));
        }
        let mut log = Log::default();
        for word in words {
            match word.strip_prefix("dropped=").and_then(|n| n.parse().ok()) {
                Some(n) => log.dropped = n,
                None => return Err(LogError::Malformed(format!("header word {word}"))),
            }
        }
        lines.next();
        for (i, line) in lines.enumerate() {
            let bad = || LogError::Malformed(format!("line {}", i + 2));
            let fields: Vec<&str> = line.split('\t').collect();
            let [first, message, alarm, count, last] = fields[..] else {
                return Err(bad());
            };
            log.entries.push(Entry {
                first: time(first).ok_or_else(bad)?,
                message: message.to_string(),
                alarm: alarm.to_string(),
                count: count.parse().ok().filter(|n| *n >= 1).ok_or_else(bad)?,
                last: time(last).ok_or_else(bad)?,
            });
        }
        Ok(log)
    }

    /// Version 1 wrote messages as they were: a line that is not an event continues the
    /// message before it (a line break the manager put in a name).
    fn parse_v1(text: &str) -> Result<Log, LogError> {
        let mut log = Log::default();
        for (i, line) in text.lines().enumerate() {
            let mut fields = line.splitn(3, '\t');
            let (at, message, alarm) = (fields.next(), fields.next(), fields.next());
            match (at.and_then(time), message) {
                (Some(at), Some(message)) => log.entries.push(Entry {
                    first: at,
                    message: shown(message).into_owned(),
                    alarm: shown(alarm.unwrap_or_default()).into_owned(),
                    count: 1,
                    last: at,
                }),
                _ => match log.entries.last_mut() {
                    Some(previous) => {
                        previous.message.push_str("\\x0A");
                        previous.message.push_str(&shown(line));
                    }
                    None => return Err(LogError::Malformed(format!("line {}", i + 1))),
                },
            }
        }
        Ok(log)
    }

    /// Adds `count` occurrences of an event. An identical failure (same message and alarm)
    /// joins the run it repeats: the last entry, or the one before it when the last is a
    /// failure of another operation (two operations failing in turn, e.g. identity and
    /// authorization renewal, make two runs, not a line per attempt).
    pub fn push(&mut self, at: DateTime<Utc>, message: &str, alarm: Option<&str>, count: u64) {
        let message = shown(message).into_owned();
        let alarm = alarm.unwrap_or_default().to_string();
        let n = self.entries.len();
        let is_failure = !alarm.is_empty();
        let same = |e: &Entry| e.message == message && e.alarm == alarm;
        let run = if is_failure && n >= 1 && same(&self.entries[n - 1]) {
            Some(n - 1)
        } else if is_failure
            && n >= 2
            && same(&self.entries[n - 2])
            && !self.entries[n - 1].alarm.is_empty()
        {
            Some(n - 2)
        } else {
            None
        };
        match run {
            Some(i) => {
                let e = &mut self.entries[i];
                e.count = e.count.saturating_add(count);
                e.last = e.last.max(at);
            }
            None => self.entries.push(Entry {
                first: at,
                message,
                alarm,
                count: count.max(1),
                last: at,
            }),
        }
    }

    /// Drops the oldest entries beyond [`MAX_ENTRIES`], counting them.
    pub fn bound(&mut self) {
        let excess = self.entries.len().saturating_sub(MAX_ENTRIES);
        if excess > 0 {
            self.entries.drain(..excess);
            self.dropped = self.dropped.saturating_add(excess as u64);
        }
    }

    /// The current version's text.
    pub fn format(&self) -> String {
        let mut out = format!("{HEADER} {VERSION}");
        if self.dropped > 0 {
            out.push_str(&format!(" dropped={}", self.dropped));
        }
        out.push('\n');
        for e in &self.entries {
            out.push_str(&format!(
                "{}\t{}\t{}\t{}\t{}\n",
                rfc3339(e.first),
                e.message,
                e.alarm,
                e.count,
                rfc3339(e.last)
            ));
        }
        out
    }

    /// What `events` prints.
    pub fn show(&self, zone: &Zone) -> String {
        let mut out = String::new();
        if self.dropped > 0 {
            out.push_str(&format!(
                "({} older entries were dropped to keep the log at {MAX_ENTRIES})\n",
                self.dropped
            ));
        }
        for e in &self.entries {
            out.push_str(&e.show(zone));
            out.push('\n');
        }
        out
    }
}
