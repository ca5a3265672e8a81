//! Runs the reference Smart Software Manager over HTTPS and administers its state directory.
//!
//! ```text
//! cargo run --example manager --features manager -- serve --state DIR --listen 127.0.0.1:8443
//! cargo run --example manager --features manager -- pool add <tag> <count> [--state DIR]
//! cargo run --example manager --features manager -- token create [--no-export] [--state DIR]
//! cargo run --example manager --features manager -- --help
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
//! The administration commands work on the same directory, whether `serve` runs or not: each
//! is one transaction of the directory's database, between the server's; a second `serve` on
//! a served directory refuses to start. The command line is clap's: `-h`/`--help` and
//! `--version` on stdout (exit 0), options anywhere and as `--option=value`. Exit status: 0
//! done, 1 failed (message on stderr), 2 bad arguments (usage on stderr).

#[path = "license/text.rs"]
mod text;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use clap::{Parser, Subcommand, ValueEnum};
use smart_agent::manager::{
    DirError, InstanceInfo, InstanceQuery, Manager, ManagerError, Server, ServerError,
    ServerOptions, StateDir, TokenOptions, VirtualAccountId,
};
use smart_agent::{Environment, Tag, Token};

use text::{shown, shown_lines};

/// The embedded manager of the license harness's default state directory.
const EMBEDDED: &str = ".smart-agent/manager";

const AFTER: &str = "Without --state the administration commands work on the license \
harness's embedded manager in ./.smart-agent/manager (created on first use); a license harness \
directory given as --state means its embedded manager.

Exit status: 0 done, 1 failed (the message on stderr), 2 bad arguments (the usage on stderr).";

/// `manager [--state DIR] <COMMAND>`.
#[derive(Parser)]
#[command(
    name = "manager",
    version,
    about = "The reference Smart Software Manager: serve it over HTTPS, administer its state directory.",
    after_help = AFTER,
    subcommand_required = true,
    arg_required_else_help = true,
    color = clap::ColorChoice::Never
)]
struct Cli {
    /// The manager's state directory, or a license harness directory (its embedded manager)
    /// [default: ./.smart-agent/manager, created on first use]
    #[arg(long, global = true, value_name = "DIR")]
    state: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the manager over HTTPS until killed (--state is required)
    Serve {
        /// The address and port to listen on; port 0 picks a free one
        #[arg(long, value_name = "ADDR", value_parser = parse_listen)]
        listen: SocketAddr,
        /// The environment a new directory signs for (an existing one keeps its own)
        /// [default: development]
        #[arg(long, value_enum)]
        environment: Option<Env>,
        /// Give the directory a virtual clock (at the system time unless it has one), moved by
        /// `clock set`; a directory with a clock file uses it either way
        #[arg(long)]
        virtual_clock: bool,
        /// Another name or address for the server certificate, besides localhost, 127.0.0.1
        /// and ::1 (repeat for more)
        #[arg(long = "host", value_name = "NAME")]
        hosts: Vec<String>,
    },
    /// Select the Smart and Virtual Account later commands use (made if new); alone: list them
    Account {
        /// The Smart Account [default: the manager's default]
        #[arg(long = "smart", value_name = "NAME")]
        smart: Option<String>,
        /// The Virtual Account [default: the manager's default]
        #[arg(long = "virtual", value_name = "NAME")]
        virtual_account: Option<String>,
    },
    /// Licenses of the selected Virtual Account
    Pool {
        #[command(subcommand)]
        command: Pool,
    },
    /// Registration tokens of the selected Virtual Account
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// The product instances: a header line, then piid, UDI, Virtual Account, last contact,
    /// usage, in registration order
    Instances {
        /// List at most this many (a last line says how many more there are)
        #[arg(long, value_name = "N", default_value_t = 1000, value_parser = parse_limit)]
        limit: usize,
        /// Only those whose UDI contains this text (ASCII case ignored)
        #[arg(long, value_name = "TEXT")]
        udi: Option<String>,
    },
    /// The licenses table of the selected Virtual Account (004:586)
    Licenses,
    /// The virtual clock
    Clock {
        #[command(subcommand)]
        command: Clock,
    },
}

#[derive(Subcommand)]
enum Pool {
    /// Buy licenses of a tag
    Add {
        /// regid.<yyyy-mm>.com.cisco.<Name>,<version>_<uuid>
        #[arg(value_parser = parse_tag, allow_hyphen_values = true)]
        tag: Tag,
        /// How many to add
        #[arg(value_parser = parse_count, allow_hyphen_values = true)]
        count: u32,
        /// The display name agents show [default: the catalogue's]
        #[arg(long, value_name = "TEXT")]
        name: Option<String>,
        /// The description agents show [default: the catalogue's]
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Make a token (printed on the last line)
    Create {
        /// Allow export-controlled functionality on the products registered with it (the
        /// default: the checkbox is ticked, 004:279)
        #[arg(long, overrides_with = "no_export")]
        export: bool,
        /// Do not allow it (the administrator unticks the checkbox)
        #[arg(long, overrides_with = "export")]
        no_export: bool,
        /// Days it is valid, 1 to 365
        #[arg(long, value_name = "DAYS", default_value_t = 30, value_parser = parse_days)]
        expires: i64,
        /// How many registrations it allows, from 1 [default: any number]
        #[arg(long, value_name = "N", value_parser = parse_uses)]
        uses: Option<u32>,
    },
    /// Revoke a token: registrations with it are refused from then on
    Revoke {
        #[arg(value_parser = parse_token, allow_hyphen_values = true)]
        token: Token,
    },
}

#[derive(Subcommand)]
enum Clock {
    /// Set the directory's virtual clock (a served manager answers at it)
    Set {
        #[arg(value_name = "RFC3339", value_parser = parse_time)]
        time: DateTime<Utc>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Env {
    Production,
    Development,
}

fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|_| "an address and port, e.g. 127.0.0.1:8443".to_string())
}

fn parse_tag(s: &str) -> Result<Tag, String> {
    Tag::parse(s).map_err(|_| {
        "an entitlement tag, regid.<yyyy-mm>.com.cisco.<Name>,<version>_<uuid>".to_string()
    })
}

fn parse_count(s: &str) -> Result<u32, String> {
    s.parse()
        .map_err(|_| format!("a whole number from 0 to {}", u32::MAX))
}

fn parse_days(s: &str) -> Result<i64, String> {
    s.parse()
        .ok()
        .filter(|d| (1..=365).contains(d))
        .ok_or_else(|| "days from 1 to 365".to_string())
}

fn parse_uses(s: &str) -> Result<u32, String> {
    s.parse()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| format!("a number of registrations from 1 to {}", u32::MAX))
}

fn parse_limit(s: &str) -> Result<usize, String> {
    s.parse()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| "a number of instances from 1".to_string())
}

fn parse_token(s: &str) -> Result<Token, String> {
    Token::parse(s).map_err(|e| e.to_string())
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| "not an RFC 3339 time (e.g. 2027-03-01T09:00:00Z)".to_string())
}

/// Why a command did not complete: exit 1 with the message (already shown by the one rule
/// for control characters).
struct Failure(String);

impl From<ManagerError> for Failure {
    fn from(e: ManagerError) -> Self {
        Failure(manager_error(&e))
    }
}

impl From<DirError> for Failure {
    fn from(e: DirError) -> Self {
        match e {
            DirError::Manager(m) => Failure(manager_error(&m)),
            other => Failure(shown_lines(&other.to_string())),
        }
    }
}

impl From<ServerError> for Failure {
    fn from(e: ServerError) -> Self {
        match e {
            ServerError::Dir(d) => d.into(),
            other => Failure(shown_lines(&other.to_string())),
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure(shown_lines(&e.to_string()))
    }
}

/// A manager refusal in words, names shown by the one rule (the library's messages quote
/// them with Rust's `Debug`).
fn manager_error(e: &ManagerError) -> String {
    match e {
        ManagerError::InvalidName(n) => format!(
            "invalid account name \"{}\" (1 to 100 characters, no control characters, no leading or trailing space)",
            shown(n)
        ),
        ManagerError::DuplicateSmartAccount(n) => {
            format!("Smart Account \"{}\" exists already", shown(n))
        }
        ManagerError::UnknownSmartAccount(n) => format!("no Smart Account \"{}\"", shown(n)),
        other => shown_lines(&other.to_string()),
    }
}

/// The state directory `--state` names (a license harness directory means its embedded
/// manager), which must exist; without `--state` the harness's default embedded manager,
/// created on first use so that a first `pool add` just works.
fn state_dir(given: Option<PathBuf>) -> Result<StateDir, Failure> {
    let Some(path) = given else {
        return Ok(StateDir::open_or_create(EMBEDDED, None)?);
    };
    let path = if !path.join("state").exists() && path.join("manager").join("state").exists() {
        path.join("manager")
    } else {
        path
    };
    Ok(StateDir::open(path)?)
}

fn serve(
    state: PathBuf,
    listen: SocketAddr,
    environment: Option<Env>,
    virtual_clock: bool,
    hosts: Vec<String>,
) -> Result<(), Failure> {
    if state.exists() && !state.is_dir() {
        return Err(Failure(format!(
            "{}: not a directory (give a new directory, or an existing manager state directory)",
            shown(&state.display().to_string())
        )));
    }
    let mut options = ServerOptions::default();
    options.listen = listen;
    options.environment = environment.map(|e| match e {
        Env::Production => Environment::Production,
        Env::Development => Environment::Development,
    });
    options.virtual_clock = virtual_clock;
    options.hosts = hosts;
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

fn pool_add(
    dir: StateDir,
    tag: Tag,
    count: u32,
    name: Option<String>,
    description: Option<String>,
) -> Result<(), Failure> {
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

fn token_create(
    dir: StateDir,
    export: bool,
    explicit_export: bool,
    expires: i64,
    uses: Option<u32>,
) -> Result<(), Failure> {
    let options = TokenOptions {
        export_controlled: export,
        expires_after: TimeDelta::days(expires),
        max_uses: uses,
    };
    let selected = selected_account(&dir)?;
    let (token, va, expires, restricted) = dir.update(|m, now| {
        let va = current(m, &selected)?;
        let restricted = m.is_export_restricted(va.smart_account())?;
        if explicit_export && restricted {
            // The checkbox does not exist for such an account (004:281).
            return Err(ManagerError::ExportRestricted(
                va.smart_account().to_string(),
            ));
        }
        let token = m.create_token(&va, options, now)?;
        Ok((token, va, now + options.expires_after, restricted))
    })?;
    let export = if restricted {
        "export-controlled functionality not allowed (the Smart Account is under export restrictions)"
    } else if options.export_controlled {
        "export-controlled functionality allowed"
    } else {
        "export-controlled functionality not allowed"
    };
    let uses = match options.max_uses {
        Some(n) => format!("{n} registration(s)"),
        None => "any number of registrations".to_string(),
    };
    println!(
        "Registration token for {}, valid until {}, {uses}, {export}:",
        shown(&va.to_string()),
        rfc3339(expires)
    );
    println!("{}", token.expose());
    Ok(())
}

fn token_revoke(dir: StateDir, token: Token) -> Result<(), Failure> {
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
                .ok_or_else(|| Failure(format!("{}: not an account selection", path.display())))?;
            Ok(Some((smart.to_string(), virtual_account.to_string())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Failure(format!("{}: {e}", path.display()))),
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

fn account(
    dir: StateDir,
    smart: Option<String>,
    virtual_account: Option<String>,
) -> Result<(), Failure> {
    let selected = selected_account(&dir)?;
    if smart.is_none() && virtual_account.is_none() {
        let (current, all) = dir.read(|m, _| (current(m, &selected), m.virtual_accounts()))?;
        let current = current?;
        for va in all {
            let mark = if va == current { "*" } else { " " };
            println!("{mark} {}", shown(&va.to_string()));
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
    println!("{}", shown(&va.to_string()));
    Ok(())
}

/// The licenses table of 004:586-590: License, Purchased, In Use, Substitution, Balance.
fn licenses(dir: StateDir) -> Result<(), Failure> {
    let selected = selected_account(&dir)?;
    let (va, lines) = dir.read(|m, _| {
        current(m, &selected).map(|va| {
            let lines = m.licenses(&va);
            (va, lines)
        })
    })??;
    println!("{}", shown(&va.to_string()));
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
            "{}\t{}\t{}\t{substitution}\t+ {}",
            shown(&name),
            l.purchased,
            l.in_use,
            l.balance
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
        shown(&i.virtual_account.to_string()),
        rfc3339(i.last_contact),
        if usage.is_empty() {
            "-".to_string()
        } else {
            usage.join(",")
        }
    )
}

/// A header line, then one line per instance in registration order: at most `limit` of
/// those whose UDI contains `udi`, and a last line saying how many more there are.
fn instances(dir: StateDir, limit: usize, udi: Option<String>) -> Result<(), Failure> {
    let mut query = InstanceQuery::default();
    query.limit = Some(limit);
    query.udi_contains = udi;
    let (total, lines) = dir.read(|m, _| {
        let total = m.count_instances(&query);
        let lines: Vec<String> = m.find_instances(&query).iter().map(instance_line).collect();
        (total, lines)
    })?;
    if lines.is_empty() {
        println!("no product instances");
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "Product Instance ID\tUDI\tVirtual Account\tLast Contact\tUsage"
    )?;
    for line in &lines {
        writeln!(out, "{line}")?;
    }
    let more = total.saturating_sub(lines.len() as u64);
    if more > 0 {
        writeln!(out, "… {more} more (--limit N lists more)")?;
    }
    Ok(())
}

fn clock_set(dir: StateDir, now: DateTime<Utc>) -> Result<(), Failure> {
    dir.set_clock(now)?;
    println!("clock: {}", rfc3339(now));
    Ok(())
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn run(cli: Cli) -> Result<(), Failure> {
    let state = cli.state;
    match cli.command {
        Command::Serve {
            listen,
            environment,
            virtual_clock,
            hosts,
        } => {
            // main checked it is there.
            let state = state.unwrap_or_default();
            serve(state, listen, environment, virtual_clock, hosts)
        }
        Command::Account {
            smart,
            virtual_account,
        } => account(state_dir(state)?, smart, virtual_account),
        Command::Pool {
            command:
                Pool::Add {
                    tag,
                    count,
                    name,
                    description,
                },
        } => pool_add(state_dir(state)?, tag, count, name, description),
        Command::Token {
            command:
                TokenCommand::Create {
                    export,
                    no_export,
                    expires,
                    uses,
                },
        } => token_create(state_dir(state)?, !no_export, export, expires, uses),
        Command::Token {
            command: TokenCommand::Revoke { token },
        } => token_revoke(state_dir(state)?, token),
        Command::Instances { limit, udi } => instances(state_dir(state)?, limit, udi),
        Command::Licenses => licenses(state_dir(state)?),
        Command::Clock {
            command: Clock::Set { time },
        } => clock_set(state_dir(state)?, time),
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let text = shown_lines(e.render().to_string().trim_end()) + "\n";
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                _ => {
                    eprint!("{text}");
                    ExitCode::from(2)
                }
            };
        }
    };
    if matches!(cli.command, Command::Serve { .. }) && cli.state.is_none() {
        use clap::CommandFactory as _;
        let e = Cli::command().error(
            clap::error::ErrorKind::MissingRequiredArgument,
            "serve needs --state DIR (the directory to serve; made if new)",
        );
        eprint!("{}", shown_lines(e.render().to_string().trim_end()) + "\n");
        return ExitCode::from(2);
    }
    let name = command_name(&cli.command);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message)) => {
            eprintln!("manager {name}: {message}");
            ExitCode::from(1)
        }
    }
}

/// The command's words, for messages.
fn command_name(c: &Command) -> &'static str {
    match c {
        Command::Serve { .. } => "serve",
        Command::Account { .. } => "account",
        Command::Pool { .. } => "pool add",
        Command::Token {
            command: TokenCommand::Create { .. },
        } => "token create",
        Command::Token {
            command: TokenCommand::Revoke { .. },
        } => "token revoke",
        Command::Instances { .. } => "instances",
        Command::Licenses => "licenses",
        Command::Clock { .. } => "clock set",
    }
}
