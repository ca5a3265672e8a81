//! Benchmarks of the reference manager at satellite scale (issue 11, item 6).
//!
//! ```text
//! cargo bench --bench manager --features manager            # everything
//! cargo bench --bench manager --features manager -- handle  # in-process only
//! cargo bench --bench manager --features manager -- https   # HTTPS only
//! ```
//!
//! - `handle/authorize/N` and `handle/register/N`: one [`Manager::handle`] call, in process,
//!   with N instances in the Virtual Account, so that neither TLS nor fsync can hide work
//!   that grows with the fleet. Every authorize carries a usage change; the pools are short,
//!   so substitution and dual parenting take part. A register is of a new device, which is
//!   deregistered again outside the measurement (the fleet keeps its size).
//! - `https/N`: 16 concurrent clients built on the crate's `HttpsTransport` renew the
//!   authorization of N registered instances over loopback HTTPS for a fixed number of
//!   requests: throughput, p50 and p99 latency, and the state's size per instance.
//!
//! - `flood`: a server process (this binary again) serving 10 000 instances; with 300 idle
//!   and 100 slow (1 byte/s) connections open, genuine registrations over HTTPS: their
//!   latency, and the server process's resident memory.
//!
//! After the criterion groups the bench prints the ratios of the same run (the
//! 10 000-instance figure over the 10-instance one), read from criterion's estimates, and
//! measures them once more with the sizes interleaved.
//!
//! Only the public API is used, so the same file measures earlier versions of the crate.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use base64::Engine as _;
use chrono::{DateTime, Utc};
use criterion::{BenchmarkId, Criterion};
use smart_agent::crypto::DeviceKey;
use smart_agent::manager::server::{Server, ServerOptions};
use smart_agent::manager::{catalogue, Manager, StateDir, TokenOptions};
use smart_agent::transport::{HttpsTransport, Transport, TransportConfig};
use smart_agent::wire::{
    decode_response, encode_request, AuthorizeBody, RegisterBody, Request, RequestBody,
    RequestKind, ResponseStatus, UsageLine, PROTOCOL_VERSION,
};
use smart_agent::{DeterministicRandom, Environment, Tag, Token, TransportSettings, Udi, Uuid};

const SIZES: [usize; 3] = [10, 1_000, 10_000];
const HTTPS_SIZES: [usize; 2] = [100, 10_000];
const CLIENTS: usize = 16;
const HTTPS_REQUESTS: usize = 1_600;

fn now() -> DateTime<Utc> {
    "2027-01-04T10:00:00Z".parse().expect("a time")
}

/// One product instance as the manager sees it from outside.
struct Device {
    udi: Udi,
    key: DeviceKey,
    piid: Option<Uuid>,
    nonce: u64,
    sequence: u64,
}

impl Device {
    fn new(n: usize) -> Device {
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&(n as u64).to_be_bytes());
        seed[31] = 1;
        Device {
            udi: format!("PID:UCM,SN:{n},UUID:{n:032x}")
                .parse()
                .expect("a UDI"),
            key: DeviceKey::from_seed(seed),
            piid: None,
            nonce: 0,
            sequence: 0,
        }
    }

    fn request(&mut self, kind: RequestKind, body: RequestBody) -> Vec<u8> {
        self.nonce += 1;
        let request = Request {
            kind,
            version: PROTOCOL_VERSION,
            nonce: format!("{:016x}", self.nonce),
            piid: self.piid,
            udi: self.udi.clone(),
            sent_at: now(),
            hostname: Some("ucm.example.com".into()),
            ip: Some("192.0.2.10".into()),
            body,
        };
        encode_request(&request, &self.key)
    }

    fn register(&mut self, token: &Token) -> Vec<u8> {
        let body = RequestBody::register(RegisterBody {
            token: token.expose().to_string(),
            public_key: base64::engine::general_purpose::STANDARD.encode(self.key.public_key()),
            force: false,
        });
        self.request(RequestKind::Register, body)
    }

    /// A usage report that changes this instance's usage (2 or 3 Basic, 2 Enhanced, 1 CUWL).
    fn authorize(&mut self) -> Vec<u8> {
        self.sequence += 1;
        let basic = 2 + (self.sequence % 2) as u32;
        let usage = [
            (catalogue::UCM_BASIC, basic),
            (catalogue::UCM_ENHANCED, 2),
            (catalogue::UCM_CUWL, 1),
        ];
        let body = RequestBody::authorize(AuthorizeBody {
            sequence: self.sequence,
            usage: usage
                .iter()
                .map(|(tag, count)| UsageLine {
                    tag: tag.to_string(),
                    count: *count,
                })
                .collect(),
        });
        self.request(RequestKind::Authorize, body)
    }

    fn deregister(&mut self) -> Vec<u8> {
        self.request(RequestKind::Deregister, RequestBody::deregister())
    }

    /// Adopts the piid of a successful registration; panics on anything but OK.
    fn accept(&mut self, answer: &[u8]) {
        let parsed = decode_response(answer, 1 << 20).expect("an answer");
        assert_eq!(
            parsed.response.status,
            ResponseStatus::Ok,
            "refused: {:?}",
            parsed.response.status
        );
        if parsed.response.kind == RequestKind::Register {
            self.piid = parsed.response.piid;
        }
    }
}

/// Pools short of the fleet's demand (2-3 Basic, 2 Enhanced, 1 CUWL each), so that
/// substitution and dual parenting both take part.
fn add_pools(m: &mut Manager, n: usize) {
    let va = m.default_virtual_account();
    let n = n as u32;
    for (tag, count) in [
        (catalogue::UCM_BASIC, n),
        (catalogue::UCM_ENHANCED, n),
        (catalogue::UCM_ENHANCED_PLUS, n / 2 + 1),
        (catalogue::UCM_CUWL, n / 2 + 1),
        (catalogue::HCS_UCM_FOUNDATION, n / 2 + 1),
        (catalogue::HCS_UCM_STANDARD, n / 4 + 1),
    ] {
        let tag = Tag::parse(tag).expect("a catalogue tag");
        m.add_licenses(&va, &tag, count, None, None)
            .expect("a pool");
    }
}

/// Registers `n` devices (numbered from `first`) and has each report its usage once.
fn enrol(m: &mut Manager, token: &Token, first: usize, n: usize) -> Vec<Device> {
    let mut devices: Vec<Device> = (first..first + n).map(Device::new).collect();
    for d in &mut devices {
        let raw = d.register(token);
        let answer = m.handle(&raw, now());
        d.accept(&answer);
        let raw = d.authorize();
        let answer = m.handle(&raw, now());
        d.accept(&answer);
    }
    devices
}

/// A manager with `n` instances in its default Virtual Account.
fn fleet(n: usize) -> (Manager, Token, Vec<Device>) {
    let mut m = Manager::new(
        Environment::Production,
        Box::new(DeterministicRandom::new(11)),
    )
    .expect("a manager");
    add_pools(&mut m, n);
    let va = m.default_virtual_account();
    let token = m
        .create_token(&va, TokenOptions::default(), now())
        .expect("a token");
    let devices = enrol(&mut m, &token, 0, n);
    (m, token, devices)
}

/// One fleet of the in-process benchmarks.
struct Fleet {
    n: usize,
    manager: Manager,
    token: Token,
    devices: Vec<Device>,
    next: usize,
    fresh: usize,
}

impl Fleet {
    fn new(n: usize) -> Fleet {
        let (manager, token, devices) = fleet(n);
        Fleet {
            n,
            manager,
            token,
            devices,
            next: 0,
            fresh: 1_000_000,
        }
    }

    /// One authorize with a usage change: its time in `handle`.
    fn authorize(&mut self) -> Duration {
        let d = &mut self.devices[self.next % self.n];
        self.next += 1;
        let raw = d.authorize();
        let started = Instant::now();
        let answer = self.manager.handle(&raw, now());
        let took = started.elapsed();
        d.accept(&answer);
        took
    }

    /// One register of a new device (deregistered again, untimed): its time in `handle`.
    fn register(&mut self) -> Duration {
        let mut d = Device::new(self.fresh);
        self.fresh += 1;
        let raw = d.register(&self.token);
        let started = Instant::now();
        let answer = self.manager.handle(&raw, now());
        let took = started.elapsed();
        d.accept(&answer);
        let raw = d.deregister();
        let answer = self.manager.handle(&raw, now());
        d.accept(&answer);
        took
    }
}

fn bench_handle(c: &mut Criterion) -> Vec<Fleet> {
    let mut fleets: Vec<Fleet> = SIZES.iter().map(|n| Fleet::new(*n)).collect();
    let mut group = c.benchmark_group("handle");
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(4));
    group.warm_up_time(Duration::from_secs(1));
    for f in &mut fleets {
        let n = f.n;
        group.bench_with_input(BenchmarkId::new("authorize", n), &n, |b, _| {
            b.iter_custom(|iters| (0..iters).map(|_| f.authorize()).sum())
        });
        group.bench_with_input(BenchmarkId::new("register", n), &n, |b, _| {
            b.iter_custom(|iters| (0..iters).map(|_| f.register()).sum())
        });
    }
    group.finish();
    fleets
}

/// The ratios again, with the sizes interleaved (batches of 100 requests, 15 rounds, the
/// median batch mean per size), so that the machine's load over time does not fall on one
/// size only.
fn interleaved(fleets: &mut [Fleet]) {
    println!("\ninterleaved (median of 15 rounds of 100 requests per size):");
    for (name, op) in [
        ("authorize", Fleet::authorize as fn(&mut Fleet) -> Duration),
        ("register", Fleet::register),
    ] {
        let mut means: Vec<Vec<f64>> = vec![Vec::new(); fleets.len()];
        for _ in 0..15 {
            for (f, m) in fleets.iter_mut().zip(&mut means) {
                let total: Duration = (0..100).map(|_| op(f)).sum();
                m.push(total.as_secs_f64() * 1e6 / 100.0);
            }
        }
        let medians: Vec<f64> = means
            .iter_mut()
            .map(|m| {
                m.sort_by(f64::total_cmp);
                m[m.len() / 2]
            })
            .collect();
        let mut line = format!("  handle/{name}: {:.1} µs at {}", medians[0], fleets[0].n);
        for (f, median) in fleets.iter().zip(&medians).skip(1) {
            line.push_str(&format!(
                ", {median:.1} µs at {} ({:.2}×)",
                f.n,
                median / medians[0]
            ));
        }
        println!("{line}");
    }
}

/// The mean of one benchmark of this run, in nanoseconds, from criterion's estimates.
fn mean_ns(dir: &Path, group: &str, id: &str, n: usize) -> Option<f64> {
    let path = dir
        .join(group)
        .join(id)
        .join(n.to_string())
        .join("new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let at = text.find("\"mean\"")?;
    let rest = &text[at..];
    let key = "\"point_estimate\":";
    let start = rest.find(key)? + key.len();
    let end = rest[start..].find([',', '}'])? + start;
    rest[start..end].trim().parse().ok()
}

fn criterion_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("criterion")
}

fn print_ratios() {
    let dir = criterion_dir();
    println!("\nratios of this run (mean at N / mean at {}):", SIZES[0]);
    for id in ["authorize", "register"] {
        let Some(base) = mean_ns(&dir, "handle", id, SIZES[0]) else {
            continue;
        };
        let mut line = format!("  handle/{id}: {:.1} µs at {}", base / 1e3, SIZES[0]);
        for n in &SIZES[1..] {
            if let Some(mean) = mean_ns(&dir, "handle", id, *n) {
                line.push_str(&format!(
                    ", {:.1} µs at {n} ({:.2}×)",
                    mean / 1e3,
                    mean / base
                ));
            }
        }
        println!("{line}");
    }
}

/// What one HTTPS run measured.
struct HttpsFigures {
    /// Requests answered per second (failed ones not counted).
    throughput: f64,
    /// Requests that got no answer (connection closed at the deadline, refused, …).
    failed: usize,
    p50: Duration,
    p99: Duration,
    state_bytes: u64,
}

fn dir_size(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| {
                    let name = e.file_name();
                    let name = name.to_string_lossy();
                    name.starts_with("state")
                })
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn https_run(n: usize) -> HttpsFigures {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let dir = StateDir::open_or_create(tmp.path(), Some(Environment::Production))
        .expect("a state directory");
    // The bench's time is the directory's (virtual) clock.
    dir.set_clock(now()).expect("a clock");
    // The fleet is enrolled in process, in one administration call.
    let devices = dir
        .update(|m, at| {
            add_pools(m, n);
            let va = m.default_virtual_account();
            let token = m.create_token(&va, TokenOptions::default(), at)?;
            Ok(enrol(m, &token, 0, n))
        })
        .expect("enrolled");
    let server = Server::start(tmp.path(), ServerOptions::default()).expect("a server");
    let url = format!("https://{}/SmartTransport", server.addr());
    let ca = std::fs::read(server.state_dir().ca_cert_path()).expect("the CA");
    let per_client = HTTPS_REQUESTS / CLIENTS;
    let mut groups: Vec<Vec<Device>> = (0..CLIENTS).map(|_| Vec::new()).collect();
    for (i, d) in devices.into_iter().enumerate() {
        groups[i % CLIENTS].push(d);
    }
    let start = Arc::new(Barrier::new(CLIENTS + 1));
    let handles: Vec<_> = groups
        .into_iter()
        .map(|mut mine| {
            let (url, ca, start) = (url.clone(), ca.clone(), start.clone());
            std::thread::spawn(move || {
                let mut config = TransportConfig::new();
                config.add_ca_pem(&ca).expect("the CA");
                let mut transport = HttpsTransport::new(config).expect("a transport");
                let settings = TransportSettings::on_prem(&url).expect("an on-prem URL");
                let mut latencies = Vec::with_capacity(per_client);
                let mut failed = 0;
                start.wait();
                for k in 0..per_client {
                    let count = mine.len();
                    let d = &mut mine[k % count];
                    let raw = d.authorize();
                    let started = Instant::now();
                    match transport.send(&settings, &raw) {
                        Ok(answer) => {
                            latencies.push(started.elapsed());
                            d.accept(&answer);
                        }
                        Err(_) => failed += 1,
                    }
                }
                (latencies, failed)
            })
        })
        .collect();
    start.wait();
    let began = Instant::now();
    let mut latencies: Vec<Duration> = Vec::new();
    let mut failed = 0;
    for h in handles {
        let (mine, lost) = h.join().expect("a client");
        latencies.extend(mine);
        failed += lost;
    }
    let elapsed = began.elapsed();
    server.shutdown();
    latencies.sort();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    HttpsFigures {
        throughput: latencies.len() as f64 / elapsed.as_secs_f64(),
        failed,
        p50: at(0.50),
        p99: at(0.99),
        state_bytes: dir_size(tmp.path()),
    }
}

fn bench_https() {
    println!("\nhttps: {CLIENTS} clients, {HTTPS_REQUESTS} authorize requests with a usage change");
    let mut figures = Vec::new();
    for n in HTTPS_SIZES {
        let f = https_run(n);
        println!(
            "  https/{n}: {:.0} requests/s, {} failed, p50 {:.1} ms, p99 {:.1} ms, state {} bytes ({:.0} per instance)",
            f.throughput,
            f.failed,
            f.p50.as_secs_f64() * 1e3,
            f.p99.as_secs_f64() * 1e3,
            f.state_bytes,
            f.state_bytes as f64 / n as f64
        );
        figures.push(f);
    }
    if let [small, large] = &figures[..] {
        println!(
            "  throughput at {} / at {}: {:.2}×",
            HTTPS_SIZES[1],
            HTTPS_SIZES[0],
            large.throughput / small.throughput
        );
    }
}

/// The server process of `flood`: serves the directory named by the environment, prints its
/// address, and runs until killed.
fn serve_child(dir: &str) -> ! {
    let server = Server::start(dir, ServerOptions::default()).expect("a server");
    println!("listening: {}", server.addr());
    let _ = std::io::Write::flush(&mut std::io::stdout());
    loop {
        std::thread::park();
    }
}

/// `VmRSS` and `VmHWM` of process `pid`, in KiB.
fn memory_of(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// One genuine registration over HTTPS: its latency.
fn genuine_register(url: &str, ca: &[u8], token: &Token, n: usize) -> Duration {
    let mut config = TransportConfig::new();
    config.add_ca_pem(ca).expect("the CA");
    let mut transport = HttpsTransport::new(config).expect("a transport");
    let settings = TransportSettings::on_prem(url).expect("an on-prem URL");
    let mut d = Device::new(n);
    let raw = d.register(token);
    let started = Instant::now();
    let answer = transport.send(&settings, &raw);
    let took = started.elapsed();
    match answer {
        Ok(answer) => d.accept(&answer),
        Err(e) => println!("    genuine registration {n} failed after {took:?}: {e}"),
    }
    took
}

fn bench_flood() {
    use std::io::{BufRead as _, Write as _};
    let n = 10_000;
    let (idle, slow) = (300, 100);
    println!("\nflood: {n} instances, {idle} idle and {slow} slow (1 byte/s) connections");
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let dir = StateDir::open_or_create(tmp.path(), Some(Environment::Production))
        .expect("a state directory");
    dir.set_clock(now()).expect("a clock");
    let token = dir
        .update(|m, at| {
            add_pools(m, n);
            let va = m.default_virtual_account();
            let token = m.create_token(&va, TokenOptions::default(), at)?;
            enrol(m, &token, 0, n);
            Ok(token)
        })
        .expect("enrolled");
    let ca = std::fs::read(dir.ca_cert_path()).expect("the CA");
    drop(dir);
    let mut child = std::process::Command::new(std::env::current_exe().expect("this binary"))
        .env("MANAGER_BENCH_SERVE", tmp.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("a server process");
    let mut line = String::new();
    let mut out = std::io::BufReader::new(child.stdout.take().expect("its output"));
    out.read_line(&mut line).expect("its address");
    let addr: std::net::SocketAddr = line
        .trim()
        .strip_prefix("listening: ")
        .and_then(|a| a.parse().ok())
        .expect("an address");
    let url = format!("https://{addr}/SmartTransport");
    let quiet = genuine_register(&url, &ca, &token, 2_000_000);
    let (rss, _) = memory_of(child.id());
    println!(
        "  no flood: registration {:.1} ms; server RSS {} MiB",
        quiet.as_secs_f64() * 1e3,
        rss / 1024
    );
    let mut idle_sockets = Vec::new();
    for _ in 0..idle {
        match std::net::TcpStream::connect(addr) {
            Ok(s) => idle_sockets.push(s),
            Err(e) => {
                println!("  only {} idle connections: {e}", idle_sockets.len());
                break;
            }
        }
    }
    let mut slow_sockets = Vec::new();
    for _ in 0..slow {
        match std::net::TcpStream::connect(addr) {
            Ok(s) => slow_sockets.push(s),
            Err(e) => {
                println!("  only {} slow connections: {e}", slow_sockets.len());
                break;
            }
        }
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let dripping = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            // A TLS record header, one byte a second per connection.
            let bytes = [0x16u8, 0x03, 0x01, 0x02, 0x00];
            let mut k = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                for s in &mut slow_sockets {
                    let _ = s.write_all(&bytes[k % bytes.len()..k % bytes.len() + 1]);
                }
                k += 1;
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    let mut flooded: Vec<Duration> = (0..10)
        .map(|i| genuine_register(&url, &ca, &token, 2_000_001 + i))
        .collect();
    flooded.sort();
    let (rss, hwm) = memory_of(child.id());
    println!(
        "  flooded: registration median {:.1} ms, max {:.1} ms (10 of them); server RSS {} MiB (peak {} MiB)",
        flooded[5].as_secs_f64() * 1e3,
        flooded[9].as_secs_f64() * 1e3,
        rss / 1024,
        hwm / 1024
    );
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = dripping.join();
    drop(idle_sockets);
    let _ = child.kill();
    let _ = child.wait();
    println!(
        "  state: {} bytes ({:.0} per instance)",
        dir_size(tmp.path()),
        dir_size(tmp.path()) as f64 / n as f64
    );
}

fn main() {
    if let Ok(dir) = std::env::var("MANAGER_BENCH_SERVE") {
        serve_child(&dir);
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let filter = args.iter().find(|a| !a.starts_with('-')).cloned();
    let wants = |name: &str| {
        filter
            .as_deref()
            .is_none_or(|f| name.contains(f) || f.contains(name))
    };
    if wants("handle") {
        let mut c = Criterion::default().configure_from_args();
        let mut fleets = bench_handle(&mut c);
        c.final_summary();
        print_ratios();
        if !args.iter().any(|a| a == "--list" || a == "--test") {
            interleaved(&mut fleets);
        }
    }
    let listing = args.iter().any(|a| a == "--list" || a == "--test");
    if wants("https") && !listing {
        bench_https();
    }
    if wants("flood") && !listing {
        bench_flood();
    }
}
