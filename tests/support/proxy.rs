//! The HTTP CONNECT proxies the proxy tests run against: a real tinyproxy (Debian package
//! `tinyproxy`, installed by `.ci/run`) when it is on `PATH`, and always [`ConnectProxy`], a
//! small CONNECT proxy with basic auth made of threads and `std::net`. So the proxy tests run
//! (and can fail) on every machine; without tinyproxy they say so once on stderr, and with
//! `SMART_AGENT_REQUIRE_PROXY=1` (set by `.ci/run`) a missing tinyproxy is a failure.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use base64::Engine as _;

/// The switch `.ci/run` sets: tinyproxy must be there.
pub const REQUIRE_PROXY: &str = "SMART_AGENT_REQUIRE_PROXY";

/// Which proxy a [`TestProxy`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A tinyproxy process.
    Tinyproxy,
    /// [`ConnectProxy`], in this process.
    InTest,
}

/// The proxies to run a proxy test against, given a `PATH` and whether
/// [`REQUIRE_PROXY`] is set: both when tinyproxy is on the path, else the in-test one alone,
/// or an error when tinyproxy is required.
pub fn kinds_for(path: Option<&OsStr>, required: bool) -> Result<Vec<Kind>, String> {
    if find_on_path("tinyproxy", path).is_some() {
        Ok(vec![Kind::Tinyproxy, Kind::InTest])
    } else if required {
        Err(format!("{REQUIRE_PROXY}=1 but tinyproxy is not on PATH"))
    } else {
        Ok(vec![Kind::InTest])
    }
}

/// An executable file `name` in one of the directories of `path`.
pub fn find_on_path(name: &str, path: Option<&OsStr>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path?)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Every proxy this machine has for a proxy test, started; with `auth` each demands basic
/// auth with that user and password. Panics (fails the test) when tinyproxy is required but
/// missing; says once per test binary on stderr when the in-test proxy runs alone.
pub fn each(test: &str, auth: Option<(&str, &str)>) -> Vec<TestProxy> {
    let path: Option<OsString> = std::env::var_os("PATH");
    let required = std::env::var(REQUIRE_PROXY).as_deref() == Ok("1");
    let kinds = kinds_for(path.as_deref(), required).unwrap_or_else(|e| panic!("{test}: {e}"));
    if kinds == [Kind::InTest] {
        static NOTICE: Once = Once::new();
        NOTICE.call_once(|| {
            // Straight to stderr: the test harness captures eprintln! of passing tests.
            let _ = writeln!(
                io::stderr(),
                "note: tinyproxy is not on PATH, so the proxy tests run against the in-test \
                 CONNECT proxy only (install tinyproxy to run them against both; \
                 {REQUIRE_PROXY}=1 makes its absence a failure)"
            );
        });
    }
    kinds
        .into_iter()
        .map(|kind| TestProxy::start(kind, test, auth))
        .collect()
}

/// A running proxy of either kind.
pub enum TestProxy {
    Tinyproxy(Tinyproxy),
    InTest(ConnectProxy),
}

impl TestProxy {
    pub fn start(kind: Kind, test: &str, auth: Option<(&str, &str)>) -> TestProxy {
        match kind {
            Kind::Tinyproxy => TestProxy::Tinyproxy(Tinyproxy::start(test, auth)),
            Kind::InTest => TestProxy::InTest(ConnectProxy::start(auth)),
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            TestProxy::Tinyproxy(_) => Kind::Tinyproxy,
            TestProxy::InTest(_) => Kind::InTest,
        }
    }

    pub fn port(&self) -> u16 {
        match self {
            TestProxy::Tinyproxy(p) => p.port(),
            TestProxy::InTest(p) => p.port(),
        }
    }

    /// What the proxy logged; both log each request line (`CONNECT host:port HTTP/1.1`).
    pub fn log(&self) -> String {
        match self {
            TestProxy::Tinyproxy(p) => p.log(),
            TestProxy::InTest(p) => p.log(),
        }
    }

    /// Stops the proxy: its port refuses connections afterwards.
    pub fn stop(&mut self) {
        match self {
            TestProxy::Tinyproxy(p) => p.stop(),
            TestProxy::InTest(p) => p.stop(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// tinyproxy

/// A real tinyproxy on a free loopback port, in the foreground, killed on drop.
pub struct Tinyproxy {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl Tinyproxy {
    /// Starts the tinyproxy found on `PATH`; with `auth`, it demands basic auth with that
    /// user and password (missing credentials: 407; a wrong password: 401 in 1.11).
    pub fn start(test: &str, auth: Option<(&str, &str)>) -> Tinyproxy {
        let binary = find_on_path("tinyproxy", std::env::var_os("PATH").as_deref())
            .unwrap_or_else(|| panic!("{test}: tinyproxy is not on PATH"));
        // The port is free when probed and taken by tinyproxy a moment later; retry on the
        // rare collision.
        let mut last_log = String::new();
        for _ in 0..3 {
            let port = super::dead_port();
            let dir = tempfile::tempdir().expect("temp dir");
            let config = dir.path().join("tinyproxy.conf");
            let log = dir.path().join("tinyproxy.log");
            let mut text = format!(
                "Port {port}\nListen 127.0.0.1\nAllow 127.0.0.1\nTimeout 60\nLogLevel Info\n"
            );
            if let Some((user, password)) = auth {
                text.push_str(&format!("BasicAuth {user} {password}\n"));
            }
            fs::write(&config, text).expect("write tinyproxy.conf");
            let log_file = fs::File::create(&log).expect("tinyproxy log");
            let child = Command::new(&binary)
                .arg("-d")
                .arg("-c")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().expect("log handle"))
                .stderr(log_file)
                .spawn()
                .expect("spawn tinyproxy");
            let mut proxy = Tinyproxy {
                child: Some(child),
                port,
                dir,
            };
            if proxy.wait_listening() {
                return proxy;
            }
            last_log = proxy.log();
        }
        panic!("{test}: tinyproxy did not start:\n{last_log}");
    }

    /// Polls until the port accepts connections; false if tinyproxy exited or 10 s passed.
    fn wait_listening(&mut self) -> bool {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if !matches!(child.try_wait(), Ok(None)) {
                    return false;
                }
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return true;
            }
            thread::sleep(Duration::from_millis(10));
        }
        false
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// What tinyproxy logged, for failure messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("tinyproxy.log")).unwrap_or_default()
    }

    /// Kills the process and waits for it: the port refuses connections afterwards.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------------------------------------
// The in-test CONNECT proxy

/// A way to break [`ConnectProxy`], to show that the proxy tests notice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Breakage {
    /// Answers 200 to `CONNECT` but relays nothing.
    NoTunnel,
    /// Lets any credentials through.
    AnyPassword,
}

/// A CONNECT-only HTTP proxy on 127.0.0.1: one thread per connection, basic auth when asked
/// for (no or other credentials: 407 with `Proxy-Authenticate`), 502 when the target cannot be
/// reached, 405 for any other method. It logs each request line and its answer.
pub struct ConnectProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

struct Shared {
    /// `user:password` in base64, as in `Proxy-Authorization: Basic …`.
    token: Option<String>,
    breakage: Option<Breakage>,
    stop: AtomicBool,
    log: Mutex<Vec<String>>,
    /// Every open socket, shut down on stop as a killed process would close them.
    open: Mutex<Vec<TcpStream>>,
}

impl ConnectProxy {
    pub fn start(auth: Option<(&str, &str)>) -> ConnectProxy {
        ConnectProxy::start_with(auth, None)
    }

    /// A proxy that is broken on purpose.
    pub fn start_broken(auth: Option<(&str, &str)>, breakage: Breakage) -> ConnectProxy {
        ConnectProxy::start_with(auth, Some(breakage))
    }

    fn start_with(auth: Option<(&str, &str)>, breakage: Option<Breakage>) -> ConnectProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the in-test proxy");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            token: auth.map(|(user, password)| {
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            }),
            breakage,
            stop: AtomicBool::new(false),
            log: Mutex::new(Vec::new()),
            open: Mutex::new(Vec::new()),
        });
        let accept = {
            let shared = shared.clone();
            thread::spawn(move || {
                for client in listener.incoming() {
                    if shared.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    let shared = shared.clone();
                    thread::spawn(move || serve(client, &shared));
                }
                // The listener is dropped here: the port refuses connections.
            })
        };
        ConnectProxy {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn log(&self) -> String {
        let lines = self.shared.log.lock().expect("proxy log");
        lines.iter().map(|l| format!("{l}\n")).collect()
    }

    /// Stops accepting, closes every connection, and waits until the port is closed.
    pub fn stop(&mut self) {
        let Some(accept) = self.accept.take() else {
            return;
        };
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wake the accept loop
        let _ = accept.join();
        for socket in self.shared.open.lock().expect("open sockets").drain(..) {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Shared {
    fn note(&self, line: String) {
        self.log.lock().expect("proxy log").push(line);
    }

    fn keep(&self, socket: &TcpStream) {
        if let Ok(clone) = socket.try_clone() {
            self.open.lock().expect("open sockets").push(clone);
        }
    }

    fn authorized(&self, head: &str) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        if self.breakage == Some(Breakage::AnyPassword) {
            return true;
        }
        head.lines().skip(1).any(|line| {
            line.split_once(':').is_some_and(|(name, value)| {
                name.trim().eq_ignore_ascii_case("proxy-authorization")
                    && value.trim().strip_prefix("Basic ") == Some(token.as_str())
            })
        })
    }
}

fn serve(client: TcpStream, shared: &Shared) {
    if shared.stop.load(Ordering::SeqCst) {
        return;
    }
    shared.keep(&client);
    let Ok(handle) = client.try_clone() else {
        return;
    };
    exchange(client, shared);
    // `open` holds a clone: close for real, as a proxy process does when it is done.
    let _ = handle.shutdown(Shutdown::Both);
}

fn exchange(mut client: TcpStream, shared: &Shared) {
    // Bounds the life of a connection a client abandoned.
    let _ = client.set_read_timeout(Some(Duration::from_secs(30)));
    let Some(head) = read_head(&mut client) else {
        return;
    };
    let request_line = head.lines().next().unwrap_or_default().to_string();
    let mut words = request_line.split_whitespace();
    let (method, target) = (words.next().unwrap_or_default(), words.next());
    let answer = |client: &mut TcpStream, status: &str, extra: &str| {
        shared.note(format!("{request_line} -> {status}"));
        let _ = write!(
            client,
            "HTTP/1.1 {status}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
        );
    };
    let Some(target) = target.filter(|_| method == "CONNECT") else {
        return answer(&mut client, "405 Method Not Allowed", "");
    };
    if !shared.authorized(&head) {
        return answer(
            &mut client,
            "407 Proxy Authentication Required",
            "Proxy-Authenticate: Basic realm=\"smart-agent tests\"\r\n",
        );
    }
    let upstream = target
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .and_then(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(10)).ok());
    let Some(upstream) = upstream else {
        return answer(&mut client, "502 Bad Gateway", "");
    };
    shared.keep(&upstream);
    shared.note(format!("{request_line} -> 200 Connection established"));
    let answered = client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .is_ok();
    if answered && shared.breakage != Some(Breakage::NoTunnel) {
        if let Ok(handle) = upstream.try_clone() {
            relay(client, upstream);
            let _ = handle.shutdown(Shutdown::Both);
        }
    } else {
        let _ = upstream.shutdown(Shutdown::Both);
    }
}

/// Copies bytes both ways until either side closes.
fn relay(client: TcpStream, upstream: TcpStream) {
    let _ = client.set_read_timeout(None);
    let (Ok(mut client_in), Ok(mut upstream_out)) = (client.try_clone(), upstream.try_clone())
    else {
        return;
    };
    let up = thread::spawn(move || {
        let _ = io::copy(&mut client_in, &mut upstream_out);
        let _ = upstream_out.shutdown(Shutdown::Write);
    });
    let (mut upstream_in, mut client_out) = (upstream, client);
    let _ = io::copy(&mut upstream_in, &mut client_out);
    let _ = client_out.shutdown(Shutdown::Write);
    let _ = up.join();
}

/// The request head up to the blank line, read one byte at a time so that nothing of the
/// tunnelled bytes is consumed; `None` if the client left first or sent more than 16 KiB.
fn read_head(client: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 || client.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    String::from_utf8(head).ok()
}
