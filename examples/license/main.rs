//! The example CLI harness: a product's licensing commands, one invocation per command, with
//! the state in a directory and the reference manager embedded (or over HTTPS).
//!
//! ```text
//! cargo run --features manager --example license -- demo
//! cargo run --features manager --example license -- [options] <command>
//! ```
//! Options (anywhere on the line): `--state DIR` (default `./.smart-agent`), `--now RFC3339`
//! (default: the system clock), `--udi <long form>`, `--product ucm|expressway`,
//! `--tz NAME=±HH:MM`, `--manager-url URL --manager-key PEM [--ca PEM] [--manager-env
//! production|development]`, `--lock-wait SECONDS` (default 5).
//!
//! Before each command every deadline that fell due since the last run is processed, each at
//! its own time; the state is written only if the command was accepted.
//!
//! Exit status: 0 done; 1 refused before sending (nothing written); 2 accepted but the
//! manager or the network said no, or a retry is pending; 3 the state directory is corrupt or
//! locked (nothing written).
//!
//! Each command family is a module with a `parse` function listed in [`FAMILIES`]; adding a
//! family touches nothing else.

mod catchup;
mod demo;
mod eventlog;
mod harness;
mod journal;
mod outcome;
mod record;
mod session;
mod show;
mod smart;
mod statedir;
mod text;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};
use smart_agent::{Environment, Udi, Vocabulary};

use session::{Globals, ManagerChoice, Mode, Outcome, Session};
use show::{Style, Zone};

/// A parsed command: runs against the session.
pub type Run = Box<dyn FnOnce(&mut Session) -> Outcome>;

/// A family's parser: `None` if the words are not its command, `Err(usage)` if they are but
/// malformed.
type Parse = fn(&[String]) -> Option<Result<Run, String>>;

/// The command families, each its own module.
const FAMILIES: &[(Parse, &[&str])] = &[
    (smart::parse, smart::USAGE),
    (show::parse, show::USAGE),
    (harness::parse, harness::USAGE),
];

fn usage_text() -> String {
    let mut text = String::from(
        "usage: license [options] <command>\n\
         options (anywhere on the line, also as --option=value):\n  \
         --state DIR  state directory (default ./.smart-agent, created on first use)\n  \
         --now RFC3339  the wall time (default: the system clock); deadlines since the last command are processed first\n  \
         --udi UDI  the instance's UDI on first use (default: generated PID:UCM,SN:…,UUID:…)\n  \
         --product ucm|expressway  the product's words (default ucm)\n  \
         --tz NAME=+HH:MM  dates in a named fixed offset (default UTC)\n  \
         --manager-url URL --manager-key PEM [--ca PEM] [--manager-env production|development]\n      \
         a manager over HTTPS instead of the embedded one (`manager serve` prints the paths)\n  \
         --lock-wait SECONDS  how long to wait for another invocation (default 5)\n\
         exit status: 0 done, 1 refused (nothing written), 2 the manager or network said no or a retry is pending, 3 state directory corrupt or locked\n\
         commands:\n  demo  — a narrated lifecycle in virtual time, in a temporary directory\n",
    );
    for (_, usage) in FAMILIES {
        for line in *usage {
            text.push_str(&format!("  {line}\n"));
        }
    }
    text
}

/// Takes `--name VALUE` or `--name=VALUE` out of `args` (at most once).
fn take(args: &mut Vec<String>, name: &str) -> Result<Option<String>, String> {
    let joined = format!("{name}=");
    let value = if let Some(i) = args.iter().position(|a| a.starts_with(&joined)) {
        args.remove(i)[joined.len()..].to_string()
    } else if let Some(i) = args.iter().position(|a| a == name) {
        args.remove(i);
        if i >= args.len() {
            return Err(format!("{name} needs a value"));
        }
        args.remove(i)
    } else {
        return Ok(None);
    };
    if args.iter().any(|a| a == name || a.starts_with(&joined)) {
        return Err(format!("{name} given more than once"));
    }
    Ok(Some(value))
}

/// Takes one `--name VALUE` or `--name=VALUE` out of `args` (the option may repeat).
fn take_any(args: &mut Vec<String>, name: &str) -> Result<Option<String>, String> {
    let joined = format!("{name}=");
    if let Some(i) = args.iter().position(|a| a.starts_with(&joined)) {
        return Ok(Some(args.remove(i)[joined.len()..].to_string()));
    }
    if let Some(i) = args.iter().position(|a| a == name) {
        args.remove(i);
        if i >= args.len() {
            return Err(format!("{name} needs a value"));
        }
        return Ok(Some(args.remove(i)));
    }
    Ok(None)
}

fn globals(args: &mut Vec<String>) -> Result<Globals, String> {
    if let Some(i) = args.iter().position(|a| a == "--help") {
        args[i] = "help".into();
    }
    let state = take(args, "--state")?.unwrap_or_else(|| ".smart-agent".into());
    let now = match take(args, "--now")? {
        None => None,
        Some(t) => Some(
            DateTime::parse_from_rfc3339(&t)
                .map_err(|_| format!("--now: not an RFC 3339 time: {t}"))?
                .with_timezone(&Utc),
        ),
    };
    let udi = match take(args, "--udi")? {
        None => None,
        Some(u) => Some(u.parse::<Udi>().map_err(|e| format!("--udi: {e}: {u}"))?),
    };
    let vocabulary = match take(args, "--product")?.as_deref() {
        None | Some("ucm") => Vocabulary::Cli,
        Some("expressway") => Vocabulary::Expressway,
        Some(other) => return Err(format!("--product: ucm or expressway, not {other}")),
    };
    let zone = match take(args, "--tz")? {
        None => Zone::default(),
        Some(z) => Zone::parse(&z).ok_or_else(|| format!("--tz: NAME=+HH:MM, not {z}"))?,
    };
    let url = take(args, "--manager-url")?;
    let key = take(args, "--manager-key")?;
    let mut ca = Vec::new();
    while let Some(path) = take_any(args, "--ca")? {
        ca.push(PathBuf::from(path));
    }
    let env = take(args, "--manager-env")?;
    let manager = match (url, key) {
        (None, None) if ca.is_empty() && env.is_none() => ManagerChoice::Embedded,
        (Some(url), Some(key)) => ManagerChoice::Remote {
            url,
            ca,
            key: PathBuf::from(key),
            environment: match env.as_deref() {
                None | Some("development") => Environment::Development,
                Some("production") => Environment::Production,
                Some(other) => {
                    return Err(format!(
                        "--manager-env: production or development, not {other}"
                    ))
                }
            },
        },
        _ => {
            return Err(
                "--manager-url and --manager-key go together (with --ca and --manager-env)".into(),
            )
        }
    };
    let lock_wait = match take(args, "--lock-wait")? {
        None => Duration::from_secs(5),
        Some(s) => Duration::from_secs(
            s.parse::<u64>()
                .map_err(|_| format!("--lock-wait: seconds, not {s}"))?,
        ),
    };
    if let Some(unknown) = args.iter().find(|a| a.starts_with("--")) {
        return Err(format!("unknown option {unknown}"));
    }
    Ok(Globals {
        state: PathBuf::from(state),
        now,
        udi,
        style: Style { vocabulary, zone },
        manager,
        lock_wait,
    })
}

fn run(args: Vec<String>) -> Outcome {
    // Two invocations creating the same fresh directory: the one that loses runs again on it.
    for _ in 0..3 {
        if let Some(outcome) = run_once(args.clone()) {
            return outcome;
        }
    }
    Outcome::unusable(session::Unusable(
        "the state directory kept being created by other invocations; retry".into(),
    ))
}

/// One attempt; `None` when another invocation created the fresh state directory first.
fn run_once(mut args: Vec<String>) -> Option<Outcome> {
    let args = &mut args;
    let g = match globals(args) {
        Ok(g) => g,
        Err(e) => {
            return Some(Outcome::refused(format!(
                "license: {e}\n{}",
                usage_text().trim_end()
            )))
        }
    };
    if *args == ["demo"] || *args == ["license", "demo"] {
        return Some(demo::run(&g));
    }
    if args.is_empty() {
        return Some(Outcome::refused(usage_text().trim_end()));
    }
    if matches!(args.as_slice(), [h] if h == "help" || h == "-h") {
        return Some(Outcome::ok(usage_text()));
    }
    let parsed = FAMILIES.iter().find_map(|(parse, _)| parse(args));
    let command = match parsed {
        Some(Ok(command)) => command,
        Some(Err(usage)) => return Some(Outcome::refused(format!("usage: {usage}"))),
        None => {
            return Some(Outcome::refused(format!(
                "license: unknown command {:?}\n{}",
                args.join(" "),
                usage_text().trim_end()
            )))
        }
    };
    let pid = match g.style.vocabulary {
        Vocabulary::Expressway => "Expressway",
        _ => "UCM",
    };
    let mode = match args.as_slice() {
        [m, s, ..] if m == "manager" && s == "switch" => Mode::Switch,
        [r, dir] if r == "restore-backup" => Mode::RestoreBackup(PathBuf::from(dir)),
        _ => Mode::Normal,
    };
    let mut session = match Session::open(&g, pid, &mode) {
        Ok(s) => s,
        Err(outcome) => return Some(outcome),
    };
    let outcome = command(&mut session);
    if outcome.exit == 1 {
        session.abandon(); // refused: nothing is written, not even the catch-up
        return Some(outcome);
    }
    match session.commit() {
        Ok(session::Committed::Done) => Some(outcome),
        Ok(session::Committed::Raced) => None,
        Err(failed) => Some(failed),
    }
}

fn main() -> ExitCode {
    let outcome = run(std::env::args().skip(1).collect());
    let _ = std::io::stdout().write_all(outcome.stdout.as_bytes());
    let _ = std::io::stderr().write_all(outcome.stderr.as_bytes());
    ExitCode::from(outcome.exit)
}
