//! Benchmarks of the agent against the crypto floor (issue 14, item 3).
//!
//! ```text
//! cargo bench --bench agent --features manager             # everything (about 3 minutes)
//! cargo bench --bench agent --features manager -- crypto/  # some criterion benchmarks only
//! cargo bench --bench agent --features manager -- ratios   # the paired ratios only
//! cargo bench --bench agent --features manager -- sizes    # snapshot size, heap, allocations
//! ```
//!
//! Absolute times are noise on a shared 2-core machine; what this bench is for is the
//! **ratios**, each measured in the same run. They are measured **paired**: each round times
//! the operation once and, right after it, the bare ring operations it is compared with, so
//! that both see the same load; the figure is the median over the rounds of the per-round
//! ratio (and the medians of both sides are printed with it).
//!
//! - authorize round trip: one online round trip in process, an authorize with a usage change
//!   (`set_usage`, `renew_auth`, `poll_transmit` → [`Manager::handle`] → `handle_response`,
//!   events drained), against the six signature operations that protocol performs, each done
//!   bare with ring over the same bytes: the device's Ed25519 signature of the request, the
//!   manager's verification of it, the manager's ECDSA P-256 signatures of the grant and of
//!   the answer envelope, and the agent's verifications of both (target ≤ 1.5×). Also against
//!   issue 14's "four-op floor" (Ed25519 sign + verify, ECDSA P-256 sign + verify of 1 KiB).
//! - SLR install: [`Agent::reservation_install`] of an SLR authorization code with six
//!   entitlements, against one bare ECDSA P-256 verification of the same signed bytes
//!   (target ≤ 1.3×).
//! - restore: [`Agent::restore`] of a registered agent with six tags, against the two ECDSA
//!   verifications it must perform, identity certificate and grant (target ≤ 1.3×); also
//!   against those plus the derivation of the device's public key from its kept seed, which
//!   the restore compares with the certified one.
//!
//! The criterion benchmarks give the absolute figures: each bare operation, the three above,
//! and per call `status(now)`, `set_usage`, `poll_timeout`, `snapshot()` and the snapshot's
//! decoding (`snapshot::open`: the container; `restore/unregistered`: a full restore with no
//! signature in it).
//!
//! Sizes: the snapshot of a registered 6-tag agent against the signed documents it must keep
//! verbatim (identity certificate and grant) plus 256 bytes (target ≤ 1.2×), and the heap one
//! such agent takes (target ≤ 8 KiB), measured with the counting global allocator below: the
//! bytes freed when a boxed agent is dropped, the `Agent` value itself included (as in a
//! `Vec<Agent>` of a fleet). Allocation calls per operation come from the same allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use chrono::{DateTime, TimeDelta, Utc};
use criterion::Criterion;
use ring::signature::{self, KeyPair as _};
use smart_agent::codes::{LicenseType, RequestCode, SlrClaims, SlrCode, SlrEntitlement};
use smart_agent::crypto::ManagerSigningKey;
use smart_agent::manager::{catalogue, Manager, TokenOptions};
use smart_agent::snapshot::open as open_snapshot;
use smart_agent::wire::decode_request;
use smart_agent::{
    Agent, AuthorizationState, Config, DeterministicRandom, Environment, EventKind, Force,
    Protection, Tag, TrustAnchor, Udi, Uuid,
};

// ---------------------------------------------------------------------------------------------
// A counting allocator: live bytes and allocation calls of this process.
// ---------------------------------------------------------------------------------------------

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static CALLS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the counters are only
// statistics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        CALLS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        CALLS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        CALLS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live_bytes() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// Allocation calls (alloc, alloc_zeroed, realloc) made by `f`, per call of `f`, over `n` calls.
fn allocations_per_call(n: u64, mut f: impl FnMut()) -> f64 {
    let before = CALLS.load(Ordering::Relaxed);
    for _ in 0..n {
        f();
    }
    (CALLS.load(Ordering::Relaxed) - before) as f64 / n as f64
}

// ---------------------------------------------------------------------------------------------
// Timing records: every routine reports its samples here, so that the ratios printed at the end
// are computed from this run only.
// ---------------------------------------------------------------------------------------------

const SAMPLE_SIZE: usize = 30;

static SAMPLES: Mutex<BTreeMap<&'static str, Vec<f64>>> = Mutex::new(BTreeMap::new());

fn record(id: &'static str, iters: u64, spent: Duration) {
    let per_iter = spent.as_secs_f64() * 1e9 / iters.max(1) as f64;
    let mut samples = SAMPLES.lock().unwrap_or_else(|e| e.into_inner());
    samples.entry(id).or_default().push(per_iter);
}

/// The median nanoseconds per iteration over the last [`SAMPLE_SIZE`] samples of `id` (the
/// measurement; criterion's warm-up calls come first).
fn median_ns(id: &str) -> Option<f64> {
    let samples = SAMPLES.lock().unwrap_or_else(|e| e.into_inner());
    let all = samples.get(id)?;
    let mut last: Vec<f64> = all[all.len().saturating_sub(SAMPLE_SIZE)..].to_vec();
    last.sort_by(f64::total_cmp);
    let n = last.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(last[n / 2]),
        _ => Some((last[n / 2 - 1] + last[n / 2]) / 2.0),
    }
}

/// Registers benchmark `id`: `routine(iters)` runs the operation `iters` times and returns the
/// time spent in the operation alone (set-up and tear-down left out).
fn bench(c: &mut Criterion, id: &'static str, mut routine: impl FnMut(u64) -> Duration) {
    c.bench_function(id, |b| {
        b.iter_custom(|iters| {
            let spent = routine(iters);
            record(id, iters, spent);
            spent
        })
    });
}

/// Times `op` alone, `iters` times.
fn each(iters: u64, mut op: impl FnMut()) -> Duration {
    let started = Instant::now();
    for _ in 0..iters {
        op();
    }
    started.elapsed()
}

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

const UDI: &str = "PID:UCM,SN:37624,UUID:6fe83addc80240bc92dc071ac7a37624";

/// Six Unified CM tags, as a product declares them.
const TAGS: [&str; 6] = [
    catalogue::UCM_BASIC,
    catalogue::UCM_ENHANCED,
    catalogue::UCM_ENHANCED_PLUS,
    catalogue::UCM_CUWL,
    catalogue::UCM_ESSENTIAL,
    catalogue::UCM_TELEPRESENCE_ROOM,
];

fn t0() -> DateTime<Utc> {
    "2027-01-04T10:00:00Z".parse().expect("a time")
}

fn tags() -> Vec<Tag> {
    TAGS.iter()
        .map(|t| Tag::parse(t).expect("a catalogue tag"))
        .collect()
}

fn udi() -> Udi {
    UDI.parse().expect("a UDI")
}

/// What a product configures: its UDI, production, the manager's keys, the system random
/// source and integrity-checked snapshots (the defaults).
fn config(anchors: &[TrustAnchor]) -> Config {
    Config::new(udi(), Environment::Production, anchors.to_vec())
}

/// The enveloped rule of the wire (DESIGN "Signed bytes, exactly"): the signed bytes are the
/// document without its root's last child `<signature>`, whose text is the base64 signature.
fn enveloped(document: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let text = std::str::from_utf8(document).expect("UTF-8");
    let start = text.rfind("<signature>").expect("a signature");
    let end = start + text[start..].find("</signature>").expect("closed") + "</signature>".len();
    let signature = &text[start + "<signature>".len()..end - "</signature>".len()];
    let signed = [&text.as_bytes()[..start], &text.as_bytes()[end..]].concat();
    let signature = base64::engine::general_purpose::STANDARD
        .decode(signature)
        .expect("base64");
    (signed, signature)
}

/// The element `<name>…</name>` of `document`, verbatim.
fn element(document: &[u8], name: &str) -> Vec<u8> {
    let text = std::str::from_utf8(document).expect("UTF-8");
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = text.find(&open).expect("the element");
    let end = start + text[start..].find(&close).expect("closed") + close.len();
    text.as_bytes()[start..end].to_vec()
}

/// A registered, authorized agent with six tags in use, its manager, and the bytes of one
/// authorize exchange.
struct Online {
    manager: Manager,
    agent: Agent,
    anchors: Vec<TrustAnchor>,
    now: DateTime<Utc>,
    /// The verbatim identity certificate and grant the agent keeps.
    identity: Vec<u8>,
    grant: Vec<u8>,
    /// The last authorize request and its answer.
    request: Vec<u8>,
    answer: Vec<u8>,
}

fn online() -> Online {
    let now = t0();
    let mut manager = Manager::new(
        Environment::Production,
        Box::new(DeterministicRandom::new(11)),
    )
    .expect("a manager");
    let va = manager.default_virtual_account();
    for tag in tags() {
        manager
            .add_licenses(&va, &tag, 1_000, None, None)
            .expect("a pool");
    }
    let token = manager
        .create_token(&va, TokenOptions::default(), now)
        .expect("a token");
    let anchors = manager.trust_anchors();
    let mut agent = Agent::new(config(&anchors), now).expect("an agent");
    for (n, tag) in tags().into_iter().enumerate() {
        agent.declare(tag.clone(), now);
        agent.set_usage(&tag, 2 + n as u32, now).expect("declared");
    }
    agent
        .register(token.expose(), Force::No, now)
        .expect("registers");
    let (mut identity, mut grant, mut request, mut answer) = (None, None, None, None);
    while let Some(tx) = agent.poll_transmit(now) {
        let reply = manager.handle(&tx.body, now);
        if reply.windows(10).any(|w| w == b"<identity>") {
            identity = Some(element(&reply, "identity"));
        }
        if reply.windows(7).any(|w| w == b"<grant>") {
            grant = Some(element(&reply, "grant"));
            request = Some(tx.body.clone());
            answer = Some(reply.clone());
        }
        agent.handle_response(tx.id, Ok(reply), now);
    }
    while agent.poll_event().is_some() {}
    assert_eq!(
        agent.status(now).authorization.state,
        AuthorizationState::Authorized
    );
    Online {
        manager,
        agent,
        anchors,
        now,
        identity: identity.expect("an identity certificate"),
        grant: grant.expect("a grant"),
        request: request.expect("an authorize request"),
        answer: answer.expect("an authorize answer"),
    }
}

/// An agent in reservation mode with its request outstanding, as a snapshot, and the SLR code
/// a manager issues for it (six entitlements).
struct Reservation {
    anchors: Vec<TrustAnchor>,
    snapshot: Vec<u8>,
    code: String,
    now: DateTime<Utc>,
}

fn reservation() -> Reservation {
    let now = t0();
    let key = ManagerSigningKey::generate().expect("a key");
    let anchors = vec![TrustAnchor::new(
        key.public_key().clone(),
        Environment::Production,
    )];
    let mut agent = Agent::new(config(&anchors), now).expect("an agent");
    for (n, tag) in tags().into_iter().enumerate() {
        agent.declare(tag.clone(), now);
        agent.set_usage(&tag, 2 + n as u32, now).expect("declared");
    }
    agent.reservation_enable(now).expect("enables");
    let request = agent.reservation_request(now).expect("a request code");
    let request = RequestCode::parse(&request.to_string()).expect("parses");
    let claims = SlrClaims {
        piid: Uuid([0x42; 16]),
        timestamp: now,
        udi: request.udi().clone(),
        reservation_key: request.reservation_key_hash(),
        environment: Environment::Production,
        export_controlled: false,
        entitlements: tags()
            .into_iter()
            .enumerate()
            .map(|(n, tag)| SlrEntitlement {
                tag,
                count: 10 + n as u32,
                start_date: None,
                end_date: None,
                license_type: LicenseType::Perpetual,
                display_name: "UC Manager Enhanced License (12.x)".into(),
                tag_description: "UC Manager Enhanced License".into(),
                subscription_id: None,
            })
            .collect(),
    };
    let code = SlrCode::issue(&claims, &key).expect("issues").to_string();
    while agent.poll_event().is_some() {}
    Reservation {
        anchors,
        snapshot: agent.snapshot(),
        code,
        now,
    }
}

// ---------------------------------------------------------------------------------------------
// Bare crypto, with ring, over the bytes the protocol signs
// ---------------------------------------------------------------------------------------------

/// The inputs of every bare operation: the bytes the protocol signs and verifies, exactly.
struct Bare {
    rng: ring::rand::SystemRandom,
    device: signature::Ed25519KeyPair,
    device_public: Vec<u8>,
    /// The authorize request's signed bytes and a signature of them.
    request: (Vec<u8>, Vec<u8>),
    /// A P-256 key for the signing side (the manager's own key is not exported).
    manager: signature::EcdsaKeyPair,
    manager_public: Vec<u8>,
    /// The manager's key, and the signed bytes and signatures it made.
    anchor_point: Vec<u8>,
    grant: (Vec<u8>, Vec<u8>),
    envelope: (Vec<u8>, Vec<u8>),
    identity: (Vec<u8>, Vec<u8>),
    /// The SLR code's key, signed bytes and signature.
    slr_point: Vec<u8>,
    slr: (Vec<u8>, Vec<u8>),
    /// 1 KiB, for the four-op floor, with its signatures.
    kib: Vec<u8>,
    kib_ed25519: Vec<u8>,
    kib_ecdsa: (Vec<u8>, Vec<u8>),
}

fn bare(online: &Online, reservation: &Reservation) -> Bare {
    let rng = ring::rand::SystemRandom::new();
    let device = signature::Ed25519KeyPair::from_seed_unchecked(&[7; 32]).expect("an Ed25519 key");
    let device_public = device.public_key().as_ref().to_vec();
    let parsed = decode_request(&online.request, 1 << 20).expect("a request");
    let request_sig = device.sign(&parsed.signed_bytes).as_ref().to_vec();
    let pkcs8 =
        signature::EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .expect("a P-256 key");
    let manager = signature::EcdsaKeyPair::from_pkcs8(
        &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        pkcs8.as_ref(),
        &rng,
    )
    .expect("a P-256 key");
    let manager_public = manager.public_key().as_ref().to_vec();
    let anchor_point = online.anchors[0].key.point().to_vec();
    let code = SlrCode::parse(&reservation.code).expect("an SLR code");
    let kib = vec![0x5a; 1024];
    let b = Bare {
        kib_ed25519: device.sign(&kib).as_ref().to_vec(),
        kib_ecdsa: (
            kib.clone(),
            manager.sign(&rng, &kib).expect("signs").as_ref().to_vec(),
        ),
        kib,
        rng,
        device,
        device_public,
        request: (parsed.signed_bytes.clone(), request_sig),
        manager,
        manager_public,
        anchor_point,
        grant: enveloped(&online.grant),
        envelope: enveloped(&online.answer),
        identity: enveloped(&online.identity),
        slr_point: reservation.anchors[0].key.point().to_vec(),
        slr: (code.signed_bytes().to_vec(), code.signature().to_vec()),
    };
    // The manager's genuine signatures verify with its genuine key: the bytes are exact.
    b.verify_grant();
    b.verify_envelope();
    b.verify_identity();
    b.verify_slr();
    b
}

fn ecdsa_verify(point: &[u8], (msg, sig): &(Vec<u8>, Vec<u8>)) {
    signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, point)
        .verify(black_box(msg), sig)
        .expect("verifies");
}

impl Bare {
    fn sign_request(&self) {
        black_box(self.device.sign(black_box(&self.request.0)));
    }
    fn verify_request(&self) {
        signature::UnparsedPublicKey::new(&signature::ED25519, &self.device_public)
            .verify(black_box(&self.request.0), &self.request.1)
            .expect("verifies");
    }
    fn ecdsa_sign(&self, msg: &[u8]) {
        black_box(self.manager.sign(&self.rng, black_box(msg)).expect("signs"));
    }
    fn sign_grant(&self) {
        self.ecdsa_sign(&self.grant.0);
    }
    fn sign_envelope(&self) {
        self.ecdsa_sign(&self.envelope.0);
    }
    fn verify_envelope(&self) {
        ecdsa_verify(&self.anchor_point, &self.envelope);
    }
    fn verify_grant(&self) {
        ecdsa_verify(&self.anchor_point, &self.grant);
    }
    fn verify_identity(&self) {
        ecdsa_verify(&self.anchor_point, &self.identity);
    }
    fn verify_slr(&self) {
        ecdsa_verify(&self.slr_point, &self.slr);
    }
    /// What the restore derives to compare with the certified key: a public key from a seed.
    fn derive_device_key(&self) {
        black_box(
            signature::Ed25519KeyPair::from_seed_unchecked(black_box(&[7; 32])).expect("a key"),
        );
    }
    fn kib_ed25519_sign(&self) {
        black_box(self.device.sign(black_box(&self.kib)));
    }
    fn kib_ed25519_verify(&self) {
        signature::UnparsedPublicKey::new(&signature::ED25519, &self.device_public)
            .verify(black_box(&self.kib), &self.kib_ed25519)
            .expect("verifies");
    }
    fn kib_ecdsa_sign(&self) {
        self.ecdsa_sign(&self.kib);
    }
    fn kib_ecdsa_verify(&self) {
        ecdsa_verify(&self.manager_public, &self.kib_ecdsa);
    }

    /// The six signature operations of one authorize round trip, in protocol order.
    fn round_trip_ops(&self) {
        self.sign_request();
        self.verify_request();
        self.sign_grant();
        self.sign_envelope();
        self.verify_envelope();
        self.verify_grant();
    }
    /// The agent's share of them: it signs the request and verifies the answer and the grant.
    fn agent_ops(&self) {
        self.sign_request();
        self.verify_envelope();
        self.verify_grant();
    }
    /// The manager's share: it verifies the request and signs the grant and the answer.
    fn manager_ops(&self) {
        self.verify_request();
        self.sign_grant();
        self.sign_envelope();
    }
    /// Issue 14's four-op floor.
    fn four_ops(&self) {
        self.kib_ed25519_sign();
        self.kib_ed25519_verify();
        self.kib_ecdsa_sign();
        self.kib_ecdsa_verify();
    }
    /// The verifications of a restore of a registered agent.
    fn restore_ops(&self) {
        self.verify_identity();
        self.verify_grant();
    }
}

/// A named bare operation.
type BareOp = (&'static str, fn(&Bare));

fn bench_crypto(c: &mut Criterion, b: &Bare) {
    let ops: [BareOp; 14] = [
        ("crypto/ed25519_sign/request", Bare::sign_request),
        ("crypto/ed25519_verify/request", Bare::verify_request),
        ("crypto/ecdsa_sign/grant", Bare::sign_grant),
        ("crypto/ecdsa_sign/envelope", Bare::sign_envelope),
        ("crypto/ecdsa_verify/envelope", Bare::verify_envelope),
        ("crypto/ecdsa_verify/grant", Bare::verify_grant),
        ("crypto/ecdsa_verify/identity", Bare::verify_identity),
        ("crypto/ecdsa_verify/slr", Bare::verify_slr),
        ("crypto/ed25519_from_seed", Bare::derive_device_key),
        ("crypto/ed25519_sign/1KiB", Bare::kib_ed25519_sign),
        ("crypto/ed25519_verify/1KiB", Bare::kib_ed25519_verify),
        ("crypto/ecdsa_sign/1KiB", Bare::kib_ecdsa_sign),
        ("crypto/ecdsa_verify/1KiB", Bare::kib_ecdsa_verify),
        ("crypto/round_trip_ops", Bare::round_trip_ops),
    ];
    for (id, op) in ops {
        bench(c, id, |n| each(n, || op(b)));
    }
}

// ---------------------------------------------------------------------------------------------
// The agent
// ---------------------------------------------------------------------------------------------

/// One authorize with a usage change, in process: whether it succeeded, and the time spent in
/// `Manager::handle`.
fn round_trip(o: &mut Online, tag: &Tag, count: u32) -> (bool, Duration) {
    o.now += TimeDelta::seconds(1);
    let now = o.now;
    o.agent.set_usage(tag, count, now).expect("declared");
    o.agent.renew_auth(now).expect("registered");
    let tx = o.agent.poll_transmit(now).expect("an authorize request");
    let started = Instant::now();
    let answer = o.manager.handle(&tx.body, now);
    let manager = started.elapsed();
    o.agent.handle_response(tx.id, Ok(answer), now);
    let mut authorized = false;
    while let Some(event) = o.agent.poll_event() {
        authorized |= matches!(event.kind, EventKind::Authorized { .. });
    }
    (authorized, manager)
}

/// Times one round trip, and the manager's part of it; every report changes the usage (the
/// first tag's count goes 2, 3, 2, …).
fn timed_round_trip_split(o: &mut Online, tag: &Tag) -> (Duration, Duration) {
    let count = if o.agent.status(o.now).entitlements[0].count == 2 {
        3
    } else {
        2
    };
    let started = Instant::now();
    let (authorized, manager) = round_trip(o, tag, count);
    let spent = started.elapsed();
    assert!(authorized, "every round trip is authorized");
    (spent, manager)
}

fn timed_round_trip(o: &mut Online, tag: &Tag) -> Duration {
    timed_round_trip_split(o, tag).0
}

/// Times one SLR install into an agent restored (untimed) with its request outstanding.
fn timed_install(r: &Reservation) -> Duration {
    let mut agent = Agent::restore(&r.snapshot, config(&r.anchors), r.now).expect("restores");
    let started = Instant::now();
    let installed = agent.reservation_install(black_box(&r.code), r.now);
    let spent = started.elapsed();
    assert!(installed.is_ok(), "{installed:?}");
    spent
}

/// Times one restore (the configuration is made, and the agent dropped, untimed).
fn timed_restore(snapshot: &[u8], anchors: &[TrustAnchor], now: DateTime<Utc>) -> Duration {
    let config = config(anchors);
    let started = Instant::now();
    let agent = Agent::restore(black_box(snapshot), config, now);
    let spent = started.elapsed();
    assert!(agent.is_ok());
    spent
}

fn bench_agent(c: &mut Criterion, o: &mut Online, r: &Reservation, unregistered: &[u8]) {
    let tag = tags()[0].clone();
    bench(c, "round_trip/authorize", |n| {
        (0..n).map(|_| timed_round_trip(o, &tag)).sum()
    });
    bench(c, "slr/install", |n| (0..n).map(|_| timed_install(r)).sum());
    let snapshot = o.agent.snapshot();
    let now = o.now;
    let anchors = o.anchors.clone();
    bench(c, "restore/registered", |n| {
        (0..n)
            .map(|_| timed_restore(&snapshot, &anchors, now))
            .sum()
    });
    bench(c, "restore/unregistered", |n| {
        (0..n)
            .map(|_| timed_restore(unregistered, &anchors, now))
            .sum()
    });
    bench(c, "agent/snapshot_open", |n| {
        each(n, || {
            black_box(open_snapshot(black_box(&snapshot), &Protection::Integrity).expect("opens"));
        })
    });
    bench(c, "agent/snapshot", |n| {
        each(n, || {
            black_box(o.agent.snapshot());
        })
    });
    bench(c, "agent/status", |n| {
        each(n, || {
            black_box(o.agent.status(black_box(now)));
        })
    });
    bench(c, "agent/poll_timeout", |n| {
        each(n, || {
            black_box(o.agent.poll_timeout());
        })
    });
    let tag = tags()[1].clone();
    let mut count = 3u32;
    bench(c, "agent/set_usage", |n| {
        each(n, || {
            count = 7 - count; // 3, 4, 3, …: every call changes the count
            o.agent.set_usage(&tag, count, now).expect("declared");
            while o.agent.poll_event().is_some() {}
        })
    });
}

// ---------------------------------------------------------------------------------------------
// Paired ratios
// ---------------------------------------------------------------------------------------------

fn fmt_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Times `floor` alone.
fn timed(floor: impl FnOnce()) -> Duration {
    let started = Instant::now();
    floor();
    started.elapsed()
}

fn ns(d: Duration) -> f64 {
    d.as_secs_f64() * 1e9
}

/// `rounds` rounds (after a tenth as many for warm-up) of `sample`, which times the operation
/// and its floors back to back, in nanoseconds.
fn rounds_of<const N: usize>(rounds: usize, mut sample: impl FnMut() -> [f64; N]) -> Vec<[f64; N]> {
    for _ in 0..rounds / 10 {
        sample();
    }
    (0..rounds).map(|_| sample()).collect()
}

/// Prints the median over `rows` of column `of` ÷ column `to` (each round's own ratio), with
/// the medians of both columns; with a target, whether it is met.
fn ratio<const N: usize>(
    rows: &[[f64; N]],
    what: &str,
    of: usize,
    to: usize,
    floor: &str,
    target: Option<f64>,
) {
    let r = median(rows.iter().map(|row| row[of] / row[to]).collect());
    let verdict = match target {
        Some(max) if r <= max => format!(" (target ≤ {max}×: met)"),
        Some(max) => format!(" (target ≤ {max}×: MISSED)"),
        None => String::new(),
    };
    println!(
        "  {what}: {} vs {floor} {}: {r:.2}×{verdict}",
        fmt_ns(median(rows.iter().map(|row| row[of]).collect())),
        fmt_ns(median(rows.iter().map(|row| row[to]).collect()))
    );
}

fn print_ratios(o: &mut Online, r: &Reservation, b: &Bare, rounds: usize) {
    println!("\nratios, paired in {rounds} rounds each (median of the per-round ratios):");
    let tag = tags()[0].clone();
    let rows = rounds_of(rounds, || {
        let (total, manager) = timed_round_trip_split(o, &tag);
        [
            ns(total),
            ns(timed(|| b.round_trip_ops())),
            ns(timed(|| b.four_ops())),
            ns(total - manager),
            ns(timed(|| b.agent_ops())),
            ns(manager),
            ns(timed(|| b.manager_ops())),
        ]
    });
    ratio(
        &rows,
        "authorize round trip",
        0,
        1,
        "its 6 signature operations",
        Some(1.5),
    );
    ratio(
        &rows,
        "authorize round trip",
        0,
        2,
        "the four-op floor",
        None,
    );
    ratio(
        &rows,
        "  its agent side",
        3,
        4,
        "Ed25519 sign + 2 ECDSA verifies",
        None,
    );
    ratio(
        &rows,
        "  its manager side (Manager::handle)",
        5,
        6,
        "Ed25519 verify + 2 ECDSA signs",
        None,
    );

    let rows = rounds_of(rounds, || {
        [
            ns(timed_install(r)),
            ns(timed(|| b.verify_slr())),
            0.0,
            0.0,
            0.0,
            0.0,
        ]
    });
    ratio(&rows, "SLR install", 0, 1, "one ECDSA verify", Some(1.3));

    let snapshot = o.agent.snapshot();
    let rows = rounds_of(rounds, || {
        [
            ns(timed_restore(&snapshot, &o.anchors, o.now)),
            ns(timed(|| b.restore_ops())),
            ns(timed(|| {
                b.restore_ops();
                b.derive_device_key();
            })),
        ]
    });
    ratio(
        &rows,
        "restore (registered, 6 tags)",
        0,
        1,
        "its 2 ECDSA verifies",
        Some(1.3),
    );
    ratio(
        &rows,
        "restore (registered, 6 tags)",
        0,
        2,
        "2 ECDSA verifies + the device key's derivation",
        None,
    );
}

fn print_per_call() {
    println!("\nper call (median of criterion's samples of this run):");
    for id in [
        "agent/status",
        "agent/set_usage",
        "agent/poll_timeout",
        "agent/snapshot",
        "agent/snapshot_open",
        "restore/unregistered",
        "restore/registered",
        "slr/install",
        "round_trip/authorize",
        "crypto/round_trip_ops",
    ] {
        if let Some(ns) = median_ns(id) {
            println!("  {id}: {}", fmt_ns(ns));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Sizes
// ---------------------------------------------------------------------------------------------

/// Heap bytes `agent` takes: what dropping it boxed frees, the `Agent` value included.
fn heap_of(agent: Agent) -> usize {
    let boxed = Box::new(agent);
    let before = live_bytes();
    drop(black_box(boxed));
    before - live_bytes()
}

fn print_sizes(slr: &Reservation) {
    // A fresh fixture, so that the figures do not depend on which benchmarks ran: registered,
    // then ten authorize round trips with usage changes, events drained.
    let mut o = online();
    let tag = tags()[0].clone();
    for _ in 0..10 {
        timed_round_trip(&mut o, &tag);
    }
    println!("\nsizes (registered agent, 6 tags):");
    let snapshot = o.agent.snapshot();
    let documents = o.identity.len() + o.grant.len();
    let r = snapshot.len() as f64 / (documents + 256) as f64;
    println!(
        "  snapshot: {} bytes vs identity {} + grant {} + 256 = {} bytes: {r:.2}× \
         (target ≤ 1.2×: {})",
        snapshot.len(),
        o.identity.len(),
        o.grant.len(),
        documents + 256,
        if r <= 1.2 { "met" } else { "MISSED" }
    );
    let inline = std::mem::size_of::<Agent>();
    let restored = Agent::restore(&snapshot, config(&o.anchors), o.now).expect("restores");
    let online_heap = heap_of(o.agent);
    let restored_heap = heap_of(restored);
    for (what, heap) in [
        ("after the online exchanges", online_heap),
        ("after a restore", restored_heap),
    ] {
        println!(
            "  heap {what}: {heap} bytes = {:.2} KiB, {inline} of them the Agent value \
             (target ≤ 8 KiB: {})",
            heap as f64 / 1024.0,
            if heap <= 8 * 1024 { "met" } else { "MISSED" }
        );
    }

    let mut o = online();
    let per_trip = allocations_per_call(200, || {
        timed_round_trip(&mut o, &tag);
    });
    let snapshot = o.agent.snapshot();
    let per_restore = allocations_per_call(200, || {
        timed_restore(&snapshot, &o.anchors, o.now);
    });
    let per_status = allocations_per_call(1_000, || drop(black_box(o.agent.status(o.now))));
    let per_snapshot = allocations_per_call(1_000, || drop(black_box(o.agent.snapshot())));
    let per_restore_slr = allocations_per_call(100, || {
        timed_restore(&slr.snapshot, &slr.anchors, slr.now);
    });
    let per_install = allocations_per_call(100, || {
        timed_install(slr);
    }) - per_restore_slr;
    println!("allocation calls per operation:");
    println!("  authorize round trip (agent and manager): {per_trip:.0}");
    println!("  restore (registered): {per_restore:.0}");
    println!("  SLR install: {per_install:.0}");
    println!("  status: {per_status:.0}");
    println!("  snapshot: {per_snapshot:.0}");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes `--bench`; without it (`cargo test --benches`) everything runs
    // once, as a smoke test. A positional argument is criterion's filter: the paired ratios
    // and the sizes run only without one, or when it names them.
    let measuring = args.iter().any(|a| a == "--bench");
    let profiling = args.iter().any(|a| a == "--profile-time");
    let filter = args.iter().find(|a| !a.starts_with('-')).cloned();
    let section = |name: &str| !profiling && filter.as_deref().is_none_or(|f| f == name);

    let mut criterion = Criterion::default()
        .sample_size(SAMPLE_SIZE)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    let mut o = online();
    let slr = reservation();
    let b = bare(&o, &slr);
    let unregistered = {
        let mut agent = Agent::new(config(&o.anchors), o.now).expect("an agent");
        for (n, tag) in tags().into_iter().enumerate() {
            agent.declare(tag.clone(), o.now);
            agent
                .set_usage(&tag, 2 + n as u32, o.now)
                .expect("declared");
        }
        agent.snapshot()
    };
    bench_crypto(&mut criterion, &b);
    bench_agent(&mut criterion, &mut o, &slr, &unregistered);
    criterion.final_summary();
    print_per_call();
    if section("ratios") {
        print_ratios(&mut o, &slr, &b, if measuring { 1_000 } else { 3 });
    }
    if section("sizes") {
        print_sizes(&slr);
    }
}
