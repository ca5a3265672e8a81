//! The command line (clap): the products' command words exactly, the harness's own commands,
//! and the options every command takes anywhere on the line (also as `--option=value`).

use std::net::IpAddr;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};
use smart_agent::{Environment, TransportSettings, Udi};

use crate::show::{self, Zone};
use crate::{harness, smart, Run};

const ABOUT: &str = "A product's licensing commands, one invocation per command: the smart-agent \
crate's example harness, with its state in a directory and the reference manager embedded (or \
over HTTPS).";

const AFTER: &str =
    "The product's own commands work as typed on the product: `license license smart register \
idtoken TOKEN`, or with the first `license` left out, `license smart register idtoken TOKEN`.

Before each command every deadline that fell due since the last one is processed, each at its \
own time; the state is written only if the command was accepted. The directory remembers its \
UDI and its manager: give --udi and the --manager-* options on first use only.

Exit status: 0 done; 1 refused before anything was sent, nothing written (and usage errors); \
2 accepted but the manager or the network said no, or a retry is pending; 3 the state \
directory is damaged or locked, nothing written.";

/// `license [OPTIONS] <COMMAND>`.
#[derive(Parser)]
#[command(
    name = "license",
    version,
    about = ABOUT,
    after_help = AFTER,
    subcommand_required = true,
    arg_required_else_help = true,
    // Messages pass the one rule for control characters, which colours would not survive.
    color = clap::ColorChoice::Never
)]
pub struct Cli {
    #[command(flatten)]
    pub options: Options,
    #[command(subcommand)]
    pub command: Command,
}

/// The options every command takes.
#[derive(Args)]
pub struct Options {
    /// The state directory (created on first use)
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        default_value = ".smart-agent",
        value_parser = parse_path
    )]
    pub state: PathBuf,
    /// The wall time; what fell due since the last command is processed first [default: the
    /// system clock]
    #[arg(long, global = true, value_name = "RFC3339", value_parser = parse_now)]
    pub now: Option<DateTime<Utc>>,
    /// The instance's UDI, on first use [default: a generated PID:UCM,SN:…,UUID:…]
    #[arg(long, global = true, value_name = "UDI", value_parser = parse_udi)]
    pub udi: Option<Udi>,
    /// The product whose words are printed
    #[arg(long, global = true, value_enum, default_value_t = Product::Ucm)]
    pub product: Product,
    /// Dates in a named fixed offset, e.g. IST=+05:30 [default: UTC]
    #[arg(long, global = true, value_name = "NAME=±HH:MM", value_parser = parse_zone)]
    pub tz: Option<Zone>,
    /// A manager over HTTPS instead of the embedded one, on first use (`manager serve` prints
    /// what the other options need); remembered from then on
    #[arg(
        long,
        global = true,
        value_name = "URL",
        requires_all = ["manager_key", "ca"]
    )]
    pub manager_url: Option<String>,
    /// With --manager-url: the manager's signing public key (SPKI PEM) the agent trusts
    #[arg(long, global = true, value_name = "PEM", requires = "manager_url")]
    pub manager_key: Option<PathBuf>,
    /// With --manager-url: the CA certificate (PEM) its TLS certificate chains to (HTTPS needs
    /// one; repeat for more)
    #[arg(long, global = true, value_name = "PEM", requires = "manager_url")]
    pub ca: Vec<PathBuf>,
    /// With --manager-url: the environment the agent accepts signatures for [default:
    /// development]
    #[arg(long, global = true, value_enum, requires = "manager_url")]
    pub manager_env: Option<Env>,
    /// Seconds to wait for another invocation holding the state directory
    #[arg(
        long,
        global = true,
        value_name = "SECONDS",
        default_value_t = 5,
        allow_hyphen_values = true
    )]
    pub lock_wait: u64,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Product {
    /// Unified CM's words (the IOS agent's)
    Ucm,
    /// Expressway's words
    Expressway,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Env {
    Production,
    Development,
}

impl From<Env> for Environment {
    fn from(e: Env) -> Environment {
        match e {
            Env::Production => Environment::Production,
            Env::Development => Environment::Development,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

/// Any path, the empty one included (the state directory refuses it in its own words).
fn parse_path(s: &str) -> Result<PathBuf, String> {
    Ok(PathBuf::from(s))
}

fn parse_now(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| "not an RFC 3339 time (e.g. 2027-03-01T09:00:00Z)".to_string())
}

fn parse_udi(s: &str) -> Result<Udi, String> {
    s.parse::<Udi>()
        .map_err(|e| format!("{e} (e.g. PID:UCM,SN:37624,UUID:6fe83addc80240bc92dc071ac7a37624)"))
}

fn parse_zone(s: &str) -> Result<Zone, String> {
    Zone::parse(s).ok_or_else(|| "NAME=+HH:MM or NAME=-HH:MM (e.g. IST=+05:30)".to_string())
}

fn parse_count(s: &str) -> Result<u32, String> {
    s.parse::<u32>()
        .map_err(|_| format!("a whole number from 0 to {}", u32::MAX))
}

fn parse_ip(s: &str) -> Result<IpAddr, String> {
    s.parse::<IpAddr>()
        .map_err(|_| "an IPv4 or IPv6 address".to_string())
}

/// The commands.
#[derive(Subcommand)]
pub enum Command {
    /// The product's own commands: `license smart register | deregister | renew`
    License {
        #[command(subcommand)]
        family: LicenseFamily,
    },
    /// The same with the first `license` left out: `license smart register idtoken TOKEN`
    Smart {
        #[command(subcommand)]
        command: Smart,
    },
    /// The product's status displays: `show license status | all | summary | usage | udi`
    Show {
        #[command(subcommand)]
        what: Show,
    },
    /// The product may use this entitlement (Init until used)
    Declare {
        /// regid.<yyyy-mm>.com.cisco.<Name>,<version>_<uuid>
        #[arg(allow_hyphen_values = true)]
        tag: String,
    },
    /// The product's count in use of a declared entitlement (reported within 60 s)
    Usage {
        /// A declared entitlement tag
        #[arg(allow_hyphen_values = true)]
        tag: String,
        /// How many are in use
        #[arg(value_parser = parse_count, allow_hyphen_values = true)]
        count: u32,
    },
    /// How to reach the manager (only while unregistered); alone: the current settings
    Transport {
        #[command(subcommand)]
        how: Option<Transport>,
    },
    /// Do not share the host name and IP address with the manager
    Privacy {
        #[arg(value_enum, value_name = "on|off")]
        setting: OnOff,
    },
    /// The product's host name and address (a change renews the identity)
    Host {
        #[arg(allow_hyphen_values = true)]
        name: String,
        #[arg(value_parser = parse_ip, allow_hyphen_values = true)]
        ip: IpAddr,
    },
    /// A subscriber node: licensing operations are refused
    Subscriber {
        #[arg(value_enum, value_name = "on|off")]
        setting: OnOff,
    },
    /// Check URL, DNS, TCP or proxy, TLS and the manager, step by step
    Diagnose,
    /// The event and alarm log
    Events,
    /// Just let time pass: process what fell due up to --now and print it
    Tick,
    /// The manager this directory remembers; offline | online (the embedded one), switch, trust
    Manager {
        #[command(subcommand)]
        command: Option<Manager>,
    },
    /// Make the new --state directory from a backup of another system's, under a new UDI
    /// (SPEC §12: restored on another system)
    RestoreBackup {
        /// The backup: a state directory of any released version (read only)
        dir: PathBuf,
    },
    /// A narrated lifecycle in virtual time, in a temporary directory
    Demo,
}

#[derive(Subcommand)]
pub enum LicenseFamily {
    /// Smart Licensing: register | deregister | renew
    Smart {
        #[command(subcommand)]
        command: Smart,
    },
    /// `license demo`, as `demo`
    #[command(hide = true)]
    Demo,
}

#[derive(Subcommand)]
pub enum Smart {
    /// Register with a token: `register idtoken TOKEN [force]`
    Register {
        #[command(subcommand)]
        with: Register,
    },
    /// Give the licenses back and return to evaluation
    Deregister,
    /// Renew the identity (ID) or the authorization (auth) now
    Renew {
        #[arg(value_enum, ignore_case = true, value_name = "ID|auth")]
        what: Renew,
    },
}

#[derive(Subcommand)]
pub enum Register {
    /// The token from the Smart Account (force: again, perhaps into another Virtual Account)
    Idtoken {
        /// 1 to 256 characters of A-Z a-z 0-9 + / % = -
        #[arg(allow_hyphen_values = true)]
        token: String,
        #[arg(value_enum, value_name = "force")]
        force: Option<ForceWord>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ForceWord {
    /// Register again even while registered
    Force,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Renew {
    /// The identity certificate
    #[value(name = "ID")]
    Id,
    /// The authorization
    Auth,
}

#[derive(Subcommand)]
pub enum Show {
    /// `show license status | all | summary | usage | udi`
    License {
        #[arg(value_enum, value_name = "status|all|summary|usage|udi")]
        display: Display,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Display {
    Status,
    All,
    Summary,
    Usage,
    Udi,
}

#[derive(Subcommand)]
pub enum Transport {
    /// Straight to Cisco (mode 0)
    Direct,
    /// An on-prem manager or transport gateway (mode 1)
    Onprem {
        /// https://<host>[:port]/SmartTransport, or host, host:port, [ipv6]:port
        #[arg(allow_hyphen_values = true)]
        url: String,
    },
    /// Through an HTTP proxy (mode 2)
    Proxy {
        /// A host name, an IPv4 or an IPv6 address
        #[arg(allow_hyphen_values = true)]
        host: String,
        /// 1 to 65535
        #[arg(allow_hyphen_values = true)]
        port: String,
        /// Basic authentication (with the password)
        #[arg(requires = "password", allow_hyphen_values = true)]
        user: Option<String>,
        #[arg(allow_hyphen_values = true)]
        password: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum Manager {
    /// The embedded manager answers like a refused connection
    Offline,
    /// The embedded manager answers again
    Online,
    /// Point the directory at another manager on purpose (remote: with the --manager-*
    /// options); its registration will not be trusted there
    Switch {
        #[arg(value_enum, value_name = "embedded|remote")]
        to: SwitchTo,
    },
    /// Also trust this signing key of the remembered remote manager (keys rotate)
    Trust {
        /// The key (SPKI PEM)
        key: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum SwitchTo {
    Embedded,
    Remote,
}

impl Command {
    /// Whether this is the demo (which makes its own directory).
    pub fn is_demo(&self) -> bool {
        matches!(
            self,
            Command::Demo
                | Command::License {
                    family: LicenseFamily::Demo
                }
        )
    }

    /// What the command does, to run against the session.
    pub fn run(self) -> Run {
        match self {
            Command::License {
                family: LicenseFamily::Smart { command },
            }
            | Command::Smart { command } => match command {
                Smart::Register {
                    with: Register::Idtoken { token, force },
                } => smart::register(token, force.is_some()),
                Smart::Deregister => smart::deregister(),
                Smart::Renew { what: Renew::Id } => smart::renew_id(),
                Smart::Renew { what: Renew::Auth } => smart::renew_auth(),
            },
            Command::Show {
                what: Show::License { display },
            } => show::show(match display {
                Display::Status => show::status,
                Display::All => show::all,
                Display::Summary => show::summary,
                Display::Usage => show::usage,
                Display::Udi => show::udi_display,
            }),
            Command::Declare { tag } => harness::declare(tag),
            Command::Usage { tag, count } => harness::usage(tag, count),
            Command::Transport { how: None } => harness::transport_show(),
            Command::Transport { how: Some(how) } => harness::transport(match how {
                Transport::Direct => Ok(TransportSettings::Direct),
                Transport::Onprem { url } => TransportSettings::on_prem(&url),
                Transport::Proxy {
                    host,
                    port,
                    user,
                    password,
                } => {
                    let credentials = user
                        .as_deref()
                        .map(|u| (u, password.as_deref().unwrap_or_default()));
                    TransportSettings::proxy(&host, &port, credentials)
                }
            }),
            Command::Privacy { setting } => harness::privacy(matches!(setting, OnOff::On)),
            Command::Host { name, ip } => harness::host(name, ip),
            Command::Subscriber { setting } => harness::subscriber(matches!(setting, OnOff::On)),
            Command::Diagnose => harness::diagnose(),
            Command::Events => harness::events(),
            Command::Tick => harness::tick(),
            Command::Manager { command: None } => harness::manager_show(),
            Command::Manager {
                command: Some(command),
            } => match command {
                Manager::Offline => harness::manager_offline(true),
                Manager::Online => harness::manager_offline(false),
                Manager::Switch { to } => harness::manager_switch(to == SwitchTo::Remote),
                Manager::Trust { key } => harness::manager_trust(key),
            },
            Command::RestoreBackup { .. } => harness::restore_backup(),
            Command::Demo
            | Command::License {
                family: LicenseFamily::Demo,
            } => Box::new(|_| crate::outcome::Outcome::refused("demo runs on its own")),
        }
    }
}
