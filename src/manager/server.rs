//! The reference manager served over HTTPS, with durable state (DESIGN "Reference manager").
//!
//! [`Server::start`] opens (or creates, or imports) a [`StateDir`], makes sure its server
//! certificate carries the requested names, takes the directory's `serve.lock` (a second
//! server on the same directory refuses to start) and serves on a tokio runtime of its own:
//! every connection is a task, so an idle or slow connection costs no thread. TLS is
//! tokio-rustls on ring; HTTP/1.1 is hyper. A connection carries one `POST` whose body is a
//! signed request; the answer is the manager's signed answer, `200`,
//! `Content-Type: application/xml`, `Connection: close`.
//!
//! Anything else is answered with a status and a one-line text body: another method `405`
//! (with `Allow: POST`), no `Content-Length` (or a `Transfer-Encoding`) `411`, a length over
//! [`MAX_REQUEST_LEN`] `413` — before any of the body is read —, a malformed or oversized head
//! `400`/`431` (hyper's). The request target is not interpreted: every path reaches the manager
//! (the on-prem and direct URL forms of SPEC §8 all work).
//!
//! **Time limits.** The TLS handshake and the request head must arrive within
//! [`ServerOptions::header_timeout`]; the body, and the wait for the database, must end
//! within [`ServerOptions::timeout`] of the accept (then 2 s more are given to write the
//! answer). At most [`ServerOptions::max_connections`]
//! connections are open at once; more wait in the listen backlog.
//!
//! **Durability and concurrency.** A request is answered by one of a few managers, each with
//! its own connection to the database, on tokio's blocking pool: its signature is verified
//! (and a registration's identity signed) outside the database transaction; then one
//! transaction validates it, writes only the rows it changes and is committed *before* any
//! byte of the answer is written. Once a client has an answer, `kill -9` of the server loses
//! nothing. A request that cannot get the database by its deadline is answered `503` and
//! changes nothing; one whose change cannot be stored gets `500` and changes nothing.
//! Administration calls of other processes ([`StateDir::update`]) are transactions of their
//! own between the server's, and the clock file is read for every request.
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

use std::convert::Infallible;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{
    HeaderValue, ALLOW, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING,
};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;

use super::db::{DbError, Durability};
use super::state_dir::{DirError, DirLock, StateDir};
use super::{tls, Manager, MAX_REQUEST_LEN};
use crate::crypto::{Environment, SystemRandom};

/// The longest request head (request line and headers) read.
pub const MAX_HEAD_LEN: usize = 16 * 1024;

/// How many managers (database connections) answer requests at once.
const WORKERS: usize = 4;

/// How long past its deadline a connection may take to write an answer (the 503 of a request
/// that waited for the database until its deadline, say).
const ANSWER_GRACE: Duration = Duration::from_secs(2);

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
    /// Connections open at once (default 1024); more wait in the listen backlog. Idle ones
    /// cost a task and a socket, no thread.
    pub max_connections: usize,
    /// How long one connection may take from accept to answer (default 30 s).
    pub timeout: Duration,
    /// How long the TLS handshake and the request head may take from accept (default 10 s;
    /// never more than `timeout`).
    pub header_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            environment: None,
            virtual_clock: false,
            hosts: Vec::new(),
            max_connections: 1024,
            timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(10),
        }
    }
}

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The state directory is unusable, or already served by another server.
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

struct Shared {
    dir: StateDir,
    /// Idle managers; `WORKERS` permits of `ready` stand for them.
    managers: Mutex<Vec<Manager>>,
    ready: Semaphore,
    timeout: Duration,
    header_timeout: Duration,
}

/// A running server; [`Server::shutdown`] (or dropping it) stops it.
pub struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    runtime: Option<tokio::runtime::Runtime>,
    accept: Option<tokio::task::JoinHandle<()>>,
    _serving: DirLock,
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
    /// starts serving it; refuses a directory another server serves
    /// ([`DirError::AlreadyServed`]).
    pub fn start(dir: impl Into<PathBuf>, options: ServerOptions) -> Result<Server, ServerError> {
        let dir = StateDir::open_or_create(dir, options.environment)?;
        let serving = dir.serve_lock()?;
        if options.virtual_clock {
            dir.ensure_virtual_clock()?;
        }
        let (cert, key) = dir.server_certificate(&options.hosts)?;
        let tls = tls::server_config(&cert, &key).map_err(ServerError::Tls)?;
        let mut managers = Vec::with_capacity(WORKERS);
        for _ in 0..WORKERS {
            let manager = Manager::open_file(
                &dir.state_path(),
                Durability::Full,
                Box::new(SystemRandom::new()),
            )
            .map_err(|error| DirError::State {
                path: dir.state_path(),
                error,
            })?;
            managers.push(manager);
        }
        let bind_error = |source| ServerError::Bind {
            addr: options.listen,
            source,
        };
        let listener = std::net::TcpListener::bind(options.listen).map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        listener.set_nonblocking(true).map_err(bind_error)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("manager-server")
            .enable_io()
            .enable_time()
            .build()
            .map_err(bind_error)?;
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(listener).map_err(bind_error)?
        };
        let shared = Arc::new(Shared {
            dir,
            managers: Mutex::new(managers),
            ready: Semaphore::new(WORKERS),
            timeout: options.timeout,
            header_timeout: options.header_timeout.min(options.timeout),
        });
        let (stop, stopped) = watch::channel(false);
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        let accept = runtime.spawn(accept_loop(
            listener,
            acceptor,
            Arc::clone(&shared),
            Arc::new(Semaphore::new(options.max_connections.max(1))),
            stopped,
        ));
        Ok(Server {
            addr,
            shared,
            stop,
            runtime: Some(runtime),
            accept: Some(accept),
            _serving: serving,
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
        let Some(runtime) = self.runtime.take() else {
            return;
        };
        let _ = self.stop.send(true);
        if let Some(accept) = self.accept.take() {
            let give_up = self.shared.timeout + Duration::from_secs(2);
            let _ = runtime.block_on(async { tokio::time::timeout(give_up, accept).await });
        }
        runtime.shutdown_timeout(Duration::from_secs(2));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Accepts while connection permits last; on stop, waits for the open connections (each
/// bounded by its deadline) by taking every permit back.
async fn accept_loop(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    shared: Arc<Shared>,
    slots: Arc<Semaphore>,
    mut stopped: watch::Receiver<bool>,
) {
    let total = u32::try_from(slots.available_permits()).unwrap_or(u32::MAX);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            _ = stopped.changed() => break,
        };
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(_) => {
                    // Out of file descriptors and the like: let other connections finish.
                    drop(permit);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = stopped.changed() => break,
        };
        let (acceptor, shared) = (acceptor.clone(), Arc::clone(&shared));
        tokio::spawn(async move {
            serve_connection(&shared, &acceptor, tcp).await;
            drop(permit);
        });
    }
    drop(listener);
    let _ = slots.acquire_many(total).await;
}

async fn serve_connection(
    shared: &Arc<Shared>,
    acceptor: &tokio_rustls::TlsAcceptor,
    tcp: tokio::net::TcpStream,
) {
    let accepted = Instant::now();
    let deadline = accepted + shared.timeout;
    let head_by = accepted + shared.header_timeout;
    let _ = tcp.set_nodelay(true);
    let Ok(Ok(tls)) = tokio::time::timeout_at(head_by, acceptor.accept(tcp)).await else {
        return; // the handshake failed or stalled: nobody to answer
    };
    let service_shared = Arc::clone(shared);
    let service = hyper::service::service_fn(move |request| {
        let shared = Arc::clone(&service_shared);
        async move { Ok::<_, Infallible>(answer(&shared, request, deadline).await) }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(head_by.saturating_duration_since(Instant::now()))
        .keep_alive(false)
        .title_case_headers(true)
        .max_buf_size(MAX_HEAD_LEN.max(8192));
    let connection = http.serve_connection(TokioIo::new(tls), service);
    let _ = tokio::time::timeout_at(deadline + ANSWER_GRACE, connection).await;
}

fn reply(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    if status == StatusCode::METHOD_NOT_ALLOWED {
        headers.insert(ALLOW, HeaderValue::from_static("POST"));
    }
    response
}

/// A refusal's answer: the status and its message as plain text.
fn refusal(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    reply(
        status,
        "text/plain; charset=utf-8",
        format!("{message}\n").into_bytes(),
    )
}

async fn answer(
    shared: &Arc<Shared>,
    request: Request<Incoming>,
    deadline: Instant,
) -> Response<Full<Bytes>> {
    if request.method() != Method::POST {
        return refusal(StatusCode::METHOD_NOT_ALLOWED, "only POST is supported");
    }
    if request.headers().contains_key(TRANSFER_ENCODING) {
        return refusal(
            StatusCode::LENGTH_REQUIRED,
            "send the body with a Content-Length",
        );
    }
    let length = match request.headers().get(CONTENT_LENGTH) {
        None => return refusal(StatusCode::LENGTH_REQUIRED, "Content-Length required"),
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok()),
    };
    match length {
        None => return refusal(StatusCode::BAD_REQUEST, "bad Content-Length"),
        Some(n) if n > MAX_REQUEST_LEN as u64 => {
            return refusal(StatusCode::PAYLOAD_TOO_LARGE, "request body too large")
        }
        Some(_) => {}
    }
    let body = Limited::new(request.into_body(), MAX_REQUEST_LEN);
    let body = match tokio::time::timeout_at(deadline, body.collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        // Too slow, gone, or not what its length said: nobody to answer usefully.
        Ok(Err(_)) => return refusal(StatusCode::BAD_REQUEST, "the body could not be read"),
        Err(_) => return refusal(StatusCode::REQUEST_TIMEOUT, "the body came too slowly"),
    };
    // A manager of the pool, waiting at most until the deadline.
    let Ok(Ok(permit)) = tokio::time::timeout_at(deadline, shared.ready.acquire()).await else {
        return refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "the manager is busy; try again",
        );
    };
    let Some(mut manager) = lock(&shared.managers).pop() else {
        return refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the manager could not answer",
        );
    };
    let worker = Arc::clone(shared);
    let until = deadline.into_std();
    let done = tokio::task::spawn_blocking(move || {
        let result = match worker.dir.now() {
            Ok(now) => manager.answer(&body, now, Some(until)),
            Err(e) => Err(DbError::Failed(e.to_string())),
        };
        (manager, result)
    })
    .await;
    let result = match done {
        Ok((manager, result)) => {
            lock(&shared.managers).push(manager);
            result
        }
        // The worker panicked: that manager is gone, and so is its permit.
        Err(_) => {
            permit.forget();
            return refusal(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the manager could not answer",
            );
        }
    };
    drop(permit);
    match result {
        Ok(answer) if !answer.is_empty() => reply(StatusCode::OK, "application/xml", answer),
        Err(DbError::Busy) => refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "the manager's database is busy; try again",
        ),
        Ok(_) | Err(DbError::Failed(_)) => refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the manager could not answer",
        ),
    }
}
