//! `show license status | all | summary | usage | udi`: the layouts of `shared/layouts/`,
//! printed from the agent's plain-data `Status` (SPEC §10).

use chrono::{DateTime, FixedOffset, Offset, TimeDelta, Utc};
use smart_agent::export_limit::ExportLimit;
use smart_agent::status::{Attempt, InstalledReservation, Outcome};
use smart_agent::{
    ExportKeyState, ExportKeyStatus, RegistrationState, ReservationKind, Status, TagStatus,
    Vocabulary,
};

use crate::text::shown;

/// The agent version `show license all` prints (ours: the crate's version).
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// A named fixed offset for dates (`IST=+05:30`); UTC by default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Zone {
    pub name: String,
    pub offset: FixedOffset,
}

impl Default for Zone {
    fn default() -> Self {
        Zone {
            name: "UTC".into(),
            offset: Utc.fix(),
        }
    }
}

impl Zone {
    /// Parses `NAME=+HH:MM` / `NAME=-HH:MM`.
    pub fn parse(s: &str) -> Option<Zone> {
        let (name, offset) = s.split_once('=')?;
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphabetic()) {
            return None;
        }
        let sign = match offset.get(..1)? {
            "+" => 1,
            "-" => -1,
            _ => return None,
        };
        let (h, m) = offset.get(1..)?.split_once(':')?;
        if h.len() != 2 || m.len() != 2 {
            return None;
        }
        let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
        if h > 23 || m > 59 {
            return None;
        }
        Some(Zone {
            name: name.to_string(),
            offset: FixedOffset::east_opt(sign * (h * 3600 + m * 60))?,
        })
    }

    /// `%b %-d %H:%M:%S %Y <zone>` (002:77), e.g. `Jan 26 15:11:23 2018 IST`.
    pub fn date(&self, t: DateTime<Utc>) -> String {
        format!(
            "{} {}",
            t.with_timezone(&self.offset).format("%b %-d %H:%M:%S %Y"),
            self.name
        )
    }
}

/// How `show` prints: vocabulary and zone.
pub struct Style {
    pub vocabulary: Vocabulary,
    pub zone: Zone,
}

/// `<message>` or `<message>  [<ALARM>]`: how every command shows an event (control
/// characters in names from the manager shown as `\xNN`).
pub fn event_text(message: &dyn std::fmt::Display, alarm: Option<&str>) -> String {
    let message = message.to_string();
    let message = shown(&message);
    match alarm {
        Some(alarm) => format!("{message}  [{alarm}]"),
        None => message.into_owned(),
    }
}

impl Style {
    /// `<date>  <message>  [<ALARM>]`, the date in the style's zone.
    pub fn event_line(&self, e: &smart_agent::Event) -> String {
        let text = event_text(&e.kind, e.alarm().map(|a| a.name()));
        format!("{}  {text}", self.zone.date(e.at))
    }
}

fn attempt(style: &Style, label: &str, a: &Attempt, out: &mut Vec<String>) {
    match &a.outcome {
        Outcome::Succeeded => {
            out.push(format!("  {label}: SUCCEEDED on {}", style.zone.date(a.at)))
        }
        Outcome::Failed { reason } => {
            out.push(format!("  {label}: FAILED on {}", style.zone.date(a.at)));
            out.push(format!(
                "    Failure reason: {}",
                shown(&reason.to_string())
            ));
        }
    }
}

fn remaining(d: TimeDelta) -> String {
    let s = d.num_seconds().max(0);
    format!(
        "{} days, {} hours, {} minutes, {} seconds",
        s / 86_400,
        s % 86_400 / 3_600,
        s % 3_600 / 60,
        s % 60
    )
}

/// The registration lines both `status` and `summary` share, up to the accounts.
fn registration_head(st: &Status, v: Vocabulary) -> Vec<String> {
    let r = &st.registration;
    let mut out = vec![
        "Registration:".to_string(),
        format!("  Status: {}", r.state.text(v)),
    ];
    if let Some(sa) = &r.smart_account {
        out.push(format!("  Smart Account: {}", shown(sa)));
    }
    if let Some(va) = &r.virtual_account {
        out.push(format!("  Virtual Account: {}", shown(va)));
    }
    out
}

/// What the displays print: the agent's status, its export keys, and the product's
/// export-limit governor once used.
pub struct View {
    pub status: Status,
    pub export_keys: Vec<ExportKeyStatus>,
    pub governor: Option<ExportLimit>,
}

/// The `show license status` block.
pub fn status(st: &Status, style: &Style) -> String {
    let v = style.vocabulary;
    let z = &style.zone;
    let r = &st.registration;
    let mut out = vec!["Smart Licensing is ENABLED".to_string(), String::new()];
    if st.reservation.enabled {
        out.push("License Reservation is ENABLED".to_string());
        out.push(String::new());
    }
    out.extend(registration_head(st, v));
    out.push(format!(
        "  Export-Controlled Functionality: {}",
        if r.export_controlled {
            "Allowed"
        } else {
            "Not Allowed"
        }
    ));
    if let Some(code) = &st.reservation.request_code {
        out.push(format!("  Reservation Request Code: {code}"));
    }
    if let Some(initial) = &r.initial_registration {
        attempt(style, "Initial Registration", initial, &mut out);
    }
    if r.state == RegistrationState::Registered {
        // Before any renewal, the last renewal attempt repeats the registration (002:78).
        if let Some(last) = r.last_renewal.as_ref().or(r.initial_registration.as_ref()) {
            attempt(style, "Last Renewal Attempt", last, &mut out);
        }
        if let Some(next) = r.next_renewal {
            out.push(format!("  Next Renewal Attempt: {}", z.date(next)));
        }
        if let Some(expires) = r.expires {
            out.push(format!("  Registration Expires: {}", z.date(expires)));
        }
    }
    if let Some(next) = r.next_registration_attempt {
        out.push(format!("  Next Registration Attempt: {}", z.date(next)));
    }
    out.push(String::new());
    let a = &st.authorization;
    out.push("License Authorization:".to_string());
    out.push(format!("  Status: {}{}", a.state.text(v), on(a.since, z)));
    if let Some(last) = &a.last_communication {
        attempt(style, "Last Communication Attempt", last, &mut out);
    }
    if let Some(next) = a.next_communication {
        out.push(format!("  Next Communication Attempt: {}", z.date(next)));
    }
    if let Some(deadline) = a.deadline {
        out.push(format!("  Communication Deadline: {}", z.date(deadline)));
    }
    out.push(String::new());
    let e = &st.evaluation;
    out.push("Evaluation Period:".to_string());
    out.push(format!(
        "  Evaluation Mode: {}",
        if e.in_use { "In Use" } else { "Not In Use" }
    ));
    match e.expired_at {
        Some(at) => out.push(format!("  EVALUATION PERIOD EXPIRED on {}", z.date(at))),
        None => out.push(format!(
            "  Evaluation Period Remaining: {}",
            remaining(e.remaining)
        )),
    }
    out.join("\n") + "\n"
}

fn on(since: Option<DateTime<Utc>>, z: &Zone) -> String {
    since
        .map(|t| format!(" on {}", z.date(t)))
        .unwrap_or_default()
}

/// The `show license usage` section.
pub fn usage(st: &Status, style: &Style) -> String {
    let v = style.vocabulary;
    let a = &st.authorization;
    let as_of = a
        .since
        .map(|t| format!(" as of {}", style.zone.date(t)))
        .unwrap_or_default();
    let mut out = vec![
        "License Usage".to_string(),
        "=============".to_string(),
        format!("License Authorization Status: {}{as_of}", a.state.text(v)),
    ];
    for e in &st.entitlements {
        // Expressway does not list unused tags (004:239).
        if v == Vocabulary::Expressway && e.status == TagStatus::Init {
            continue;
        }
        out.push(String::new());
        out.push(format!(
            "{} ({})",
            shown(e.display_name.as_deref().unwrap_or("")),
            e.tag
        ));
        out.push(format!(
            "  Description: {}",
            shown(e.description.as_deref().unwrap_or("null"))
        ));
        out.push(format!("  Count: {}", e.count));
        out.push(format!("  Version: {}", e.version));
        out.push(format!("  Status: {}", e.status.text(v)));
    }
    out.join("\n") + "\n"
}

/// The `show license udi` line.
pub fn udi(st: &Status) -> String {
    format!("UDI: {}\n", st.udi)
}

/// `show license all`: status, usage, the export keys and (Expressway) the export control
/// limit when there is something to show, product information, agent version.
pub fn all(view: &View, style: &Style) -> String {
    let st = &view.status;
    let mut extra = String::new();
    if !view.export_keys.is_empty() {
        extra.push_str(&export_keys(&view.export_keys, style));
        extra.push('\n');
    }
    if let (Some(g), Vocabulary::Expressway) = (&view.governor, style.vocabulary) {
        extra.push_str(&crate::governor::section(g));
        extra.push('\n');
    }
    format!(
        "Smart Licensing Status\n=======================\n{}\n{}\n{extra}Product Information\n===================\n{}\nAgent Version\n=============\nSmart Agent for Licensing: {AGENT_VERSION}\n",
        status(st, style),
        usage(st, style),
        udi(st)
    )
}

/// The export authorization key section of `show license all` (ours): one block per key held
/// or asked for.
fn export_keys(keys: &[ExportKeyStatus], style: &Style) -> String {
    let cli = style.vocabulary == Vocabulary::Cli;
    let mut out = vec![
        "Export Authorization Keys".to_string(),
        "=========================".to_string(),
    ];
    for (i, k) in keys.iter().enumerate() {
        if i > 0 {
            out.push(String::new());
        }
        let state = match (k.state, cli) {
            (ExportKeyState::Held, true) => "AUTHORIZED",
            (ExportKeyState::Held, false) => "Authorized",
            (ExportKeyState::Untrusted, true) => "NOT TRUSTED (kept, not used)",
            (ExportKeyState::Untrusted, false) => "Not Trusted (kept, not used)",
            (ExportKeyState::Requested, true) => "REQUEST PENDING",
            (ExportKeyState::Requested, false) => "Request Pending",
            (ExportKeyState::Returning, true) => "RETURN PENDING",
            (ExportKeyState::Returning, false) => "Return Pending",
        };
        out.push(format!("{}:", shown(&k.feature)));
        out.push(format!("  Status: {state}"));
        if let Some(issued) = k.issued {
            out.push(format!("  Issued: {}", style.zone.date(issued)));
        }
        if let Some(next) = k.next_attempt {
            out.push(format!("  Next Attempt: {}", style.zone.date(next)));
        }
    }
    out.join("\n") + "\n"
}

/// `show license reservation` (layout `show-license-reservation.slr.txt`).
pub fn reservation(st: &Status, style: &Style) -> String {
    let res = &st.reservation;
    if !res.enabled {
        return "License reservation: DISABLED\n".to_string();
    }
    let udi = st.udi.long_form();
    let mut out = vec![
        "License reservation: ENABLED".to_string(),
        String::new(),
        "Overall status:".to_string(),
        format!("  Active: {udi}"),
    ];
    match &res.installed {
        None => {
            match &res.request_code {
                Some(code) => {
                    out.push("      Reservation status: REQUEST IN PROGRESS".to_string());
                    out.push(format!("      Reservation Request Code: {code}"));
                }
                None => out.push("      Reservation status: NOT INSTALLED".to_string()),
            }
            return out.join("\n") + "\n";
        }
        Some(installed) => installed_lines(installed, &udi, style, &mut out),
    }
    out.join("\n") + "\n"
}

fn installed_lines(i: &InstalledReservation, udi: &str, style: &Style, out: &mut Vec<String>) {
    let kind = match i.kind {
        ReservationKind::Specific => "SPECIFIC",
        ReservationKind::Universal => "UNIVERSAL",
    };
    out.push(format!(
        "      Reservation status: {kind} INSTALLED on {}",
        style.zone.date(i.installed_at)
    ));
    if !i.trusted {
        out.push(
            "      Not in use: the code is not signed by a trusted Smart Software Manager"
                .to_string(),
        );
    }
    if let Some(confirmation) = &i.confirmation {
        out.push(format!("      Last Confirmation code: {confirmation}"));
    }
    out.push(String::new());
    out.push("Specified license reservations:".to_string());
    for e in &i.entitlements {
        out.push(format!(
            "  {} ({}):",
            shown(e.display_name.as_deref().unwrap_or("")),
            e.tag.as_str()
        ));
        out.push(format!(
            "    Description: {}",
            shown(e.description.as_deref().unwrap_or("null"))
        ));
        out.push(format!("    Total reserved count: {}", e.count));
        out.push("    Term information:".to_string());
        out.push(format!("      Active: {udi}"));
        out.push(format!("        License type: {}", e.license_type));
        if let (Some(start), Some(end)) = (e.start_date, e.end_date) {
            out.push(format!(
                "          Start Date: {}, End Date: {}{}",
                start.format("%Y-%b-%d UTC"),
                end.format("%Y-%b-%d UTC"),
                if e.expired { " (expired)" } else { "" }
            ));
        }
        out.push(format!("          Term Count: {}", e.count));
    }
}

/// `show license summary`.
pub fn summary(st: &Status, style: &Style) -> String {
    let v = style.vocabulary;
    let z = &style.zone;
    let r = &st.registration;
    let mut out = vec!["Smart Licensing is ENABLED.".to_string(), String::new()];
    out.extend(registration_head(st, v));
    if r.state == RegistrationState::Registered {
        out.push(format!(
            "  Last Renewal Attempt: {}",
            match &r.last_renewal {
                None => "None",
                Some(Attempt {
                    outcome: Outcome::Succeeded,
                    ..
                }) => "SUCCEEDED",
                Some(_) => "FAILED",
            }
        ));
        if let Some(next) = r.next_renewal {
            out.push(format!("  Next Renewal Attempt: {}", z.date(next)));
        }
    }
    if let Some(next) = r.next_registration_attempt {
        out.push(format!("  Next Registration Attempt: {}", z.date(next)));
    }
    out.push(String::new());
    let a = &st.authorization;
    out.push("License Authorization:".to_string());
    out.push(format!("  Status: {}", a.state.text(v)));
    if let Some(last) = &a.last_communication {
        out.push(format!(
            "  Last Communication Attempt: {}",
            match last.outcome {
                Outcome::Succeeded => "SUCCEEDED",
                Outcome::Failed { .. } => "FAILED",
            }
        ));
    }
    if let Some(next) = a.next_communication {
        out.push(format!("  Next Communication Attempt: {}", z.date(next)));
    }
    out.push(String::new());
    out.push("License Usage:".to_string());
    out.push(format!(
        "  {:<28}{:<87}{:<13}{}",
        "License", "Entitlement Tag", "Count", "Status"
    ));
    out.push(format!("  {}", "-".repeat(134)));
    for e in &st.entitlements {
        if v == Vocabulary::Expressway && e.status == TagStatus::Init {
            continue;
        }
        let name: String = e
            .display_name
            .as_deref()
            .unwrap_or("")
            .chars()
            .take(26)
            .collect();
        let name = shown(&name);
        let tag = e.tag.as_str();
        let tag = if tag.len() < 87 {
            format!("{tag:<87}")
        } else {
            format!("{tag} ")
        };
        out.push(format!(
            "  {name:<28}{tag}{:<13}{}",
            e.count,
            e.status.text(v)
        ));
    }
    out.join("\n") + "\n"
}

/// `show license <display>`. The export-controlled line is the agent's one answer for the
/// flag, `export_allowed` (SPEC §7).
pub fn show(print: fn(&View, &Style) -> String) -> crate::Run {
    Box::new(move |s| {
        let mut status = s.status();
        status.registration.export_controlled = s.driver.agent().export_allowed(s.now);
        let view = View {
            status,
            export_keys: s.driver.agent().export_key_status(),
            governor: s.governor.as_ref().map(|g| g.limit.clone()),
        };
        crate::session::Outcome::ok(print(&view, &s.style))
    })
}

/// `show license udi`, in the shape of the other displays.
pub fn udi_display(st: &Status, _: &Style) -> String {
    udi(st)
}
