//! The example CLI harness: a product's licensing commands, one invocation per command, with
//! the state in a directory and the reference manager embedded (or over HTTPS).
//!
//! ```text
//! cargo run --features manager --example license -- demo
//! cargo run --features manager --example license -- [options] <command>
//! cargo run --features manager --example license -- --help
//! ```
//! The command line is [`cli::Cli`] (clap): `-h`/`--help` and `--version` print on stdout and
//! exit 0; a usage error prints on stderr and exits 1, as every refusal does.
//!
//! Before each command every deadline that fell due since the last run is processed, each at
//! its own time; the state is written only if the command was accepted.
//!
//! Exit status: 0 done; 1 refused before sending (nothing written), or a usage error; 2
//! accepted but the manager or the network said no, or a retry is pending; 3 the state
//! directory is damaged or locked (nothing written).

mod catchup;
mod cli;
mod demo;
mod eventlog;
mod export;
mod governor;
mod harness;
mod journal;
mod outcome;
mod record;
mod reservation;
mod session;
mod show;
mod smart;
mod statedir;
mod text;

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser as _;
use smart_agent::Vocabulary;

use cli::{Cli, Command};
use session::{Globals, ManagerChoice, Mode, Outcome, Session};
use show::Style;

/// A parsed command: runs against the session.
pub type Run = Box<dyn FnOnce(&mut Session) -> Outcome>;

/// The command line, or what to print instead: help and version on stdout (exit 0), a usage
/// error on stderr (exit 1), both with the one rule for control characters.
pub fn parse(args: &[String]) -> Result<Cli, Outcome> {
    Cli::try_parse_from(std::iter::once("license".to_string()).chain(args.iter().cloned())).map_err(
        |e| {
            let text = text::usage_error(&e.render().to_string(), args);
            match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    Outcome::ok(text)
                }
                _ => Outcome {
                    exit: 1,
                    stdout: String::new(),
                    stderr: text,
                },
            }
        },
    )
}

fn globals(cli: &Cli) -> Globals {
    let o = &cli.options;
    let manager = match (&o.manager_url, &o.manager_key) {
        (Some(url), Some(key)) => ManagerChoice::Remote {
            url: url.clone(),
            ca: o.ca.clone(),
            key: key.clone(),
            environment: o
                .manager_env
                .map_or(smart_agent::Environment::Development, Into::into),
        },
        _ => ManagerChoice::Embedded,
    };
    Globals {
        state: o.state.clone(),
        now: o.now,
        udi: o.udi.clone(),
        style: Style {
            vocabulary: match o.product {
                cli::Product::Ucm => Vocabulary::Cli,
                cli::Product::Expressway => Vocabulary::Expressway,
            },
            zone: o.tz.clone().unwrap_or_default(),
        },
        manager,
        lock_wait: Duration::from_secs(o.lock_wait),
    }
}

fn run(args: Vec<String>) -> Outcome {
    // Two invocations creating the same fresh directory: the one that loses runs again on it.
    for _ in 0..3 {
        if let Some(outcome) = run_once(&args) {
            return outcome;
        }
    }
    Outcome::unusable(session::Unusable(
        "the state directory kept being created by other invocations; retry".into(),
    ))
}

/// One attempt; `None` when another invocation created the fresh state directory first.
fn run_once(args: &[String]) -> Option<Outcome> {
    let cli = match parse(args) {
        Ok(cli) => cli,
        Err(outcome) => return Some(outcome),
    };
    let g = globals(&cli);
    if cli.command.is_demo() {
        return Some(demo::run(&g));
    }
    let mode = match &cli.command {
        Command::Manager {
            command: Some(cli::Manager::Switch { .. }),
        } => Mode::Switch,
        Command::RestoreBackup { dir } => Mode::RestoreBackup(dir.clone()),
        _ => Mode::Normal,
    };
    let pid = match g.style.vocabulary {
        Vocabulary::Expressway => "Expressway",
        _ => "UCM",
    };
    let mut session = match Session::open(&g, pid, &mode) {
        Ok(s) => s,
        Err(outcome) => return Some(outcome),
    };
    let warning = session.clock_warning(g.now.is_some());
    let mut outcome = (cli.command.run())(&mut session);
    if let Some(warning) = warning {
        outcome.stderr = format!("{warning}\n{}", outcome.stderr);
    }
    if outcome.exit == 1 {
        session.abandon(); // refused: nothing is written, not even the catch-up
        return Some(outcome);
    }
    // The export-limit key may have come or gone (the command, or a retry that fell due):
    // the governor learns it, and its alarms are logged.
    governor::sync(&mut session);
    match session.commit() {
        Ok(session::Committed::Done) => Some(outcome),
        Ok(session::Committed::Raced) => None,
        Err(failed) => Some(failed),
    }
}

fn main() -> ExitCode {
    // Lossy: an argument that is not UTF-8 becomes U+FFFD and is refused as a value, never a
    // panic.
    let outcome = run(std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect());
    let _ = std::io::stdout().write_all(outcome.stdout.as_bytes());
    let _ = std::io::stderr().write_all(outcome.stderr.as_bytes());
    ExitCode::from(outcome.exit)
}
