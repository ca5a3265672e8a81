//! The reference manager served over HTTPS, with durable state (DESIGN "Reference manager").
//!
//! [`Server::start`] opens (or creates) a [`StateDir`], makes sure its server certificate
//! carries the requested names, binds a [`TcpListener`] and answers each connection on a
//! thread of its own (at most [`ServerOptions::max_connections`] at once; more wait in the
//! listen backlog). A connection carries one `POST` whose body is a signed request; the answer
//! is the manager's signed answer, `200`, `Content-Type: application/xml`,
//! `Connection: close` (the HTTP rules are in `http.rs`). Each connection has one deadline
//! ([`ServerOptions::timeout`]) for the handshake, the request and the answer together, so a
//! stalled client cannot hold a thread.
//!
//! **Durability.** Each request is handled under the directory's exclusive lock: the state
//! file is read and, if its bytes differ from those last seen (another process changed it),
//! the manager is loaded again; the request is handled at the directory's "now"
//! ([`StateDir::now`]: the system clock or the virtual clock file); if the state changed, it
//! is stored atomically and durably *before* any byte of the answer is written. Once a client
//! has an answer, `kill -9` of the server loses nothing. If the state cannot be stored, the
//! client gets `500` instead and the change is forgotten.
//!
//! ```no_run
//! use smart_agent::manager::server::{Server, ServerOptions};
//!
//! let server = Server::start("/tmp/manager-state", ServerOptions::default())?;
//! println!("trust {} and {}; POST to https://{}/",
//!     server.state_dir().ca_cert_path().display(),
//!     server.state_dir().manager_public_key_path().display(),
//!     server.addr());
//! server.shutdown();
//! # Ok::<(), smart_agent::manager::server::ServerError>(())
//! ```

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustls::{ServerConfig, ServerConnection, StreamOwned};

use super::http::{self, Refused};
use super::state_dir::{DirError, StateDir};
use super::{tls, Manager, MAX_REQUEST_LEN};
use crate::crypto::Environment;

/// How to serve.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServerOptions {
    /// Where to listen; port 0 picks a free port ([`Server::addr`] tells which). Default
    /// `127.0.0.1:0`.
    pub listen: SocketAddr,
    /// The environment to sign for. A new directory takes it (development if `None`); an
    /// existing one must already sign for it.
    pub environment: Option<Environment>,
    /// Give the directory a virtual clock (at the system time unless it has one already);
    /// `clock set` moves it. A directory that has a clock file uses it either way.
    pub virtual_clock: bool,
    /// Host names or addresses the server certificate carries besides `localhost`,
    /// `127.0.0.1` and `::1`.
    pub hosts: Vec<String>,
    /// Connections served at once (default 64).
    pub max_connections: usize,
    /// How long one connection may take from accept to answer (default 30 s).
    pub timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            environment: None,
            virtual_clock: false,
            hosts: Vec::new(),
            max_connections: 64,
            timeout: Duration::from_secs(30),
        }
    }
}

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The state directory is unusable.
    #[error(transparent)]
    Dir(#[from] DirError),
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the system said.
        source: io::Error,
    },
    /// The certificate and key do not make a TLS configuration.
    #[error("{0}")]
    Tls(String),
}

/// The manager as last loaded from or stored to the state file.
struct Cache {
    manager: Option<Manager>,
    seen: Vec<u8>,
}

struct Shared {
    dir: StateDir,
    tls: Arc<ServerConfig>,
    cache: Mutex<Cache>,
    timeout: Duration,
    max_connections: usize,
    stop: AtomicBool,
    active: Mutex<usize>,
    changed: Condvar,
}

/// A running server; [`Server::shutdown`] (or dropping it) stops it.
pub struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr)
            .field("dir", &self.shared.dir.path())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Server {
    /// Opens or creates the state directory `dir` (see [`StateDir::open_or_create`]) and
    /// starts serving it.
    pub fn start(dir: impl Into<PathBuf>, options: ServerOptions) -> Result<Server, ServerError> {
        let dir = StateDir::open_or_create(dir, options.environment)?;
        if options.virtual_clock {
            dir.ensure_virtual_clock()?;
        }
        let (cert, key) = dir.server_certificate(&options.hosts)?;
        let tls = tls::server_config(&cert, &key).map_err(ServerError::Tls)?;
        let listener = TcpListener::bind(options.listen).map_err(|source| ServerError::Bind {
            addr: options.listen,
            source,
        })?;
        let addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: options.listen,
            source,
        })?;
        let shared = Arc::new(Shared {
            dir,
            tls,
            cache: Mutex::new(Cache {
                manager: None,
                seen: Vec::new(),
            }),
            timeout: options.timeout,
            max_connections: options.max_connections.max(1),
            stop: AtomicBool::new(false),
            active: Mutex::new(0),
            changed: Condvar::new(),
        });
        let accept = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("manager-accept".into())
                .spawn(move || accept_loop(&listener, &shared))
                .map_err(|source| ServerError::Bind {
                    addr: options.listen,
                    source,
                })?
        };
        Ok(Server {
            addr,
            shared,
            accept: Some(accept),
        })
    }

    /// The address it listens on (with the real port when port 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The environment the manager signs for.
    pub fn environment(&self) -> Environment {
        self.shared.dir.environment()
    }

    /// The state directory served.
    pub fn state_dir(&self) -> &StateDir {
        &self.shared.dir
    }

    /// Stops accepting, lets the connections in progress finish (each within its timeout)
    /// and returns.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(accept) = self.accept.take() else {
            return;
        };
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.changed.notify_all();
        // Wake the blocking accept with a connection of our own.
        let wake = match self.addr {
            SocketAddr::V4(a) if a.ip().is_unspecified() => {
                SocketAddr::from((Ipv4Addr::LOCALHOST, a.port()))
            }
            SocketAddr::V6(a) if a.ip().is_unspecified() => {
                SocketAddr::from((Ipv6Addr::LOCALHOST, a.port()))
            }
            other => other,
        };
        if TcpStream::connect_timeout(&wake, Duration::from_secs(2)).is_ok() {
            let _ = accept.join();
        }
        let mut active = lock(&self.shared.active);
        let give_up = Instant::now() + self.shared.timeout + Duration::from_secs(2);
        while *active > 0 {
            let left = give_up.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            active = self
                .shared
                .changed
                .wait_timeout(active, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Frees a connection slot when the connection's thread ends, however it ends.
struct Slot(Arc<Shared>);

impl Drop for Slot {
    fn drop(&mut self) {
        let mut active = lock(&self.0.active);
        *active = active.saturating_sub(1);
        self.0.changed.notify_all();
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    loop {
        {
            let mut active = lock(&shared.active);
            while *active >= shared.max_connections && !shared.stop.load(Ordering::SeqCst) {
                active = shared
                    .changed
                    .wait(active)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if shared.stop.load(Ordering::SeqCst) {
                return;
            }
            *active += 1;
        }
        let slot = Slot(Arc::clone(shared));
        let tcp = match listener.accept() {
            Ok((tcp, _)) => tcp,
            Err(_) => {
                drop(slot);
                // Out of file descriptors and the like: let other connections finish.
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("manager-connection".into())
            .spawn(move || {
                let shared = Arc::clone(&slot.0);
                serve_connection(&shared, tcp);
                drop(slot);
            });
        // If no thread can be made the closure (and the slot and socket) are dropped.
        drop(spawned);
    }
}

/// A socket whose every read and write must finish by one deadline.
struct Deadline {
    tcp: TcpStream,
    until: Instant,
}

impl Deadline {
    fn left(&self) -> io::Result<Duration> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(io::ErrorKind::TimedOut.into())
        } else {
            Ok(left)
        }
    }
}

impl Read for Deadline {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.tcp.set_read_timeout(Some(self.left()?))?;
        self.tcp.read(buf)
    }
}

impl Write for Deadline {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tcp.set_write_timeout(Some(self.left()?))?;
        self.tcp.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

fn serve_connection(shared: &Shared, tcp: TcpStream) {
    let _ = tcp.set_nodelay(true);
    let socket = Deadline {
        tcp,
        until: Instant::now() + shared.timeout,
    };
    let Ok(conn) = ServerConnection::new(Arc::clone(&shared.tls)) else {
        return;
    };
    let mut tls = StreamOwned::new(conn, socket);
    let answer = match http::read_request(&mut tls, MAX_REQUEST_LEN) {
        Ok(body) => match shared.answer(&body) {
            Some(answer) => http::response(200, "application/xml", &answer),
            None => http::refusal(500, "the manager could not answer"),
        },
        Err(Refused::Status(status, message)) => http::refusal(status, message),
        // The handshake failed, the client left or stalled: nobody to answer.
        Err(Refused::Gone) => return,
    };
    if tls.write_all(&answer).is_err() {
        return;
    }
    tls.conn.send_close_notify();
    if tls.flush().is_err() {
        return;
    }
    linger(&mut tls.sock);
}

/// Half-closes and discards what the client still sends (at most 1 MiB, 1 s) before
/// closing, so that the answer is not lost to a reset when a refused body is left unread.
fn linger(socket: &mut Deadline) {
    let _ = socket.tcp.shutdown(Shutdown::Write);
    socket.until = socket.until.min(Instant::now() + Duration::from_secs(1));
    let mut sink = [0u8; 8192];
    let mut left = 1usize << 20;
    while left > 0 {
        match socket.read(&mut sink) {
            Ok(0) | Err(_) => return,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
}

impl Shared {
    /// The manager's answer to `request`, its effect stored first; `None` if the state
    /// cannot be read or stored (the change, if any, is then forgotten).
    fn answer(&self, request: &[u8]) -> Option<Vec<u8>> {
        let mut cache = match self.cache.lock() {
            Ok(cache) => cache,
            Err(poisoned) => {
                // A thread died in the middle: trust only the file.
                self.cache.clear_poison();
                let mut cache = poisoned.into_inner();
                cache.manager = None;
                cache
            }
        };
        let _lock = self.dir.lock().ok()?;
        let current = self.dir.state_bytes().ok()?;
        if cache.manager.is_none() || current != cache.seen {
            cache.manager = None;
            cache.manager = Some(self.dir.decode(&current).ok()?);
            cache.seen = current;
        }
        let now = self.dir.now().ok()?;
        let manager = cache.manager.as_mut()?;
        let answer = manager.handle(request, now);
        let after = manager.save_state();
        if after != cache.seen {
            if self.dir.store_state(&after).is_err() {
                cache.manager = None;
                return None;
            }
            cache.seen = after;
        }
        (!answer.is_empty()).then_some(answer)
    }
}
