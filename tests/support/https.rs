//! A test CA and a minimal HTTPS/1.1 server: rustls with ring, std `TcpListener`, one thread
//! per connection; reads the request head and a `Content-Length` body, answers as told and
//! closes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

/// A certificate authority for tests. Give each one its own name: a CA with the name of a
/// trusted one but another key shows up as a bad signature, not an unknown issuer.
pub struct TestCa {
    cert: rcgen::Certificate,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        TestCa {
            cert,
            issuer: Issuer::new(params, key),
        }
    }

    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    pub fn der(&self) -> Vec<u8> {
        self.cert.der().to_vec()
    }

    /// A server certificate for `names` (DNS names or IP addresses) and its key.
    pub fn leaf(&self, names: &[&str]) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let key = KeyPair::generate().expect("leaf key");
        let cert = leaf_params(names)
            .signed_by(&key, &self.issuer)
            .expect("leaf cert");
        (cert.der().clone(), private_key(&key))
    }

    /// A server certificate for `names` that expired at the end of 2020.
    pub fn expired_leaf(
        &self,
        names: &[&str],
    ) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let mut params = leaf_params(names);
        params.not_before = rcgen::date_time_ymd(2019, 1, 1);
        params.not_after = rcgen::date_time_ymd(2020, 12, 31);
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("leaf cert");
        (cert.der().clone(), private_key(&key))
    }

    /// This CA's own certificate and key, for a server that presents the CA as its own.
    pub fn as_leaf(&self) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        (self.cert.der().clone(), private_key(self.issuer.key()))
    }
}

/// A self-signed server certificate for `names` (issued by no CA) and its key.
pub fn self_signed_leaf(names: &[&str]) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let key = KeyPair::generate().expect("leaf key");
    let cert = leaf_params(names)
        .self_signed(&key)
        .expect("self-signed cert");
    (cert.der().clone(), private_key(&key))
}

/// A self-signed server certificate for `names` that is also a CA (`CA:TRUE`), as
/// `openssl req -x509` makes one by default.
pub fn self_signed_ca_leaf(names: &[&str]) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let mut params = leaf_params(names);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().expect("leaf key");
    let cert = params.self_signed(&key).expect("self-signed cert");
    (cert.der().clone(), private_key(&key))
}

fn leaf_params(names: &[&str]) -> CertificateParams {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names).expect("leaf params");
    params
        .distinguished_name
        .push(DnType::CommonName, "test manager");
    params
}

fn private_key(key: &KeyPair) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()))
}

/// Makes an answer body from a request body.
pub type Handler = Arc<dyn Fn(&[u8]) -> Vec<u8> + Send + Sync>;

/// What the server does with each request.
#[derive(Clone)]
pub enum Reply {
    /// 200 with this body.
    Fixed(Vec<u8>),
    /// This status, empty body.
    Status(u16),
    /// 200 with this many bytes of body.
    Oversized(usize),
    /// Reads the request, then never answers (holds the connection until the client leaves).
    Silent,
    /// 200 with a body that is not a protocol document.
    Garbage,
    /// Reads the request, then closes the connection without answering.
    Hangup,
    /// 200 with what the function makes of the request body.
    With(Handler),
    /// Exactly these bytes, whatever they are, then close.
    Raw(Vec<u8>),
}

/// A request as the server read it.
#[derive(Clone, Debug)]
pub struct Received {
    pub request_line: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub struct TestServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    received: Arc<Mutex<Vec<Received>>>,
    accept: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Listens on `bind` (e.g. `127.0.0.1:0`) with a certificate from `ca` for `names`.
    pub fn start(
        ca: &TestCa,
        names: &[&str],
        bind: &str,
        reply: Reply,
    ) -> std::io::Result<TestServer> {
        TestServer::start_with(ca.leaf(names), bind, reply)
    }

    /// Listens on `bind` presenting exactly this certificate (any kind: self-signed, expired,
    /// a CA's own) and key.
    pub fn start_with(
        (cert, key): (CertificateDer<'static>, PrivateKeyDer<'static>),
        bind: &str,
        reply: Reply,
    ) -> std::io::Result<TestServer> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .expect("server certificate");
        let config = Arc::new(config);
        let listener = TcpListener::bind(bind)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(Mutex::new(Vec::new()));
        let accept = {
            let (stop, received) = (stop.clone(), received.clone());
            thread::spawn(move || {
                for tcp in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(tcp) = tcp else { continue };
                    let (config, reply, received) =
                        (config.clone(), reply.clone(), received.clone());
                    thread::spawn(move || serve(tcp, config, &reply, &received));
                }
            })
        };
        Ok(TestServer {
            addr,
            stop,
            received,
            accept: Some(accept),
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `https://{host}:{port}{path}`; `host` as written in a URL (`[::1]` for IPv6).
    pub fn url(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.port())
    }

    /// The requests read so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("received lock").clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wake the accept loop
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn serve(
    tcp: TcpStream,
    config: Arc<ServerConfig>,
    reply: &Reply,
    received: &Mutex<Vec<Received>>,
) {
    // Bounds the life of a connection the client abandoned.
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(conn) = ServerConnection::new(config) else {
        return;
    };
    let mut stream = StreamOwned::new(conn, tcp);
    // The handshake happens in the first read; a client that refuses the certificate ends here.
    let Some(request) = read_request(&mut stream) else {
        return;
    };
    received
        .lock()
        .expect("received lock")
        .push(request.clone());
    let answer = match reply {
        Reply::Fixed(body) => ok(body),
        Reply::Status(code) => {
            format!("HTTP/1.1 {code} Test Status\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .into_bytes()
        }
        Reply::Oversized(n) => ok(&vec![b'x'; *n]),
        Reply::Garbage => ok(b"<html>this is not a manager</html>"),
        Reply::With(make) => ok(&make(&request.body)),
        Reply::Raw(bytes) => bytes.clone(),
        Reply::Hangup => return,
        Reply::Silent => {
            let mut byte = [0u8; 1];
            let _ = stream.read(&mut byte); // until the client gives up
            return;
        }
    };
    let _ = stream.write_all(&answer);
    stream.conn.send_close_notify();
    let _ = stream.flush();
}

fn ok(body: &[u8]) -> Vec<u8> {
    let mut answer = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(body);
    answer
}

fn read_request(stream: &mut StreamOwned<ServerConnection, TcpStream>) -> Option<Received> {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    if request_line.is_empty() {
        return None;
    }
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let len = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(Received {
        request_line: request_line.trim_end().to_string(),
        headers,
        body,
    })
}
