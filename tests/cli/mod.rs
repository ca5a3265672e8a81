//! Runs the built `license` and `manager` examples as a person would: a fresh state directory
//! per test, `--now` on every `license` call, and the exact stdout, stderr and exit code of
//! each invocation. Also hashes the state directory, to check that a refused command (exit 1)
//! or an unusable directory (exit 3) writes nothing.
//!
//! The binaries are `target/<profile>/examples/{license,manager}`, next to the test binary's
//! `deps/`. `cargo test --all-features` builds them; `cargo test --test <name>` alone does not,
//! so a binary older than the sources is refused rather than silently tested.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use tempfile::TempDir;

// ---------------------------------------------------------------------------------------------
// Tags and UDI of seed 002 (lines 62-67 and 103)
// ---------------------------------------------------------------------------------------------

// The Unified CM tags of seed 002 (lines 62-67), as the reference manager's catalogue names them.
#[allow(unused_imports)] // each test binary uses some of them
pub use smart_agent::manager::catalogue::{
    UCM_BASIC as BASIC, UCM_CUWL as CUWL, UCM_ENHANCED as ENHANCED,
    UCM_ENHANCED_PLUS as ENHANCED_PLUS, UCM_ESSENTIAL as ESSENTIAL,
    UCM_TELEPRESENCE_ROOM as TP_ROOM,
};
/// The six tags in the order of 002:62-67.
pub const SEED_TAGS: [&str; 6] = [CUWL, ENHANCED_PLUS, ENHANCED, BASIC, ESSENTIAL, TP_ROOM];
pub const SEED_UDI: &str = "PID:UCM,SN:37624,UUID:6fe83addc80240bc92dc071ac7a37624";

// ---------------------------------------------------------------------------------------------
// The SPEC's exact messages (seed 000:1526-1576), copied here rather than taken from the crate
// ---------------------------------------------------------------------------------------------

/// The alert line when an Allowed export flag is lost (SPEC §7: deregistration, identity
/// lapse, dormant identity); tokens allow it by default (004:279).
pub const EXPORT_NOT_ALLOWED: &str =
    "Export-Controlled Functionality: Not Allowed  [SmartLicenseExportControlNotAllowed]\n";
/// 400 register (000:1545), locally and from the manager.
pub const TOKEN_MESSAGE: &str = "The Product Instance Registration Token you have entered is either invalid or has been expired. Ensure that you have pasted the entire token and that the token has not expired";
/// 405 register while registered (000:1547).
pub const ALREADY_REGISTERED: &str =
    "Product is already registered on CSSM. To Re-register it use 'force' flag";
/// 405 register on a subscriber node (000:1546).
pub const SUBSCRIBER_REGISTER: &str = "Smart Software Licensing operations are not allowed from Subscriber, licenses for this system are managed by Publisher";
/// 405 renewID (000:1557).
pub const RENEW_ID_NOT_ALLOWED: &str = "Renewal of ID is not allowed since product is in either unregistered state or is a Subscriber node";
/// 405 renewAuth (000:1566).
pub const RENEW_AUTH_NOT_ALLOWED: &str = "Renewal of Authorization is not allowed since product is in either unregistered state or is a Subscriber node";
/// 405 deregister (000:1537).
pub const DEREGISTER_NOT_ALLOWED: &str = "Deregistration is not allowed since product is in either unregistered state or is a Subscriber node";
/// 405 transport settings (000:1530).
pub const TRANSPORT_NOT_ALLOWED: &str = "Edit Transport Settings operation is not allowed since product is in either Registered state or is a Subscriber node";
/// 500 transport settings (000:1531).
pub const TRANSPORT_APPLY_FAILED: &str = "Failed to apply the Transport Settings";
/// 400 proxy (000:1534-1536).
pub const PROXY_MISSING: &str =
    "Please provide valid HTTP/HTTPS Proxy IP Address and/or HTTP/HTTPS Proxy Port";
pub const PROXY_BAD_ADDRESS: &str = "Please enter a valid HTTP/HTTPS Proxy IP Address";
pub const PROXY_BAD_PORT: &str =
    "Please enter a valid HTTP/HTTPS Proxy Port within the range (1 - 65535)";
/// 400 on-prem URL (000:1533).
pub const BAD_GATEWAY_URL: &str = "Please enter a valid Transport Gateway URL";
/// SPEC §9, a refused connection (register, renewals: no final full stop).
pub const SEND_ERROR: &str =
    "The requested operation was not successful due to communication send error";
/// SPEC §3, a deregistration completed only locally after a refused connection.
pub const DEREGISTERED_LOCALLY: &str = "Deregistration has been completed on the Product Instance but was unable to deregister from Smart Software Licensing due to communication send error";
/// What the embedded manager's transport says while `manager offline`.
pub const OFFLINE_DETAIL: &str = "connection refused (the embedded manager is offline)";

// ---------------------------------------------------------------------------------------------
// What state-changing harness commands say they did (issue 10 item 2)
// ---------------------------------------------------------------------------------------------

/// Copies the directory tree `from` (a golden state directory) to `to`.
pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// `declare <tag>`.
pub fn declared_line(tag: &str) -> String {
    format!("Declared {tag} (Init until used).\n")
}

/// `usage <tag> <count>` while not registered (nothing is reported).
pub fn usage_line(tag: &str, count: u32) -> String {
    format!("Usage of {tag} is {count}.\n")
}

/// `usage <tag> <count>` while registered.
pub fn usage_reported_line(tag: &str, count: u32) -> String {
    format!("Usage of {tag} is {count} (reported to the manager within 60 s).\n")
}

/// `privacy on` / `privacy off`.
pub const PRIVACY_ON: &str =
    "Privacy: on (the host name and IP address are not sent to the manager).\n";
pub const PRIVACY_OFF: &str =
    "Privacy: off (the host name and IP address are sent to the manager).\n";
/// `subscriber on` / `subscriber off`.
pub const SUBSCRIBER_ON: &str = "Subscriber node: on (licensing operations are refused here; the publisher's licenses apply).\n";
pub const SUBSCRIBER_OFF: &str = "Subscriber node: off.\n";

/// `host <name> <ip>` (before the events of the identity renewal it may cause).
pub fn host_line(name: &str, ip: &str) -> String {
    format!("Host: {name} {ip}.\n")
}

/// `transport onprem <url>`, with the URL in its long form.
pub fn onprem_line(url: &str) -> String {
    format!("Transport: on-prem {url} (mode 1).\n")
}

/// `transport proxy <host> <port>`.
pub fn proxy_line(host: &str, port: &str) -> String {
    format!("Transport: proxy {host}:{port} (mode 2).\n")
}

/// `manager offline`.
pub const OFFLINE_LINE: &str =
    "The embedded manager is offline: requests fail like a refused connection.\n";
/// `manager online`.
pub const ONLINE_LINE: &str = "The embedded manager is online.\n";

// ---------------------------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------------------------

/// 2027-01-04 10:00:00 UTC, the start of most scenarios (as in `tests/common`).
pub fn t0() -> DateTime<Utc> {
    at("2027-01-04T10:00:00Z")
}

pub fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap_or_else(|e| panic!("{rfc3339}: {e}"))
        .with_timezone(&Utc)
}

pub fn days(n: i64) -> TimeDelta {
    TimeDelta::days(n)
}

pub fn hours(n: i64) -> TimeDelta {
    TimeDelta::hours(n)
}

pub fn minutes(n: i64) -> TimeDelta {
    TimeDelta::minutes(n)
}

pub fn seconds(n: i64) -> TimeDelta {
    TimeDelta::seconds(n)
}

/// A `--now` value: an RFC 3339 string as typed, or a time.
pub trait Now {
    fn rfc3339(&self) -> String;
}

impl Now for &str {
    fn rfc3339(&self) -> String {
        self.to_string()
    }
}

impl Now for DateTime<Utc> {
    fn rfc3339(&self) -> String {
        self.to_rfc3339_opts(SecondsFormat::Secs, true)
    }
}

// ---------------------------------------------------------------------------------------------
// The binaries
// ---------------------------------------------------------------------------------------------

/// `target/<profile>/examples/<name>`, checked to exist and to be newer than its sources (the
/// library, `Cargo.toml` and its own example files: cargo does not relink one example for a
/// change to another).
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/deps");
    let path = profile
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let built = fs::metadata(&path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| {
            panic!(
                "{} is missing: run `cargo test --all-features` (or `cargo build --all-features \
                 --examples` before `cargo test --all-features --test <name>`)",
                path.display()
            )
        });
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut newest = (SystemTime::UNIX_EPOCH, PathBuf::new());
    let own = if root.join("examples").join(name).is_dir() {
        root.join("examples").join(name)
    } else {
        root.join("examples").join(format!("{name}.rs"))
    };
    // The manager shares the harness's rule for control characters (`#[path]`).
    let shared = root.join("examples/license/text.rs");
    for source in [root.join("src"), own, shared, root.join("Cargo.toml")] {
        newest_file(&source, &mut newest);
    }
    assert!(
        built >= newest.0,
        "{} is older than {}: run `cargo build --all-features --examples` (plain `cargo test \
         --all-features` does it; `cargo test --test <name>` does not)",
        path.display(),
        newest.1.display()
    );
    path
}

fn newest_file(path: &Path, newest: &mut (SystemTime, PathBuf)) {
    let Ok(meta) = fs::metadata(path) else {
        return;
    };
    if meta.is_dir() {
        // The library's own unit tests (`src/**/tests/`) are not part of what an example
        // links: cargo rightly does not relink it when only they change.
        if path.file_name().is_some_and(|n| n == "tests")
            && path.starts_with(Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
        {
            return;
        }
        for entry in fs::read_dir(path).into_iter().flatten().flatten() {
            newest_file(&entry.path(), newest);
        }
    } else if let Ok(modified) = meta.modified() {
        if modified > newest.0 {
            *newest = (modified, path.to_path_buf());
        }
    }
}

/// Longer than any invocation should take; a hung one is killed and the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// What one invocation printed and how it exited.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    /// The command line, for messages.
    pub line: String,
    /// The exit code (`-1` if killed by a signal).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    /// Asserts the exit code, the whole stdout and the whole stderr.
    #[track_caller]
    pub fn expect(&self, code: i32, stdout: &str, stderr: &str) -> &Run {
        assert_eq!(
            (self.code, self.stdout.as_str(), self.stderr.as_str()),
            (code, stdout, stderr),
            "\n$ {}",
            self.line
        );
        self
    }

    /// Asserts exit 0 and an empty stderr; returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(
            (self.code, self.stderr.as_str()),
            (0, ""),
            "\n$ {}\nstdout:\n{}",
            self.line,
            self.stdout
        );
        &self.stdout
    }

    /// Asserts the exit code and the whole stderr; returns stdout.
    #[track_caller]
    pub fn fails(&self, code: i32, stderr: &str) -> &str {
        assert_eq!(
            (self.code, self.stderr.as_str()),
            (code, stderr),
            "\n$ {}\nstdout:\n{}",
            self.line,
            self.stdout
        );
        &self.stdout
    }

    /// Asserts a usage error: exit `code` (the license harness's 1, the manager's 2), nothing
    /// on stdout, and clap's message on stderr: `error: …` mentioning `needle`, then the usage
    /// or the hint to try --help.
    #[track_caller]
    pub fn usage_error(&self, code: i32, needle: &str) -> &Run {
        assert_eq!(
            (self.code, self.stdout.as_str()),
            (code, ""),
            "\n$ {}\nstderr:\n{}",
            self.line,
            self.stderr
        );
        assert!(
            self.stderr.starts_with("error: ")
                && self.stderr.contains(needle)
                && self
                    .stderr
                    .ends_with("For more information, try '--help'.\n"),
            "\n$ {}\nexpected a usage error mentioning {needle:?}, got:\n{}",
            self.line,
            self.stderr
        );
        self
    }

    /// The last line of stdout (where `token create` prints the token).
    pub fn last_line(&self) -> &str {
        self.stdout.lines().last().unwrap_or_default()
    }
}

/// A started invocation (for the locking tests).
pub struct Running {
    line: String,
    child: Child,
    stdout: JoinHandle<String>,
    stderr: JoinHandle<String>,
    started: Instant,
}

impl Running {
    /// Whether it has exited already.
    pub fn has_exited(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_some()
    }

    /// Waits for it (killing it after [`TIMEOUT`]).
    pub fn finish(mut self) -> Run {
        let deadline = self.started + TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("$ {}\ndid not finish within {TIMEOUT:?}", self.line);
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        Run {
            line: self.line,
            code: status.code().unwrap_or(-1),
            stdout: self.stdout.join().expect("stdout reader"),
            stderr: self.stderr.join().expect("stderr reader"),
            elapsed: self.started.elapsed(),
        }
    }
}

fn reader(mut pipe: impl std::io::Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8(bytes).expect("output is UTF-8")
    })
}

/// Starts `program args…` in `cwd`, with no proxy variables in its environment.
pub fn start(program: &Path, args: &[String], cwd: &Path) -> Running {
    start_with(program, args, cwd, &[], None)
}

/// [`start`] with extra environment variables and, if `memory_kib`, an address-space limit
/// (`ulimit -v`) so that a run that would allocate more fails instead.
pub fn start_with(
    program: &Path,
    args: &[String],
    cwd: &Path,
    env: &[(&str, &str)],
    memory_kib: Option<u64>,
) -> Running {
    let line = std::iter::once(
        program
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default(),
    )
    .chain(args.iter().map(|a| {
        if a.contains(' ') || a.is_empty() {
            format!("{a:?}")
        } else {
            a.clone()
        }
    }))
    .collect::<Vec<_>>()
    .join(" ");
    let mut command = match memory_kib {
        None => {
            let mut c = Command::new(program);
            c.args(args);
            c
        }
        Some(kib) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!("ulimit -v {kib} && exec \"$0\" \"$@\""))
                .arg(program)
                .args(args);
            c
        }
    };
    command.envs(env.iter().copied());
    command
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for var in [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        command.env_remove(var);
    }
    let started = Instant::now();
    let mut child = command.spawn().unwrap_or_else(|e| panic!("$ {line}: {e}"));
    let stdout = reader(child.stdout.take().expect("stdout"));
    let stderr = reader(child.stderr.take().expect("stderr"));
    Running {
        line,
        child,
        stdout,
        stderr,
        started,
    }
}

// ---------------------------------------------------------------------------------------------
// One state directory
// ---------------------------------------------------------------------------------------------

/// A sandbox: a temporary working directory (so no default `./.smart-agent` lands in the
/// repository) with the state directory `<sandbox>/state` inside, created by the first
/// accepted command.
pub struct Cli {
    sandbox: TempDir,
    state: PathBuf,
    /// Options added to every `license` call (`--tz`, `--udi`, `--product`).
    options: Vec<String>,
}

impl Default for Cli {
    fn default() -> Self {
        Cli::new()
    }
}

impl Cli {
    pub fn new() -> Cli {
        let sandbox = tempfile::tempdir().expect("tempdir");
        let state = sandbox.path().join("state");
        Cli {
            sandbox,
            state,
            options: Vec::new(),
        }
    }

    /// A sandbox in memory (`/dev/shm` where there is one): for tests that run hundreds of
    /// invocations, each of which fsyncs what it writes.
    pub fn in_memory() -> Cli {
        let shm = Path::new("/dev/shm");
        let sandbox = if shm.is_dir() {
            tempfile::tempdir_in(shm).expect("tempdir in /dev/shm")
        } else {
            tempfile::tempdir().expect("tempdir")
        };
        let state = sandbox.path().join("state");
        Cli {
            sandbox,
            state,
            options: Vec::new(),
        }
    }

    /// Adds options to every later `license` call.
    pub fn with(mut self, options: &[&str]) -> Cli {
        self.options.extend(options.iter().map(|o| o.to_string()));
        self
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.state
    }

    /// A file in the state directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.state.join(name)
    }

    /// The sandbox (the invocations' working directory).
    pub fn sandbox(&self) -> &Path {
        self.sandbox.path()
    }

    fn license_args(&self, now: &dyn Now, args: &[&str]) -> Vec<String> {
        let mut all = vec![
            "--state".to_string(),
            self.state.display().to_string(),
            "--now".to_string(),
            now.rfc3339(),
        ];
        all.extend(self.options.iter().cloned());
        all.extend(args.iter().map(|a| a.to_string()));
        all
    }

    /// `license --state DIR --now NOW [options] args…`.
    pub fn license(&self, now: impl Now, args: &[&str]) -> Run {
        self.start_license(now, args).finish()
    }

    /// The same, started and not waited for.
    pub fn start_license(&self, now: impl Now, args: &[&str]) -> Running {
        start(
            &example("license"),
            &self.license_args(&now, args),
            self.sandbox(),
        )
    }

    /// `license --state DIR --now NOW [options] args…` with extra environment variables.
    pub fn license_env(&self, now: impl Now, args: &[&str], env: &[(&str, &str)]) -> Run {
        start_with(
            &example("license"),
            &self.license_args(&now, args),
            self.sandbox(),
            env,
            None,
        )
        .finish()
    }

    /// `license --state DIR --now NOW [options] args…` with at most `kib` KiB of address
    /// space.
    pub fn license_limited(&self, now: impl Now, args: &[&str], kib: u64) -> Run {
        start_with(
            &example("license"),
            &self.license_args(&now, args),
            self.sandbox(),
            &[],
            Some(kib),
        )
        .finish()
    }

    /// `license args…` exactly as given (in the sandbox).
    pub fn license_raw(&self, args: &[&str]) -> Run {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        start(&example("license"), &args, self.sandbox()).finish()
    }

    /// `manager --state DIR args…`: the harness's embedded manager.
    pub fn manager(&self, args: &[&str]) -> Run {
        let mut all = vec!["--state".to_string(), self.state.display().to_string()];
        all.extend(args.iter().map(|a| a.to_string()));
        start(&example("manager"), &all, self.sandbox()).finish()
    }

    /// `manager args…` exactly as given (in the sandbox).
    pub fn manager_raw(&self, args: &[&str]) -> Run {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        start(&example("manager"), &args, self.sandbox()).finish()
    }

    /// Every file and directory under the state directory (the embedded manager's
    /// included), each file by its SHA-256.
    pub fn tree(&self) -> BTreeMap<String, String> {
        let mut tree = BTreeMap::new();
        walk(&self.state, &self.state, &mut tree);
        tree
    }

    /// Runs `f` and asserts that the state directory is byte-identical afterwards.
    #[track_caller]
    pub fn unchanged(&self, f: impl FnOnce() -> Run) -> Run {
        let before = self.tree();
        let run = f();
        let after = self.tree();
        if before != after {
            let changed: Vec<&String> = before
                .keys()
                .chain(after.keys())
                .filter(|k| before.get(*k) != after.get(*k))
                .collect();
            panic!(
                "\n$ {}\nexit {}; stderr: {}\nchanged the state directory: {changed:?}",
                run.line, run.code, run.stderr
            );
        }
        run
    }

    // -----------------------------------------------------------------------------------------
    // Common set-ups
    // -----------------------------------------------------------------------------------------

    /// Declares `tags` at `now`.
    pub fn declare(&self, now: DateTime<Utc>, tags: &[&str]) {
        for tag in tags {
            self.license(now, &["declare", tag])
                .expect(0, &declared_line(tag), "");
        }
    }

    /// Adds `count` licenses of `tag` to the selected Virtual Account.
    pub fn pool(&self, tag: &str, count: u32) {
        self.manager(&["pool", "add", tag, &count.to_string()]).ok();
    }

    /// Creates a token with `options` (e.g. `--export`) and returns it.
    pub fn token(&self, options: &[&str]) -> String {
        let mut args = vec!["token", "create"];
        args.extend_from_slice(options);
        let run = self.manager(&args);
        run.ok();
        run.last_line().to_string()
    }

    /// Declares `tag`, uses `count` of it, buys 10 and registers, all at `now`.
    pub fn registered_with(&self, now: DateTime<Utc>, tag: &str, count: u32) {
        self.declare(now, &[tag]);
        if count > 0 {
            self.license(now, &["usage", tag, &count.to_string()]).ok();
        }
        self.pool(tag, 10);
        let token = self.token(&[]);
        self.license(now, &["license", "smart", "register", "idtoken", &token])
            .ok();
    }
}

fn walk(root: &Path, path: &Path, tree: &mut BTreeMap<String, String>) {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    let name = path
        .strip_prefix(root)
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    if meta.file_type().is_symlink() {
        let target = fs::read_link(path).unwrap_or_default();
        tree.insert(name, format!("symlink to {}", target.display()));
    } else if meta.is_dir() {
        tree.insert(format!("{name}/"), "directory".into());
        let mut entries: Vec<PathBuf> = fs::read_dir(path)
            .expect("read_dir")
            .map(|e| e.expect("dir entry").path())
            .collect();
        entries.sort();
        for entry in entries {
            walk(root, &entry, tree);
        }
    } else if !meta.is_file() {
        // A FIFO or socket: opening it could block.
        tree.insert(name, "special file".into());
    } else if meta.len() > 64 << 20 {
        // A huge (sparse) file planted by a test: its size and time say whether it changed.
        tree.insert(
            name,
            format!("{} bytes, modified {:?}", meta.len(), meta.modified().ok()),
        );
    } else {
        let mut bytes = Vec::new();
        fs::File::open(path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        tree.insert(name, hex);
    }
}

/// A golden file of `tests/cli/golden/`.
pub fn golden(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/cli/golden")
        .join(name);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
