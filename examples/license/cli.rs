//! The command line (clap): the products' command words exactly, the harness's own commands,
//! and the options every command takes anywhere on the line (also as `--option=value`).

use std::net::IpAddr;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};
use smart_agent::{Environment, TransportSettings, Udi};

use crate::show::{self, Zone};
use crate::{export, governor, harness, reservation, smart, Run};

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
    /// Expressway's configuration: `xconfiguration License Smart ReservationEnable: On|Off`
    #[command(name = "xconfiguration")]
    Xconfiguration {
        #[command(subcommand)]
        what: XconfigLicense,
    },
    /// Expressway's commands: `xcommand License Smart Reservation Request | Install "<code>" |
    /// Return | ReturnAuthorization "<code>" | Cancel`
    #[command(name = "xcommand")]
    Xcommand {
        #[command(subcommand)]
        what: XcommandLicense,
    },
    /// The product's status displays: `show license status | all | summary | usage | udi |
    /// reservation`
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
    /// Encrypted calls or registrations starting or ending, for Expressway's export-limit
    /// governor (with --product expressway)
    Session {
        #[command(subcommand)]
        what: SessionCommand,
    },
    /// WebRTC on Expressway: the export control limit is 2244 while it is on, else 2500
    Webrtc {
        #[arg(value_enum, value_name = "on|off")]
        setting: OnOff,
    },
    /// The instance is a VCS: the export control limit always applies
    Vcs {
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
pub enum SessionCommand {
    /// Start encrypted sessions, all or none (refused at the limit)
    Start {
        /// How many [default: 1]
        #[arg(value_parser = parse_count, allow_hyphen_values = true)]
        n: Option<u32>,
    },
    /// End encrypted sessions (never below zero)
    End {
        /// How many [default: 1]
        #[arg(value_parser = parse_count, allow_hyphen_values = true)]
        n: Option<u32>,
    },
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
    /// License Reservation (SLR and PLR), for a network that never reaches a manager
    Reservation {
        #[command(subcommand)]
        command: Reservation,
    },
    /// Export authorization keys, for Smart Accounts under export restrictions
    Export {
        #[command(subcommand)]
        command: Export,
    },
}

#[derive(Subcommand)]
pub enum Reservation {
    /// Turn License Reservation on (only while unregistered)
    Enable,
    /// Turn it off (refused while a code is installed)
    Disable,
    /// Print the reservation request code to enter into the manager (the same until cancel)
    Request,
    /// Cancel the request in progress (a code issued for it can still be returned)
    Cancel,
    /// Install the authorization code from the manager (a newer one updates it)
    Install {
        /// The code, quoted: "<specificPLR>…</specificPLR>" or a PLR code
        #[arg(required = true, num_args = 1.., allow_hyphen_values = true, value_name = "CODE")]
        code: Vec<String>,
    },
    /// Install the authorization code from a file: a path or a file:// URL
    InstallFile {
        /// <path> or file:///<path> (the harness reads local files only)
        #[arg(allow_hyphen_values = true, value_name = "URL")]
        url: String,
    },
    /// Return the installed reservation: print the return code to enter into the manager
    Return,
    /// A return code for an authorization code that was never installed
    ReturnAuthorization {
        /// The code, quoted
        #[arg(required = true, num_args = 1.., allow_hyphen_values = true, value_name = "CODE")]
        code: Vec<String>,
    },
}

#[derive(Subcommand)]
pub enum Export {
    /// Ask the manager for an export authorization key: `request local <feature>`
    Request {
        #[arg(value_enum, value_name = "local")]
        local: LocalWord,
        /// The export feature, e.g. CUCM_Export_Restricted_Authorization_Key
        #[arg(allow_hyphen_values = true, value_name = "FEATURE")]
        feature: String,
    },
    /// Give a key back: `return local <feature>`
    Return {
        #[arg(value_enum, value_name = "local")]
        local: LocalWord,
        #[arg(allow_hyphen_values = true, value_name = "FEATURE")]
        feature: String,
    },
    /// Stop the automatic retry of a failed request or return
    Cancel,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum LocalWord {
    /// The key is for this product instance
    Local,
}

/// `xconfiguration License Smart …` (Expressway's words).
#[derive(Subcommand)]
pub enum XconfigLicense {
    #[command(name = "License")]
    License {
        #[command(subcommand)]
        what: XconfigLicenseSmart,
    },
}

#[derive(Subcommand)]
pub enum XconfigLicenseSmart {
    #[command(name = "Smart")]
    Smart {
        #[command(subcommand)]
        what: XconfigSmart,
    },
}

/// `xcommand License Smart …` (Expressway's words).
#[derive(Subcommand)]
pub enum XcommandLicense {
    #[command(name = "License")]
    License {
        #[command(subcommand)]
        what: XcommandLicenseSmart,
    },
}

#[derive(Subcommand)]
pub enum XcommandLicenseSmart {
    #[command(name = "Smart")]
    Smart {
        #[command(subcommand)]
        what: XcommandSmart,
    },
}

#[derive(Subcommand)]
pub enum XconfigSmart {
    /// Reservation on or off (004:491)
    #[command(name = "ReservationEnable:", alias = "ReservationEnable")]
    ReservationEnable {
        #[arg(value_enum, ignore_case = true, value_name = "On|Off")]
        setting: XOnOff,
    },
}

#[derive(Subcommand)]
pub enum XcommandSmart {
    /// License Reservation (004:491-498)
    #[command(name = "Reservation")]
    Reservation {
        #[command(subcommand)]
        what: XReservation,
    },
}

#[derive(Subcommand)]
pub enum XReservation {
    /// Print the reservation request code
    #[command(name = "Request")]
    Request,
    /// Install the authorization code: Install "<code>" or Install <code>
    #[command(name = "Install")]
    Install {
        #[arg(required = true, num_args = 1.., allow_hyphen_values = true, value_name = "CODE")]
        code: Vec<String>,
    },
    /// Print the return code for the installed code
    #[command(name = "Return")]
    Return,
    /// Print the return code for a code never installed
    #[command(name = "ReturnAuthorization")]
    ReturnAuthorization {
        #[arg(required = true, num_args = 1.., allow_hyphen_values = true, value_name = "CODE")]
        code: Vec<String>,
    },
    /// Cancel the request in progress
    #[command(name = "Cancel")]
    Cancel,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum XOnOff {
    #[value(name = "On")]
    On,
    #[value(name = "Off")]
    Off,
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
    /// `show license status | all | summary | usage | udi | reservation`
    License {
        #[arg(value_enum, value_name = "status|all|summary|usage|udi|reservation")]
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
    Reservation,
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
                Smart::Reservation { command } => match command {
                    Reservation::Enable => reservation::enable(reservation::Words::Ucm),
                    Reservation::Disable => reservation::disable(reservation::Words::Ucm),
                    Reservation::Request => reservation::request(),
                    Reservation::Cancel => reservation::cancel(reservation::Words::Ucm),
                    Reservation::Install { code } => reservation::install(code),
                    Reservation::InstallFile { url } => reservation::install_file(url),
                    Reservation::Return => reservation::give_back(),
                    Reservation::ReturnAuthorization { code } => {
                        reservation::return_authorization(code)
                    }
                },
                Smart::Export { command } => match command {
                    Export::Request { feature, .. } => export::request(feature),
                    Export::Return { feature, .. } => export::give_back(feature),
                    Export::Cancel => export::cancel(),
                },
            },
            Command::Xconfiguration {
                what:
                    XconfigLicense::License {
                        what:
                            XconfigLicenseSmart::Smart {
                                what: XconfigSmart::ReservationEnable { setting },
                            },
                    },
            } => match setting {
                XOnOff::On => reservation::enable(reservation::Words::Expressway),
                XOnOff::Off => reservation::disable(reservation::Words::Expressway),
            },
            Command::Xcommand {
                what:
                    XcommandLicense::License {
                        what:
                            XcommandLicenseSmart::Smart {
                                what: XcommandSmart::Reservation { what },
                            },
                    },
            } => match what {
                XReservation::Request => reservation::request(),
                XReservation::Install { code } => reservation::install(code),
                XReservation::Return => reservation::give_back(),
                XReservation::ReturnAuthorization { code } => {
                    reservation::return_authorization(code)
                }
                XReservation::Cancel => reservation::cancel(reservation::Words::Expressway),
            },
            Command::Show {
                what: Show::License { display },
            } => show::show(match display {
                Display::Status => |v, style| show::status(&v.status, style),
                Display::All => show::all,
                Display::Summary => |v, style| show::summary(&v.status, style),
                Display::Usage => |v, style| show::usage(&v.status, style),
                Display::Udi => |v, style| show::udi_display(&v.status, style),
                Display::Reservation => |v, style| show::reservation(&v.status, style),
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
            Command::Session {
                what: SessionCommand::Start { n },
            } => governor::start(n.unwrap_or(1)),
            Command::Session {
                what: SessionCommand::End { n },
            } => governor::end(n.unwrap_or(1)),
            Command::Webrtc { setting } => governor::webrtc(matches!(setting, OnOff::On)),
            Command::Vcs { setting } => governor::vcs(matches!(setting, OnOff::On)),
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
