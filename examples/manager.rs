//! Runs the reference Smart Software Manager over HTTPS and administers its state directory.
//!
//! ```text
//! cargo run --example manager --features manager -- serve --state DIR --listen 127.0.0.1:8443
//! cargo run --example manager --features manager -- pool add <tag> <count> [--state DIR]
//! cargo run --example manager --features manager -- token create [--no-export] [--state DIR]
//! cargo run --example manager --features manager -- account --reservation on
//! cargo run --example manager --features manager -- reservation authorize <request code> --license <tag>=<n>
//! cargo run --example manager --features manager -- export-key add <feature> <count>
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

use chrono::{DateTime, NaiveDate, SecondsFormat, TimeDelta, Utc};
use clap::{Parser, Subcommand, ValueEnum};
use smart_agent::codes::ReservationKind;
use smart_agent::manager::{
    DirError, InstanceInfo, InstanceQuery, IssuedReservation, Manager, ManagerError,
    ReservationInfo, ReservedLicense, Server, ServerError, ServerOptions, StateDir, TokenOptions,
    VirtualAccountId,
};
use smart_agent::udi::{Udi, Uuid};
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
        /// Answer every export authorization key request "not supported" (SPEC §7); without
        /// it the manager grants them
        #[arg(long)]
        no_export_keys: bool,
    },
    /// Select the Smart and Virtual Account later commands use (made if new); alone: list them.
    /// --reservation and --export-restricted set the Smart Account's entitlements (the
    /// selected one's without --smart/--virtual, the selection then unchanged)
    Account {
        /// The Smart Account [default: the manager's default]
        #[arg(long = "smart", value_name = "NAME")]
        smart: Option<String>,
        /// The Virtual Account [default: the manager's default]
        #[arg(long = "virtual", value_name = "NAME")]
        virtual_account: Option<String>,
        /// Entitle the Smart Account to License Reservation (SLR and PLR), or take it away
        #[arg(long, value_enum, value_name = "on|off")]
        reservation: Option<Switch>,
        /// Put the Smart Account under export restrictions (its tokens never allow
        /// export-controlled functionality; its products use export authorization keys)
        #[arg(long, value_enum, value_name = "on|off")]
        export_restricted: Option<Switch>,
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
    /// License Reservation (SLR and PLR) from the selected Virtual Account
    Reservation {
        #[command(subcommand)]
        command: ReservationCommand,
    },
    /// Export authorization keys of the selected Virtual Account
    ExportKey {
        #[command(subcommand)]
        command: ExportKeyCommand,
    },
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
enum ReservationCommand {
    /// Turn a product's reservation request code into an authorization code (printed on the
    /// last line): an SLR of the --license counts, or a PLR of the --plr entitlement
    #[command(group(clap::ArgGroup::new("what").required(true).args(["licenses", "plr"])))]
    Authorize {
        /// The product's request code (CB-…)
        #[arg(value_name = "REQUEST-CODE", allow_hyphen_values = true)]
        request_code: String,
        /// A license to reserve: TAG=COUNT, or TAG=COUNT,START,END (YYYY-MM-DD) for a TERM
        /// license (repeat for more)
        #[arg(long = "license", value_name = "TAG=COUNT[,START,END]", value_parser = parse_reserved)]
        licenses: Vec<ReservedLicense>,
        /// A Permanent License Reservation of this PLR entitlement instead (one license)
        #[arg(long, value_name = "TAG", value_parser = parse_tag, conflicts_with = "licenses")]
        plr: Option<Tag>,
        /// Allow export-controlled functionality (the account must permit export)
        #[arg(long)]
        export: bool,
    },
    /// A newer code for an instance's reservation (printed on the last line): an SLR's new
    /// counts, or one more PLR entitlement added to a PLR's set
    #[command(group(clap::ArgGroup::new("what").required(true).args(["licenses", "plr"])))]
    Update {
        /// The instance: its UDI or its product instance id
        #[arg(value_name = "UDI|PIID")]
        instance: String,
        /// The SLR's new content: TAG=COUNT[,START,END] (repeat for more)
        #[arg(long = "license", value_name = "TAG=COUNT[,START,END]", value_parser = parse_reserved)]
        licenses: Vec<ReservedLicense>,
        /// The PLR entitlement to add to a PLR's set
        #[arg(long, value_name = "TAG", value_parser = parse_tag, conflicts_with = "licenses")]
        plr: Option<Tag>,
    },
    /// Enter the product's confirmation code for the latest code of an instance's SLR
    Confirm {
        /// The instance: its UDI or its product instance id
        #[arg(value_name = "UDI|PIID")]
        instance: String,
        /// The confirmation code the product printed
        #[arg(value_name = "CODE")]
        code: String,
    },
    /// Enter a product's return code: the reservation's licenses go back to the pools
    Return {
        /// The return code the product printed
        #[arg(value_name = "RETURN-CODE", allow_hyphen_values = true)]
        code: String,
    },
    /// The reservations: a header line, then piid, UDI, Virtual Account, type, licenses
    /// held, state, export
    List,
}

#[derive(Subcommand)]
enum ExportKeyCommand {
    /// Buy export authorization keys for a feature
    Add {
        /// The feature, e.g. CUCM_Export_Restricted_Authorization_Key
        #[arg(value_name = "FEATURE", allow_hyphen_values = true)]
        feature: String,
        /// How many to add
        #[arg(value_parser = parse_count, allow_hyphen_values = true)]
        count: u32,
    },
    /// The selected Virtual Account's keys: a header line, then feature, total, in use
    List,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Switch {
    On,
    Off,
}

impl Switch {
    fn on(self) -> bool {
        self == Switch::On
    }
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

/// `TAG=COUNT` or `TAG=COUNT,START,END` (a tag holds commas but no `=`).
fn parse_reserved(s: &str) -> Result<ReservedLicense, String> {
    const USAGE: &str = "TAG=COUNT, or TAG=COUNT,START,END with dates as YYYY-MM-DD";
    let (tag, rest) = s.split_once('=').ok_or_else(|| USAGE.to_string())?;
    let tag = parse_tag(tag)?;
    let mut parts = rest.split(',');
    let count: u32 = parts
        .next()
        .and_then(|c| c.parse().ok())
        .filter(|c| *c >= 1)
        .ok_or_else(|| format!("a count from 1 to {} ({USAGE})", u32::MAX))?;
    let date = |d: Option<&str>| {
        d.and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            .ok_or_else(|| format!("a TERM license's start and end dates ({USAGE})"))
    };
    let term = match (parts.next(), parts.next(), parts.next()) {
        (None, _, _) => None,
        (start, end, None) => Some((date(start)?, date(end)?)),
        _ => return Err(USAGE.to_string()),
    };
    Ok(ReservedLicense { tag, count, term })
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

/// Why a command did not complete.
enum Failure {
    /// Exit 1 with the message (already shown by the one rule for control characters).
    Refused(String),
    /// Standard output's reader went away (`manager token list | head -1`): what the command
    /// did stands and only its unread output is lost, so it stops quietly with exit 0 instead
    /// of the panic `println!` gives on a closed pipe.
    OutputClosed,
}

/// `println!` that stops the command with [`Failure::OutputClosed`] (or the write's error)
/// instead of panicking when standard output cannot be written.
macro_rules! say {
    ($($arg:tt)*) => {
        writeln!(std::io::stdout(), $($arg)*)?
    };
}

impl From<ManagerError> for Failure {
    fn from(e: ManagerError) -> Self {
        Failure::Refused(manager_error(&e))
    }
}

impl From<DirError> for Failure {
    fn from(e: DirError) -> Self {
        match e {
            DirError::Manager(m) => Failure::Refused(manager_error(&m)),
            other => Failure::Refused(shown_lines(&other.to_string())),
        }
    }
}

impl From<ServerError> for Failure {
    fn from(e: ServerError) -> Self {
        match e {
            ServerError::Dir(d) => d.into(),
            other => Failure::Refused(shown_lines(&other.to_string())),
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Failure::OutputClosed
        } else {
            Failure::Refused(shown_lines(&e.to_string()))
        }
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
    export_keys: bool,
) -> Result<(), Failure> {
    if state.exists() && !state.is_dir() {
        return Err(Failure::Refused(format!(
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
    // Before the address is printed, so no agent sees the previous setting.
    dir.update(|m, _| m.set_export_keys_supported(export_keys))?;
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
    if !export_keys {
        writeln!(out, "export authorization keys: not supported")?;
    }
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
        say!(
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
    say!(
        "Registration token for {}, valid until {}, {uses}, {export}:",
        shown(&va.to_string()),
        rfc3339(expires)
    );
    say!("{}", token.expose());
    Ok(())
}

fn token_revoke(dir: StateDir, token: Token) -> Result<(), Failure> {
    dir.update(|m, _| m.revoke_token(&token))?;
    say!("revoked");
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
                    Failure::Refused(format!("{}: not an account selection", path.display()))
                })?;
            Ok(Some((smart.to_string(), virtual_account.to_string())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Failure::Refused(format!("{}: {e}", path.display()))),
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

/// What `account` sets on the Smart Account besides selecting.
struct AccountFlags {
    reservation: Option<bool>,
    export_restricted: Option<bool>,
}

impl AccountFlags {
    fn any(&self) -> bool {
        self.reservation.is_some() || self.export_restricted.is_some()
    }

    fn apply(&self, m: &mut Manager, smart: &str) -> Result<(), ManagerError> {
        if let Some(on) = self.reservation {
            m.set_reservation_allowed(smart, on)?;
        }
        if let Some(on) = self.export_restricted {
            m.set_export_restricted(smart, on)?;
        }
        Ok(())
    }

    fn print(&self) -> Result<(), Failure> {
        let word = |on: bool| if on { "on" } else { "off" };
        if let Some(on) = self.reservation {
            say!("License Reservation: {}", word(on));
        }
        if let Some(on) = self.export_restricted {
            say!("Export restrictions: {}", word(on));
        }
        Ok(())
    }
}

fn account(
    dir: StateDir,
    smart: Option<String>,
    virtual_account: Option<String>,
    flags: AccountFlags,
) -> Result<(), Failure> {
    let selected = selected_account(&dir)?;
    if smart.is_none() && virtual_account.is_none() && flags.any() {
        // The selected account's Smart Account; the selection stays.
        let va = dir.update(|m, _| {
            let va = current(m, &selected)?;
            flags.apply(m, va.smart_account())?;
            Ok(va)
        })?;
        say!("{}", shown(&va.to_string()));
        flags.print()?;
        return Ok(());
    }
    if smart.is_none() && virtual_account.is_none() {
        let (current, all) = dir.read(|m, _| (current(m, &selected), m.virtual_accounts()))?;
        let current = current?;
        for va in all {
            let mark = if va == current { "*" } else { " " };
            say!("{mark} {}", shown(&va.to_string()));
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
        let va = match m.add_virtual_account(&smart, &virtual_account) {
            Ok(va) => va,
            Err(ManagerError::DuplicateVirtualAccount(va)) => va,
            Err(e) => return Err(e),
        };
        flags.apply(m, &smart)?;
        Ok(va)
    })?;
    smart_agent::store::AtomicFile::new(dir.path().join("account"))
        .store(format!("{smart}\t{virtual_account}\n").as_bytes())?;
    say!("{}", shown(&va.to_string()));
    flags.print()?;
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
    say!("{}", shown(&va.to_string()));
    say!("License\tPurchased\tIn Use\tSubstitution\tBalance");
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
        // 004:589: "4 (4 Reserved)".
        let in_use = if l.reserved == 0 {
            l.in_use.to_string()
        } else {
            format!("{} ({} Reserved)", l.in_use, l.reserved)
        };
        say!(
            "{}\t{}\t{in_use}\t{substitution}\t+ {}",
            shown(&name),
            l.purchased,
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
        say!("no product instances");
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

fn kind_word(kind: ReservationKind) -> &'static str {
    match kind {
        ReservationKind::Specific => "SLR",
        ReservationKind::Universal => "PLR",
    }
}

/// A code the manager issued: what it is, then the code alone on the last line.
fn print_issued(issued: &IssuedReservation) -> Result<(), Failure> {
    let what = match issued.kind {
        ReservationKind::Specific => "Specific License Reservation",
        ReservationKind::Universal => "Permanent License Reservation",
    };
    say!(
        "{what} authorization code for {}, product instance {} (install it on the product):",
        shown(&issued.udi.to_string()),
        issued.piid
    );
    say!("{}", issued.code);
    Ok(())
}

fn reservation_authorize(
    dir: StateDir,
    request_code: String,
    licenses: Vec<ReservedLicense>,
    plr: Option<Tag>,
    export: bool,
) -> Result<(), Failure> {
    let selected = selected_account(&dir)?;
    let issued = dir.update(|m, now| {
        let va = current(m, &selected)?;
        m.authorize_reservation(&va, &request_code, &licenses, plr.as_ref(), export, now)
    })?;
    print_issued(&issued)?;
    Ok(())
}

fn reservation_update(
    dir: StateDir,
    instance: String,
    licenses: Vec<ReservedLicense>,
    plr: Option<Tag>,
) -> Result<(), Failure> {
    let issued =
        dir.update(|m, now| m.update_reservation(&instance, &licenses, plr.as_ref(), now))?;
    print_issued(&issued)?;
    Ok(())
}

fn reservation_confirm(dir: StateDir, instance: String, code: String) -> Result<(), Failure> {
    let info = dir.update(|m, _| {
        m.confirm_reservation(&instance, &code)?;
        let piid = instance.parse::<Uuid>().ok();
        let udi = instance.parse::<Udi>().ok();
        Ok(m.reservations()
            .into_iter()
            .find(|r| Some(r.piid) == piid || udi.as_ref() == Some(&r.udi)))
    })?;
    match info {
        Some(r) => say!(
            "confirmed: {} holds {}",
            shown(&r.udi.to_string()),
            held(&r)
        ),
        None => say!("confirmed"),
    }
    Ok(())
}

fn reservation_return(dir: StateDir, code: String) -> Result<(), Failure> {
    let returned = dir.update(|m, now| m.return_reservation(&code, now))?;
    let freed: Vec<String> = returned
        .freed
        .iter()
        .map(|(t, n)| format!("{t}={n}"))
        .collect();
    say!(
        "returned: product instance {} ({}); back in the pool: {}",
        returned.piid,
        shown(&returned.udi.to_string()),
        if freed.is_empty() {
            "-".to_string()
        } else {
            freed.join(" ")
        }
    );
    Ok(())
}

fn held(r: &ReservationInfo) -> String {
    if r.held.is_empty() {
        return "-".to_string();
    }
    r.held
        .iter()
        .map(|(t, n)| format!("{t}={n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn reservation_list(dir: StateDir) -> Result<(), Failure> {
    let all = dir.read(|m, _| m.reservations())?;
    if all.is_empty() {
        say!("no reservations");
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "Product Instance ID\tUDI\tVirtual Account\tType\tLicenses\tState\tExport"
    )?;
    for r in &all {
        writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            r.piid,
            shown(&r.udi.to_string()),
            shown(&r.virtual_account.to_string()),
            kind_word(r.kind),
            held(r),
            if r.in_transit {
                "update in transit"
            } else {
                "reserved"
            },
            if r.export_controlled {
                "allowed"
            } else {
                "not allowed"
            }
        )?;
    }
    Ok(())
}

fn export_key_add(dir: StateDir, feature: String, count: u32) -> Result<(), Failure> {
    let selected = selected_account(&dir)?;
    let pool = dir.update(|m, _| {
        let va = current(m, &selected)?;
        m.add_export_keys(&va, &feature, count)?;
        Ok(m.export_key_pools(&va)
            .into_iter()
            .find(|p| p.feature == feature))
    })?;
    if let Some(p) = pool {
        say!("{}: total {}, in use {}", p.feature, p.total, p.in_use);
    }
    Ok(())
}

fn export_key_list(dir: StateDir) -> Result<(), Failure> {
    let selected = selected_account(&dir)?;
    let (va, pools, supported) = dir.read(|m, _| {
        current(m, &selected).map(|va| {
            let pools = m.export_key_pools(&va);
            (va, pools, m.export_keys_supported())
        })
    })??;
    say!("{}", shown(&va.to_string()));
    if !supported {
        say!(
            "(export authorization keys are not supported by this manager: serve --no-export-keys)"
        );
    }
    say!("Feature\tTotal\tIn Use");
    for p in pools {
        say!("{}\t{}\t{}", p.feature, p.total, p.in_use);
    }
    Ok(())
}

fn clock_set(dir: StateDir, now: DateTime<Utc>) -> Result<(), Failure> {
    dir.set_clock(now)?;
    say!("clock: {}", rfc3339(now));
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
            no_export_keys,
        } => {
            // main checked it is there.
            let state = state.unwrap_or_default();
            serve(
                state,
                listen,
                environment,
                virtual_clock,
                hosts,
                !no_export_keys,
            )
        }
        Command::Account {
            smart,
            virtual_account,
            reservation,
            export_restricted,
        } => account(
            state_dir(state)?,
            smart,
            virtual_account,
            AccountFlags {
                reservation: reservation.map(Switch::on),
                export_restricted: export_restricted.map(Switch::on),
            },
        ),
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
        Command::Reservation { command } => {
            let dir = state_dir(state)?;
            match command {
                ReservationCommand::Authorize {
                    request_code,
                    licenses,
                    plr,
                    export,
                } => reservation_authorize(dir, request_code, licenses, plr, export),
                ReservationCommand::Update {
                    instance,
                    licenses,
                    plr,
                } => reservation_update(dir, instance, licenses, plr),
                ReservationCommand::Confirm { instance, code } => {
                    reservation_confirm(dir, instance, code)
                }
                ReservationCommand::Return { code } => reservation_return(dir, code),
                ReservationCommand::List => reservation_list(dir),
            }
        }
        Command::ExportKey { command } => {
            let dir = state_dir(state)?;
            match command {
                ExportKeyCommand::Add { feature, count } => export_key_add(dir, feature, count),
                ExportKeyCommand::List => export_key_list(dir),
            }
        }
        Command::Clock {
            command: Clock::Set { time },
        } => clock_set(state_dir(state)?, time),
    }
}

fn main() -> ExitCode {
    // Lossy: an argument that is not UTF-8 is refused by clap's parse below, not a panic here.
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let text = text::usage_error(&e.render().to_string(), &args);
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    // Help into a closed pipe is not an error either (see `Failure`).
                    let _ = std::io::stdout().write_all(text.as_bytes());
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
        Err(Failure::OutputClosed) => ExitCode::SUCCESS,
        Err(Failure::Refused(message)) => {
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
        Command::Reservation { command } => match command {
            ReservationCommand::Authorize { .. } => "reservation authorize",
            ReservationCommand::Update { .. } => "reservation update",
            ReservationCommand::Confirm { .. } => "reservation confirm",
            ReservationCommand::Return { .. } => "reservation return",
            ReservationCommand::List => "reservation list",
        },
        Command::ExportKey { command } => match command {
            ExportKeyCommand::Add { .. } => "export-key add",
            ExportKeyCommand::List => "export-key list",
        },
        Command::Clock { .. } => "clock set",
    }
}
