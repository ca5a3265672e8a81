//! Runs the reference Smart Software Manager over HTTPS and administers its state directory.
//!
//! ```text
//! cargo run --example manager --features manager -- serve --state DIR --listen 127.0.0.1:8443
//! cargo run --example manager --features manager -- pool add <tag> <count> [--state DIR]
//! cargo run --example manager --features manager -- token create [--state DIR]
//! ```
//! Without `--state`, the administration commands work on the embedded manager of the
//! license harness's default directory (`./.smart-agent/manager`); a license harness
//! directory given as `--state` means its embedded manager too. They create the directory on
//! first use, with a default Smart Account and Virtual Account, so a first `pool add` just
//! works; `account` selects another one for the commands that follow.
//!
//! `serve` prints, one per line, the CA certificate and the manager's signing public key that
//! agents must trust, the environment it signs as, its clock and the address it listens on
//! (the real port when given port 0), then serves until killed. State changes are durable
//! before they are answered, so `kill -9` loses nothing acknowledged.
//!
//! The administration commands work on the same directory, whether `serve` runs or not: both
//! take the directory's lock in turn. Exit status: 0 done, 1 failed (message on stderr),
//! 2 bad arguments.
//!
//! Each command is one entry of [`COMMANDS`] and one function that takes its own arguments
//! from [`Args`]; adding a command touches nothing else.

use std::collections::VecDeque;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use smart_agent::manager::{
    InstanceInfo, Manager, ManagerError, Server, ServerOptions, StateDir, TokenOptions,
    VirtualAccountId,
};
use smart_agent::{Environment, Tag, Token};

/// The embedded manager of the license harness's default state directory.
const EMBEDDED: &str = ".smart-agent/manager";

/// Why a command did not complete.
enum Failure {
    /// Bad arguments: exit 2, with the usage.
    Usage(String),
    /// The command failed: exit 1.
    Failed(String),
}

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::Failed(e.to_string())
    }
}

fn usage(message: impl Into<String>) -> Failure {
    Failure::Usage(message.into())
}

/// The arguments after the command words, taken by each command as it needs them.
struct Args(VecDeque<String>);

impl Args {
    /// `--name VALUE`, at most once.
    fn option(&mut self, name: &str) -> Result<Option<String>, Failure> {
        let mut values = self.options(name)?;
        if values.len() > 1 {
            return Err(usage(format!("{name} given more than once")));
        }
        Ok(values.pop())
    }

    /// Every `--name VALUE`.
    fn options(&mut self, name: &str) -> Result<Vec<String>, Failure> {
        let mut values = Vec::new();
        while let Some(i) = self.0.iter().position(|a| a == name) {
            self.0.remove(i);
            match self.0.remove(i) {
                Some(v) if !v.starts_with("--") => values.push(v),
                _ => return Err(usage(format!("{name} needs a value"))),
            }
        }
        Ok(values)
    }

    /// Whether `--name` is present.
    fn flag(&mut self, name: &str) -> bool {
        let before = self.0.len();
        self.0.retain(|a| a != name);
        self.0.len() != before
    }

    /// The next positional argument.
    fn positional(&mut self, what: &str) -> Result<String, Failure> {
        match self.0.iter().position(|a| !a.starts_with("--")) {
            Some(i) => Ok(self.0.remove(i).unwrap_or_default()),
            None => Err(usage(format!("missing {what}"))),
        }
    }

    /// Nothing may be left over.
    fn finish(self) -> Result<(), Failure> {
        match self.0.front() {
            None => Ok(()),
            Some(extra) => Err(usage(format!("unexpected argument {extra:?}"))),
        }
    }

    /// `--state DIR`, an existing manager state directory (a license harness directory means
    /// its embedded manager); without it the harness's default embedded manager, created on
    /// first use so that a first `pool add` just works.
    fn state_dir(&mut self) -> Result<StateDir, Failure> {
        let Some(given) = self.option("--state")? else {
            return Ok(StateDir::open_or_create(EMBEDDED, None)?);
        };
        let path = PathBuf::from(given);
        let path = if !path.join("state").exists() && path.join("manager").join("state").exists() {
            path.join("manager")
        } else {
            path
        };
        Ok(StateDir::open(path)?)
    }
}

/// One command: the words that name it, its arguments for the usage text, and what runs it.
struct Command {
    words: &'static [&'static str],
    args: &'static str,
    run: fn(Args) -> Result<(), Failure>,
}

const COMMANDS: &[Command] = &[
    Command {
        words: &["serve"],
        args: "--state DIR --listen ADDR [--environment production|development] \
               [--virtual-clock] [--host NAME]...",
        run: serve,
    },
    Command {
        words: &["account"],
        args: "[--smart <name>] [--virtual <name>] [--state DIR]",
        run: account,
    },
    Command {
        words: &["pool", "add"],
        args: "<tag> <count> [--name <display name>] [--description <text>] [--state DIR]",
        run: pool_add,
    },
    Command {
        words: &["token", "create"],
        args: "[--export] [--expires <days>] [--uses <n>] [--state DIR]",
        run: token_create,
    },
    Command {
        words: &["token", "revoke"],
        args: "<token> [--state DIR]",
        run: token_revoke,
    },
    Command {
        words: &["instances"],
        args: "[--state DIR]",
        run: instances,
    },
    Command {
        words: &["licenses"],
        args: "[--state DIR]",
        run: licenses,
    },
    Command {
        words: &["clock", "set"],
        args: "<RFC3339> [--state DIR]",
        run: clock_set,
    },
];

fn usage_text() -> String {
    let mut text = String::from("usage:\n");
    for c in COMMANDS {
        text.push_str(&format!("  manager {} {}\n", c.words.join(" "), c.args));
    }
    text
}

fn serve(mut args: Args) -> Result<(), Failure> {
    let state = args
        .option("--state")?
        .ok_or_else(|| usage("--state DIR is required"))?;
    let listen = args
        .option("--listen")?
        .ok_or_else(|| usage("--listen ADDR is required (e.g. 127.0.0.1:8443)"))?;
    let mut options = ServerOptions::default();
    options.listen = listen
        .parse::<SocketAddr>()
        .map_err(|_| usage(format!("--listen: not an address and port: {listen:?}")))?;
    if let Some(env) = args.option("--environment")? {
        options.environment = Some(Environment::parse(&env).ok_or_else(|| {
            usage(format!(
                "--environment: production or development, not {env:?}"
            ))
        })?);
    }
    options.virtual_clock = args.flag("--virtual-clock");
    options.hosts = args.options("--host")?;
    args.finish()?;
    let server = Server::start(state, options)?;
    let dir = server.state_dir();
    let clock = if dir.has_virtual_clock() {
        format!("virtual ({})", dir.clock_path().display())
    } else {
        "system".to_string()
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "ca-certificate: {}", dir.ca_cert_path().display())?;
    writeln!(
        out,
        "manager-public-key: {}",
        dir.manager_public_key_path().display()
    )?;
    writeln!(out, "environment: {}", server.environment())?;
    writeln!(out, "clock: {clock}")?;
    writeln!(out, "listening: {}", server.addr())?;
    out.flush()?;
    drop(out);
    loop {
        std::thread::park();
    }
}

fn pool_add(mut args: Args) -> Result<(), Failure> {
    let dir = args.state_dir()?;
    let text = args.positional("<tag>")?;
    let tag = Tag::parse(&text).map_err(|_| usage(format!("not an entitlement tag: {text:?}")))?;
    let count = args.positional("<count>")?;
    let count: u32 = count.parse().map_err(|_| {
        usage(format!(
            "<count>: not a number from 0 to {}: {count:?}",
            u32::MAX
        ))
    })?;
    let name = args.option("--name")?;
    let description = args.option("--description")?;
    args.finish()?;
    let selected = selected_account(&dir)?;
    let line = dir.update(|m, _| {
        let va = current(m, &selected)?;
        m.add_licenses(&va, &tag, count, name.as_deref(), description.as_deref())?;
        Ok(m.licenses(&va).into_iter().find(|l| l.tag == tag))
    })?;
    if let Some(l) = line {
        println!(
            "{}: purchased {}, in use {}, balance {}",
            l.tag.as_str(),
            l.purchased,
            l.in_use,
            l.balance
        );
    }
    Ok(())
}

fn token_create(mut args: Args) -> Result<(), Failure> {
    let dir = args.state_dir()?;
    let mut options = TokenOptions {
        export_controlled: args.flag("--export"),
        ..TokenOptions::default()
    };
    if let Some(days) = args.option("--expires")? {
        let days: i64 = days
            .parse()
            .ok()
            .filter(|d| (1..=365).contains(d))
            .ok_or_else(|| usage(format!("--expires: days from 1 to 365, not {days:?}")))?;
        options.expires_after = TimeDelta::days(days);
    }
    if let Some(uses) = args.option("--uses")? {
        let uses: u32 = uses.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
            usage(format!(
                "--uses: a number of registrations from 1, not {uses:?}"
            ))
        })?;
        options.max_uses = Some(uses);
    }
    args.finish()?;
    let selected = selected_account(&dir)?;
    let (token, va, expires) = dir.update(|m, now| {
        let va = current(m, &selected)?;
        let token = m.create_token(&va, options, now)?;
        Ok((token, va, now + options.expires_after))
    })?;
    let export = if options.export_controlled {
        "export-controlled functionality allowed"
    } else {
        "export-controlled functionality not allowed"
    };
    let uses = match options.max_uses {
        Some(n) => format!("{n} registration(s)"),
        None => "any number of registrations".to_string(),
    };
    println!(
        "Registration token for {va}, valid until {}, {uses}, {export}:",
        rfc3339(expires)
    );
    println!("{}", token.expose());
    Ok(())
}

fn token_revoke(mut args: Args) -> Result<(), Failure> {
    let dir = args.state_dir()?;
    let text = args.positional("<token>")?;
    let token = Token::parse(&text).map_err(|e| usage(e.to_string()))?;
    args.finish()?;
    dir.update(|m, _| m.revoke_token(&token))?;
    println!("revoked");
    Ok(())
}

/// The account `account` selected (stored in `DIR/account`), if any.
fn selected_account(dir: &StateDir) -> Result<Option<(String, String)>, Failure> {
    let path = dir.path().join("account");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let (smart, virtual_account) = text
                .trim_end_matches('\n')
                .split_once('\t')
                .ok_or_else(|| {
                    Failure::Failed(format!("{}: not an account selection", path.display()))
                })?;
            Ok(Some((smart.to_string(), virtual_account.to_string())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Failure::Failed(format!("{}: {e}", path.display()))),
    }
}

/// The selected Virtual Account, or the default one.
fn current(
    m: &Manager,
    selected: &Option<(String, String)>,
) -> Result<VirtualAccountId, ManagerError> {
    match selected {
        None => Ok(m.default_virtual_account()),
        Some((smart, virtual_account)) => {
            let id = VirtualAccountId::new(smart.clone(), virtual_account.clone());
            if m.virtual_accounts().contains(&id) {
                Ok(id)
            } else {
                Err(ManagerError::UnknownVirtualAccount(id))
            }
        }
    }
}

fn account(mut args: Args) -> Result<(), Failure> {
    let dir = args.state_dir()?;
    let smart = args.option("--smart")?;
    let virtual_account = args.option("--virtual")?;
    args.finish()?;
    let selected = selected_account(&dir)?;
    if smart.is_none() && virtual_account.is_none() {
        let (current, all) = dir.read(|m, _| (current(m, &selected), m.virtual_accounts()))?;
        let current = current?;
        for va in all {
            let mark = if va == current { "*" } else { " " };
            println!("{mark} {va}");
        }
        return Ok(());
    }
    let (default_smart, default_virtual) = dir.read(|m, _| {
        let d = m.default_virtual_account();
        (
            d.smart_account().to_string(),
            d.virtual_account().to_string(),
        )
    })?;
    let smart = smart.unwrap_or(default_smart);
    let virtual_account = virtual_account.unwrap_or(default_virtual);
    let va = dir.update(|m, _| {
        match m.add_smart_account(&smart) {
            Ok(()) | Err(ManagerError::DuplicateSmartAccount(_)) => {}
            Err(e) => return Err(e),
        }
        match m.add_virtual_account(&smart, &virtual_account) {
            Ok(va) => Ok(va),
            Err(ManagerError::DuplicateVirtualAccount(va)) => Ok(va),
            Err(e) => Err(e),
        }
    })?;
    smart_agent::store::AtomicFile::new(dir.path().join("account"))
        .store(format!("{smart}\t{virtual_account}\n").as_bytes())?;
    println!("{va}");
    Ok(())
}

/// The licenses table of 004:586-590: License, Purchased, In Use, Substitution, Balance.
fn licenses(mut args: Args) -> Result<(), Failure> {
    let dir = args.state_dir()?;
    args.finish()?;
    let selected = selected_account(&dir)?;
    let (va, lines) = dir.read(|m, _| {
        current(m, &selected).map(|va| {
            let lines = m.licenses(&va);
            (va, lines)
        })
    })??;
    println!("{va}");
    println!("License\tPurchased\tIn Use\tSubstitution\tBalance");
    for l in lines {
        let name = l
            .description
            .or(l.display_name)
            .unwrap_or_else(|| l.tag.to_string());
        let substitution = if l.lent_to_lower == 0 {
            "-".to_string()
        } else {
            format!("To Lower: -{}", l.lent_to_lower)
        };
        println!(
            "{name}\t{}\t{}\t{substitution}\t+ {}",
            l.purchased, l.in_use, l.balance
        );
    }
    Ok(())
}

fn instance_line(i: &InstanceInfo) -> String {
    let usage: Vec<String> = i.usage.iter().map(|(t, n)| format!("{t}={n}")).collect();
    format!(
        "{}\t{}\t{}\t{}\t{}",
        i.piid,
        i.udi,
        i.virtual_account,
        rfc3339(i.last_contact),
        if usage.is_empty() {
            "-".to_string()
        } else {
            usage.join(",")
        }
    )
}

fn instances(mut args: Args) -> Result<(), Failure> {
    let dir = args.state_dir()?;
    args.finish()?;
    let lines = dir.read(|m, _| m.instances().iter().map(instance_line).collect::<Vec<_>>())?;
    if lines.is_empty() {
        println!("no product instances");
    }
    for line in lines {
        println!("{line}");
    }
    Ok(())
}

fn clock_set(mut args: Args) -> Result<(), Failure> {
    let dir = args.state_dir()?;
    let text = args.positional("<RFC3339>")?;
    let now = DateTime::parse_from_rfc3339(&text)
        .map_err(|_| usage(format!("not an RFC 3339 time: {text:?}")))?
        .with_timezone(&Utc);
    args.finish()?;
    dir.set_clock(now)?;
    println!("clock: {}", rfc3339(now));
    Ok(())
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn main() -> ExitCode {
    let mut words: VecDeque<String> = std::env::args().skip(1).collect();
    // `--state DIR` may come before the command words too (once; then the words follow).
    if words.front().map(String::as_str) == Some("--state") && words.len() > 2 {
        let (option, value) = (words.pop_front(), words.pop_front());
        words.extend(option.into_iter().chain(value));
    }
    if words.is_empty() || words.iter().any(|w| w == "--help" || w == "help") {
        print!("{}", usage_text());
        return if words.is_empty() {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    let command = COMMANDS
        .iter()
        .filter(|c| c.words.iter().zip(&words).all(|(a, b)| a == b) && words.len() >= c.words.len())
        .max_by_key(|c| c.words.len());
    let Some(command) = command else {
        eprintln!(
            "manager: unknown command {:?}\n{}",
            words
                .iter()
                .take_while(|w| !w.starts_with("--"))
                .take(2)
                .cloned()
                .collect::<Vec<_>>()
                .join(" "),
            usage_text()
        );
        return ExitCode::from(2);
    };
    words.drain(..command.words.len());
    match (command.run)(Args(words)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            eprintln!(
                "manager {}: {message}\nusage: manager {} {}",
                command.words.join(" "),
                command.words.join(" "),
                command.args
            );
            ExitCode::from(2)
        }
        Err(Failure::Failed(message)) => {
            eprintln!("manager {}: {message}", command.words.join(" "));
            ExitCode::from(1)
        }
    }
}
