//! `license demo`: a narrated lifecycle in virtual time against the embedded manager, in a
//! fresh temporary directory, through the same commands a user types: evaluation, a token
//! that allows export-controlled functionality, registration, two years of renewals, an
//! outage past the 90-day deadline and the recovery, out of compliance and back, deregister;
//! then an Expressway's export limit, an air-gapped instance's Specific License Reservation
//! (request, authorization and confirmation codes, return) and an export authorization key.

use chrono::{DateTime, TimeDelta, Utc};
use smart_agent::manager::{ReservedLicense, StateDir, TokenOptions};
use smart_agent::{Event, Tag};

use crate::session::{Globals, ManagerChoice, Mode, Outcome, Session};
use crate::show::Style;

const ENHANCED: &str =
    "regid.2016-07.com.cisco.UCM_Enhanced,12.0_66d0d1cf-4863-4761-91d0-d01d3eb1949a";
const BASIC: &str = "regid.2016-07.com.cisco.UCM_Basic,12.0_ef827a2f-f4ae-4ebb-887f-052737063d3a";
const UDI: &str = "PID:UCM,SN:37624,UUID:6fe83addc80240bc92dc071ac7a37624";
const EXPRESSWAY_UDI: &str = "PID:Expressway,SN:0B070519,UUID:320ac19c1e2f4a5b8c9d0e1f2a3b4c5d";
const AIR_GAPPED_UDI: &str = "PID:UCM,SN:AIRGAP01,UUID:5c0de1a2b3c4d5e6f708192a3b4c5d6e";
const EXPORT_FEATURE: &str = "CUCM_Export_Restricted_Authorization_Key";

struct Demo {
    globals: Globals,
    out: String,
    now: DateTime<Utc>,
    /// The Expressway part: its own directory, Expressway's words.
    expressway: bool,
}

impl Demo {
    fn say(&mut self, text: &str) {
        self.out.push_str(text);
        self.out.push('\n');
    }

    fn milestone(&mut self, title: &str) {
        self.say(&format!("\n=== {title} ==="));
    }

    fn at(&mut self, t: DateTime<Utc>) {
        self.now = t;
        self.globals.now = Some(t);
    }

    /// Runs one harness command as `license --now <t> <words>`, printing its output and the
    /// events it caused (the catch-up's included). Stops the demo on an unexpected refusal.
    fn license(&mut self, words: &str) -> Result<String, Outcome> {
        let args: Vec<String> = words.split(' ').map(str::to_string).collect();
        self.run(&args, words, false)
    }

    /// The same for a command the product refuses on purpose (exit 1 is shown, not an error).
    fn license_refused(&mut self, words: &str) -> Result<String, Outcome> {
        let args: Vec<String> = words.split(' ').map(str::to_string).collect();
        self.run(&args, words, true)
    }

    /// The same with the words as given (a code with spaces is one of them); `shown` is how
    /// the command line is narrated. Returns what the command printed (a code to pass on).
    fn run(
        &mut self,
        args: &[String],
        shown: &str,
        refusal_shown: bool,
    ) -> Result<String, Outcome> {
        let words = shown;
        let product = match (self.globals.style.vocabulary, self.expressway) {
            (smart_agent::Vocabulary::Expressway, true) => "--product expressway ",
            _ => "",
        };
        self.say(&format!(
            "$ license --now {} {product}{words}",
            self.now.format("%Y-%m-%dT%H:%M:%SZ")
        ));
        let command = crate::parse(args)
            .map_err(|_| Outcome::refused(format!("demo: no command {words}")))?
            .command
            .run();
        let pid = if self.expressway { "Expressway" } else { "UCM" };
        let mut session = Session::open(&self.globals, pid, &Mode::Normal)?;
        let outcome = command(&mut session);
        if outcome.exit == 1 && refusal_shown {
            session.abandon();
            self.say(&format!("(exit 1: {})", outcome.stderr.trim_end()));
            return Ok(String::new());
        }
        let events: Vec<Event> = session
            .catch_up_events()
            .into_iter()
            .chain(session.command_events())
            .collect();
        let style = Style {
            vocabulary: session.style.vocabulary,
            zone: session.style.zone.clone(),
        };
        if outcome.exit == 1 {
            return Err(outcome);
        }
        crate::governor::sync(&mut session);
        session.commit()?;
        if words.starts_with("show") {
            self.out.push_str(&outcome.stdout);
        } else if words == "events" {
            let lines: Vec<&str> = outcome.stdout.lines().collect();
            for line in lines.iter().take(6) {
                self.say(line);
            }
            if lines.len() > 6 {
                self.say(&format!("… {} more lines", lines.len() - 6));
            }
        } else {
            // What the command said it did, then the events (the catch-up's included).
            let texts: Vec<String> = events
                .iter()
                .map(|e| crate::show::event_text(&e.kind, e.alarm().map(|a| a.name())))
                .collect();
            let said = if words == "tick" {
                ""
            } else {
                outcome.stdout.as_str()
            };
            for line in said.lines().filter(|l| !texts.iter().any(|t| t == l)) {
                self.say(&format!("  {line}"));
            }
            self.events(&events, &style);
        }
        if !outcome.stderr.is_empty() {
            self.say(&format!(
                "(exit {}: {})",
                outcome.exit,
                outcome.stderr.trim_end()
            ));
        }
        Ok(outcome.stdout)
    }

    /// Events with dates; a run of the same event is shown by its first and last.
    fn events(&mut self, events: &[Event], style: &Style) {
        let line = |e: &Event| format!("  {}", style.event_line(e));
        let kind = |e: &Event| {
            format!("{:?}", e.kind)
                .split([' ', '{', '('])
                .next()
                .map(str::to_string)
        };
        let mut i = 0;
        while i < events.len() {
            let mut j = i + 1;
            while j < events.len() && kind(&events[j]) == kind(&events[i]) {
                j += 1;
            }
            self.say(&line(&events[i]));
            if j - i > 2 {
                self.say(&format!("  … {} more like it …", j - i - 2));
            }
            if j - i > 1 {
                self.say(&line(&events[j - 1]));
            }
            i = j;
        }
    }

    /// An administrator's action on the embedded manager, narrated as the `manager` command.
    fn manager<T>(
        &mut self,
        narration: &str,
        f: impl FnOnce(
            &mut smart_agent::manager::Manager,
            DateTime<Utc>,
        ) -> Result<T, smart_agent::manager::ManagerError>,
    ) -> Result<T, Outcome> {
        self.say(&format!("$ manager {narration}"));
        let dir = StateDir::open_or_create(self.globals.state.join("manager"), None)
            .map_err(|e| Outcome::refused(e.to_string()))?;
        dir.update(f).map_err(|e| Outcome::refused(e.to_string()))
    }
}

fn tag(s: &str) -> Result<Tag, Outcome> {
    Tag::parse(s).map_err(|e| Outcome::refused(e.to_string()))
}

pub fn run(g: &Globals) -> Outcome {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => return Outcome::refused(format!("demo: temporary directory: {e}")),
    };
    let start: DateTime<Utc> = DateTime::from_timestamp(1_799_056_800, 0).unwrap_or_default();
    let mut demo = Demo {
        globals: Globals {
            state: dir.path().join("ucm"),
            now: Some(start),
            udi: UDI.parse().ok(),
            style: Style {
                vocabulary: g.style.vocabulary,
                zone: g.style.zone.clone(),
            },
            manager: ManagerChoice::Embedded,
            lock_wait: g.lock_wait,
        },
        out: String::new(),
        now: start,
        expressway: false,
    };
    match script(&mut demo) {
        Ok(()) => Outcome::ok(demo.out),
        Err(failed) => Outcome {
            exit: failed.exit,
            stdout: demo.out,
            stderr: failed.stderr,
        },
    }
}

fn script(d: &mut Demo) -> Result<(), Outcome> {
    let t0 = d.now;
    d.say("A Unified CM publisher licenses itself against the embedded reference manager.");
    d.say("Everything runs in virtual time: each command is given --now.");

    d.milestone("1. Evaluation: the product declares what it may use and starts using it");
    d.license(&format!("declare {ENHANCED}"))?;
    d.license(&format!("declare {BASIC}"))?;
    d.license(&format!("usage {ENHANCED} 10"))?;
    d.license(&format!("usage {BASIC} 5"))?;
    d.at(t0 + TimeDelta::days(10));
    d.license("show license status")?;

    d.milestone("2. The administrator buys licenses and makes a token that allows export control");
    let (enhanced, basic) = (tag(ENHANCED)?, tag(BASIC)?);
    d.manager(
        "account --smart \"BU Production Test\" --virtual \"TAC-CollabTesting\"",
        |m, _| {
            m.add_smart_account("BU Production Test")?;
            m.add_virtual_account("BU Production Test", "TAC-CollabTesting")
        },
    )?;
    let va = smart_agent::manager::VirtualAccountId::new("BU Production Test", "TAC-CollabTesting");
    d.manager(&format!("pool add {ENHANCED} 20"), |m, _| {
        m.add_licenses(&va, &enhanced, 20, None, None)
    })?;
    d.manager(&format!("pool add {BASIC} 10"), |m, _| {
        m.add_licenses(&va, &basic, 10, None, None)
    })?;
    let options = TokenOptions {
        export_controlled: true,
        ..TokenOptions::default()
    };
    let token = d.manager("token create --export", |m, now| {
        m.create_token(&va, options, now)
    })?;
    d.license("show license status")?;

    d.milestone("3. Registration: the identity, then the first authorization at once");
    d.license(&format!(
        "license smart register idtoken {}",
        token.expose()
    ))?;
    d.license("show license status")?;

    d.milestone("4. Two years pass: authorization every 30 days, identity every 180 days");
    d.at(t0 + TimeDelta::days(10 + 730));
    d.license("tick")?;
    d.license("show license status")?;

    d.milestone(
        "5. The manager becomes unreachable for 100 days: backoff, then the 90-day deadline",
    );
    d.license("manager offline")?;
    d.at(d.now + TimeDelta::days(100));
    d.license("tick")?;
    d.license("show license status")?;

    d.milestone("6. The manager is back: the next daily retry authorizes again");
    d.license("manager online")?;
    d.at(d.now + TimeDelta::days(1));
    d.license("tick")?;
    d.license("show license status")?;

    d.milestone("7. Usage grows past the pool: out of compliance, rechecked every 12 hours");
    d.license(&format!("usage {ENHANCED} 30"))?;
    d.at(d.now + TimeDelta::minutes(1));
    d.license("tick")?;
    d.license("show license usage")?;
    d.manager(&format!("pool add {ENHANCED} 10"), |m, _| {
        m.add_licenses(&va, &enhanced, 10, None, None)
    })?;
    d.at(d.now + TimeDelta::hours(12));
    d.license("tick")?;
    d.license("show license status")?;

    d.milestone(
        "8. Deregistration: licenses go back to the pool, evaluation resumes where it stopped",
    );
    d.license("license smart deregister")?;
    d.license("show license status")?;
    d.say("\nThe event and alarm log keeps everything (its first lines):");
    d.license("events")?;

    d.milestone(
        "9. An Expressway: the export limit of 2500 encrypted sessions, its alarms and low watermark",
    );
    d.say("(a new instance, in its own state directory, printing Expressway's words)");
    let vocabulary = d.globals.style.vocabulary;
    d.expressway = true;
    d.globals.state = d.globals.state.with_file_name("expressway");
    d.globals.udi = EXPRESSWAY_UDI.parse().ok();
    d.globals.style.vocabulary = smart_agent::Vocabulary::Expressway;
    d.license("session start 2249")?;
    d.license("session start 1")?;
    d.license("session start 250")?;
    d.license_refused("session start 1")?;
    d.license("session end 25")?;
    d.license_refused("session start 1")?;
    d.license("session end 1")?;
    d.license("webrtc on")?;
    d.license("show license all")?;

    d.milestone("10. An air-gapped Unified CM: Specific License Reservation, only codes travel");
    d.say("(a new instance that never reaches a manager; the administrator pastes its codes)");
    d.expressway = false;
    d.globals.state = d.globals.state.with_file_name("air-gapped");
    d.globals.udi = AIR_GAPPED_UDI.parse().ok();
    d.globals.style.vocabulary = vocabulary;
    d.license(&format!("declare {ENHANCED}"))?;
    d.license(&format!("usage {ENHANCED} 4"))?;
    d.license("license smart reservation enable")?;
    let request = last_line(&d.license("license smart reservation request")?);
    let default_va = d.manager("account --reservation on", |m, _| {
        m.set_reservation_allowed(smart_agent::manager::DEFAULT_SMART_ACCOUNT, true)?;
        Ok(m.default_virtual_account())
    })?;
    d.manager(&format!("pool add {ENHANCED} 10"), |m, _| {
        m.add_licenses(&default_va, &enhanced, 10, None, None)
    })?;
    let licenses = [ReservedLicense::perpetual(enhanced.clone(), 5)];
    let issued = d.manager(
        &format!("reservation authorize {request} --license {ENHANCED}=5"),
        |m, now| m.authorize_reservation(&default_va, &request, &licenses, None, false, now),
    )?;
    d.say(&format!(
        "  {}… (the authorization code: {} characters, pasted as is)",
        issued.code.get(..60).unwrap_or(&issued.code),
        issued.code.len()
    ));
    let words = ["license", "smart", "reservation", "install", &issued.code];
    let installed = d.run(
        &words.map(str::to_string),
        "license smart reservation install \"<specificPLR>…</specificPLR>\"",
        false,
    )?;
    let confirmation = last_line(&installed)
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .to_string();
    let piid = issued.piid.to_string();
    d.manager(
        &format!("reservation confirm {piid} {confirmation}"),
        |m, _| m.confirm_reservation(&piid, &confirmation),
    )?;
    d.license("show license status")?;
    d.license("show license reservation")?;
    let returned = last_line(&d.license("license smart reservation return")?);
    let freed = d.manager(&format!("reservation return {returned}"), |m, now| {
        m.return_reservation(&returned, now)
    })?;
    for (tag, count) in &freed.freed {
        d.say(&format!("  back in the pool: {tag}={count}"));
    }

    d.milestone(
        "11. An account under export restrictions: an export authorization key instead of the flag",
    );
    d.globals.state = d.globals.state.with_file_name("ucm");
    d.globals.udi = UDI.parse().ok();
    d.manager("account --export-restricted on", |m, _| {
        m.set_export_restricted("BU Production Test", true)
    })?;
    d.manager(&format!("export-key add {EXPORT_FEATURE} 1"), |m, _| {
        m.add_export_keys(&va, EXPORT_FEATURE, 1)
    })?;
    let token = d.manager("token create", |m, now| {
        m.create_token(&va, TokenOptions::default(), now)
    })?;
    d.license(&format!(
        "license smart register idtoken {}",
        token.expose()
    ))?;
    d.license(&format!(
        "license smart export request local {EXPORT_FEATURE}"
    ))?;
    d.license("show license status")?;
    d.license(&format!(
        "license smart export return local {EXPORT_FEATURE}"
    ))?;
    Ok(())
}

/// The last line a command printed: the code it makes.
fn last_line(out: &str) -> String {
    out.lines().last().unwrap_or_default().trim().to_string()
}
