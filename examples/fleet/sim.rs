//! The simulation: the fleet, the manager, the faulty network, the checks.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::time::Instant;

use chrono::{DateTime, TimeDelta, Utc};
use smart_agent::manager::catalogue::{
    HCS_UCM_FOUNDATION, HCS_UCM_STANDARD, UCM_BASIC, UCM_CUWL, UCM_ENHANCED, UCM_ESSENTIAL,
};
use smart_agent::manager::{
    Manager, ReservedLicense, TokenOptions, VirtualAccountId, DEFAULT_SMART_ACCOUNT,
    MAX_REQUEST_LEN,
};
use smart_agent::wire::{decode_request, decode_response, RequestKind, ResponseStatus};
use smart_agent::{
    Agent, AuthorizationState, Config, DeterministicRandom, Environment, EventKind, Force,
    RegistrationState, SendError, Status, Tag, TagStatus, Udi, Uuid,
};

use crate::chart::{self, Sample};
use crate::reference;
use crate::rng::{Fnv, Rng};
use crate::Args;

const EXPORT_FEATURE: &str = "CUCM_Export_Restricted_Authorization_Key";
const PLR_TAG: &str = smart_agent::manager::catalogue::EXPY_PLR_WITHOUT_EXPORT_CONTROL;
const RMS_TAG: &str = smart_agent::manager::catalogue::EXPY_RMS;
const ONLINE_TAGS: [&str; 4] = [UCM_ESSENTIAL, UCM_BASIC, UCM_ENHANCED, UCM_CUWL];
const QUIET_DAYS: i64 = 35;

// Fault rates per transmission (outside the quiet period).
const P_LOST_REQUEST: f64 = 0.03;
const P_LOST_ANSWER: f64 = 0.03;
const P_DUPLICATE_REQUEST: f64 = 0.02;
const P_DUPLICATE_ANSWER: f64 = 0.02;
const P_LATE_ANSWER: f64 = 0.03;
const P_REPLAYED_ANSWER: f64 = 0.01;
const P_CRASH_IN_EXCHANGE: f64 = 0.004;

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_799_056_800, 0).expect("a time") // 2027-01-04 10:00 UTC
}

fn tag(s: &str) -> Tag {
    Tag::parse(s).expect("a catalogue tag")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Profile {
    /// Registers online; usage changes, deregisters and reregisters now and then.
    Online,
    /// Online in the export-restricted Smart Account; asks for export authorization keys.
    Export,
    /// Specific License Reservation.
    Slr,
    /// Permanent License Reservation.
    Plr,
    /// Never registers: evaluation, then its expiry.
    Eval,
    /// Registers with a revoked token: registration failed.
    BadToken,
}

/// What the product intends, as the simulation knows it (the convergence checks compare the
/// agent with it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Intent {
    Unregistered,
    Registered,
    Failed,
    /// Reservation mode on, no code installed.
    ReservationMode,
    Reserved,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Wake {
    Timer(u64),
    Action,
    Deliver,
    ClockFix,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Global {
    Sample,
    Check,
    Quiet,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum What {
    Global(Global),
    Agent(usize, Wake),
}

struct Late {
    id: smart_agent::agent::TransmitId,
    result: Result<Vec<u8>, SendError>,
}

struct Node {
    udi: Udi,
    agent: Agent,
    /// The last snapshot the product persisted.
    persisted: Vec<u8>,
    profile: Profile,
    va: usize,
    tags: Vec<&'static str>,
    intent: Intent,
    offset: TimeDelta,
    late: Option<Late>,
    timer_gen: u64,
    timer_at: Option<DateTime<Utc>>,
    reregister_at: Option<DateTime<Utc>>,
    /// The piid when the product deregistered, until the outcome is known.
    deregistering: Option<Uuid>,
    eval_seen: TimeDelta,
    /// The effective time of the last genuine OK authorization answer handed to the agent.
    last_auth_ok: Option<DateTime<Utc>>,
    /// Answers this agent received, for replays (at most 2).
    old_answers: Vec<Vec<u8>>,
    /// SLR: the reserved counts per tag.
    reserved: BTreeMap<&'static str, u32>,
}

struct Va {
    id: VirtualAccountId,
    token: String,
    /// What the simulation bought, per tag.
    purchased: BTreeMap<String, u64>,
    export_keys: u32,
}

/// The manager's records as the simulation saw them answered.
#[derive(Default)]
struct Ledger {
    /// piid → (agent, va, usage acknowledged, last sequence).
    instances: BTreeMap<Uuid, Held>,
    /// Reservations: agent → held per tag.
    reserved: BTreeMap<usize, BTreeMap<String, u64>>,
    /// piids whose deregistration the agent reported as failed (SPEC §3 ghosts).
    reported_ghosts: BTreeSet<Uuid>,
}

#[derive(Clone, Debug)]
struct Held {
    agent: usize,
    va: usize,
    usage: BTreeMap<String, u32>,
    sequence: Option<u64>,
    export_keys: BTreeSet<String>,
}

#[derive(Default)]
struct Stats {
    sent: BTreeMap<&'static str, u64>,
    delivered: u64,
    answered_ok: u64,
    answered_failed: u64,
    lost_requests: u64,
    outage_refusals: u64,
    lost_answers: u64,
    duplicated_requests: u64,
    duplicated_answers: u64,
    late_answers: u64,
    replayed_answers: u64,
    crashes: u64,
    clock_jumps_forward: u64,
    clock_jumps_back: u64,
    usage_changes: u64,
    deregistrations: u64,
    reregistrations: u64,
    force_reregistrations: u64,
    reservations_installed: u64,
    reservations_updated: u64,
    reservations_returned: u64,
    reservations_cancelled: u64,
    reservation_refusals: u64,
    export_requests: u64,
    export_returns: u64,
    restores: u64,
    events: BTreeMap<&'static str, u64>,
    /// Crypto operations, counted per message as the protocol performs them (see report).
    ed25519_sign: u64,
    ed25519_verify: u64,
    ecdsa_sign: u64,
    ecdsa_verify: u64,
    checks: BTreeMap<&'static str, u64>,
    max_snapshot: usize,
    wakes: u64,
}

struct Violation {
    agent: Option<usize>,
    at: DateTime<Utc>,
    what: String,
}

struct Sim {
    args: Args,
    now: DateTime<Utc>,
    quiet_from: DateTime<Utc>,
    end: DateTime<Utc>,
    quiet: bool,
    manager: Manager,
    vas: Vec<Va>,
    token_va: BTreeMap<String, usize>,
    revoked_token: String,
    reserve_va: usize,
    nodes: Vec<Node>,
    rng: Rng,
    queue: BinaryHeap<Reverse<(DateTime<Utc>, u64, What)>>,
    seq: u64,
    outages: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    ledger: Ledger,
    stats: Stats,
    violations: Vec<Violation>,
    samples: Vec<Sample>,
    broken: bool,
}

fn kind_name(k: RequestKind) -> &'static str {
    k.as_str()
}

fn config(udi: &Udi, manager: &Manager, seed: u64) -> Config {
    Config::new(
        udi.clone(),
        Environment::Production,
        manager.trust_anchors(),
    )
    .with_random(Box::new(DeterministicRandom::new(seed)))
}

fn vm_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

pub fn run(args: &Args) -> Result<(), String> {
    let wall = Instant::now();
    let rss_before = vm_kib("VmRSS:").unwrap_or(0);
    let mut sim = Sim::new(args.clone())?;
    let rss_fleet = vm_kib("VmRSS:").unwrap_or(0);
    let setup = wall.elapsed();
    let total_days = (sim.end - t0()).num_days();
    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(total_days as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:40}] day {pos}/{len} {msg}",
            )
            .expect("a template")
            .progress_chars("=> "),
        );
        Some(bar)
    } else {
        None
    };
    let run_start = Instant::now();
    while let Some(Reverse((at, _, what))) = sim.queue.pop() {
        if at > sim.end {
            break;
        }
        sim.now = sim.now.max(at);
        match what {
            What::Global(Global::Sample) => {
                sim.sample();
                if let Some(bar) = &bar {
                    bar.set_position((sim.now - t0()).num_days() as u64);
                    bar.set_message(format!(
                        "{} msgs, {} violations",
                        sim.stats.delivered,
                        sim.violations.len()
                    ));
                }
            }
            What::Global(Global::Check) => sim.check_manager(false),
            What::Global(Global::Quiet) => sim.start_quiet(),
            What::Agent(i, wake) => sim.wake(i, wake),
        }
    }
    sim.now = sim.end;
    for i in 0..sim.nodes.len() {
        let t = sim.agent_now(i);
        sim.nodes[i].agent.handle_timeout(t);
        sim.pump(i);
    }
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let run_time = run_start.elapsed();
    sim.sample();
    sim.check_manager(true);
    sim.converge();
    let digest = sim.digest();
    let peak = vm_kib("VmHWM:").unwrap_or(0);
    if let Some(dir) = &args.out {
        chart::write(dir, &sim.samples, args.agents)?;
    }
    let report = sim.report(
        digest,
        wall.elapsed(),
        setup,
        run_time,
        rss_before,
        rss_fleet,
        peak,
    );
    println!("{report}");
    if sim.violations.is_empty() {
        return Ok(());
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "FAILED: {} invariant violation(s)",
        sim.violations.len()
    );
    for v in sim.violations.iter().take(20) {
        let who = v
            .agent
            .map_or("fleet".to_string(), |a| format!("agent {a}"));
        let _ = writeln!(
            out,
            "  {} {}: {}",
            v.at.format("%Y-%m-%d %H:%M"),
            who,
            v.what
        );
    }
    let first = &sim.violations[0];
    let _ = write!(
        out,
        "replay: cargo run --release --features manager --example fleet -- --agents {} --years {} --seed {}{}  # first violation: {}",
        args.agents,
        args.years,
        args.seed,
        args.break_invariant
            .as_ref()
            .map_or(String::new(), |b| format!(" --break-invariant {b}")),
        first.agent.map_or("fleet-wide".to_string(), |a| format!("agent {a}")),
    );
    Err(out)
}

impl Sim {
    fn new(args: Args) -> Result<Sim, String> {
        let mut rng = Rng::new(args.seed);
        let mut manager = Manager::new(
            Environment::Production,
            Box::new(DeterministicRandom::new(rng.fork())),
        )
        .map_err(|e| e.to_string())?;
        let now = t0();
        let end = now + TimeDelta::days(365 * i64::from(args.years));
        let quiet_from = end - TimeDelta::days(QUIET_DAYS);
        let n = args.agents;

        // Profiles first, so pools can be sized to the fleet.
        let profiles: Vec<Profile> = (0..n)
            .map(|_| match rng.below(100) {
                0..=79 => Profile::Online,
                80..=85 => Profile::Export,
                86..=89 => Profile::Slr,
                90..=92 => Profile::Plr,
                93..=96 => Profile::Eval,
                _ => Profile::BadToken,
            })
            .collect();

        let mk = |e: smart_agent::manager::ManagerError| e.to_string();
        manager
            .set_reservation_allowed(DEFAULT_SMART_ACCOUNT, true)
            .map_err(mk)?;
        let restricted = "Restricted Smart Account";
        manager.add_smart_account(restricted).map_err(mk)?;
        manager
            .set_export_restricted(restricted, true)
            .map_err(mk)?;
        let va_ids = [
            manager.default_virtual_account(),
            manager
                .add_virtual_account(DEFAULT_SMART_ACCOUNT, "Short")
                .map_err(mk)?,
            manager
                .add_virtual_account(DEFAULT_SMART_ACCOUNT, "HCS")
                .map_err(mk)?,
            manager
                .add_virtual_account(DEFAULT_SMART_ACCOUNT, "Reserve")
                .map_err(mk)?,
            manager
                .add_virtual_account(restricted, "Export")
                .map_err(mk)?,
        ];
        let mut assigned = vec![0u64; va_ids.len()];
        let vas_of: Vec<usize> = profiles
            .iter()
            .map(|p| match p {
                // Most Virtual Accounts have enough; one in 16 online agents is in the short
                // one, whose out-of-compliance agents re-request every 12 hours (SPEC §4) and
                // would otherwise be most of the fleet's traffic.
                Profile::Online | Profile::Eval | Profile::BadToken => match rng.below(16) {
                    0..=9 => 0,
                    10 => 1,
                    _ => 2,
                },
                Profile::Slr | Profile::Plr => 3,
                Profile::Export => 4,
            })
            .collect();
        for (p, va) in profiles.iter().zip(&vas_of) {
            if !matches!(p, Profile::Eval | Profile::BadToken) {
                assigned[*va] += 1;
            }
        }
        // A tag is in use at an agent with probability about 1/2, 1..=10 (mean 5.5) at a time,
        // so a Virtual Account's demand per tag is about 2.75 per agent.
        let per = |va: usize, f: f64| ((assigned[va] as f64 * f).ceil() as u64).max(1);
        let mut plans: Vec<Vec<(&str, u64)>> = vec![
            ONLINE_TAGS.iter().map(|t| (*t, per(0, 4.5))).collect(),
            vec![
                (UCM_ESSENTIAL, per(1, 3.0)),
                (UCM_BASIC, per(1, 3.0)),
                (UCM_ENHANCED, per(1, 2.0)),
                (UCM_CUWL, per(1, 1.5)),
            ],
            vec![
                (UCM_ENHANCED, per(2, 1.0)),
                (HCS_UCM_FOUNDATION, per(2, 6.0)),
                (HCS_UCM_STANDARD, per(2, 2.0)),
            ],
            ONLINE_TAGS.iter().map(|t| (*t, per(3, 30.0))).collect(),
            ONLINE_TAGS.iter().map(|t| (*t, per(4, 4.5))).collect(),
        ];
        plans[3].push((PLR_TAG, per(3, 1.0) + 5));
        let mut vas = Vec::new();
        let mut token_va = BTreeMap::new();
        let forever = TokenOptions {
            expires_after: TimeDelta::days(365 * 10),
            ..TokenOptions::default()
        };
        for (i, id) in va_ids.iter().enumerate() {
            let mut purchased = BTreeMap::new();
            for (t, count) in &plans[i] {
                let c = u32::try_from(*count).map_err(|_| "pool too large")?;
                manager
                    .add_licenses(id, &tag(t), c, None, None)
                    .map_err(mk)?;
                purchased.insert(t.to_string(), *count);
            }
            let token = manager
                .create_token(id, forever, now)
                .map_err(mk)?
                .expose()
                .to_string();
            token_va.insert(token.clone(), i);
            let export_keys = if i == 4 {
                let keys = ((assigned[4] as f64) * 0.7).ceil() as u32;
                manager
                    .add_export_keys(id, EXPORT_FEATURE, keys)
                    .map_err(mk)?;
                keys
            } else {
                0
            };
            vas.push(Va {
                id: id.clone(),
                token,
                purchased,
                export_keys,
            });
        }
        let revoked = manager.create_token(&va_ids[0], forever, now).map_err(mk)?;
        manager.revoke_token(&revoked).map_err(mk)?;
        let revoked_token = revoked.expose().to_string();

        let mut nodes = Vec::with_capacity(n);
        for (i, profile) in profiles.into_iter().enumerate() {
            let pid = match profile {
                Profile::Plr => "EXPWY-VM-K9",
                _ => "UCM",
            };
            let udi: Udi = format!("PID:{pid},SN:FLT{i:06},UUID:{:032x}", rng.next_u64())
                .parse()
                .map_err(|e| format!("udi: {e:?}"))?;
            let agent =
                Agent::new(config(&udi, &manager, rng.fork()), now).map_err(|e| e.to_string())?;
            let tags = match profile {
                Profile::Plr => vec![RMS_TAG],
                _ => {
                    let mut tags: Vec<&'static str> = ONLINE_TAGS
                        .iter()
                        .copied()
                        .filter(|_| rng.chance(0.5))
                        .collect();
                    if tags.is_empty() {
                        tags.push(ONLINE_TAGS[rng.below(4) as usize]);
                    }
                    tags
                }
            };
            let persisted = agent.snapshot();
            nodes.push(Node {
                udi,
                agent,
                persisted,
                profile,
                va: vas_of[i],
                tags,
                intent: Intent::Unregistered,
                offset: TimeDelta::zero(),
                late: None,
                timer_gen: 0,
                timer_at: None,
                reregister_at: None,
                deregistering: None,
                eval_seen: TimeDelta::days(90),
                last_auth_ok: None,
                old_answers: Vec::new(),
                reserved: BTreeMap::new(),
            });
        }
        // Manager outage windows: about one every 45 days, 30 minutes to 3 days long.
        let mut outages = Vec::new();
        let mut t = now + TimeDelta::days(rng.range(5, 45));
        while t < quiet_from {
            let len = TimeDelta::minutes(rng.range(30, 3 * 24 * 60));
            outages.push((t, (t + len).min(quiet_from)));
            t += len + TimeDelta::days(rng.range(15, 75));
        }
        let mut sim = Sim {
            args,
            now,
            quiet_from,
            end,
            quiet: false,
            manager,
            vas,
            token_va,
            revoked_token,
            reserve_va: 3,
            nodes,
            rng,
            queue: BinaryHeap::new(),
            seq: 0,
            outages,
            ledger: Ledger::default(),
            stats: Stats::default(),
            violations: Vec::new(),
            samples: Vec::new(),
            broken: false,
        };
        for i in 0..n {
            // Start-up: declare the tags; the first action (registration, reservation) follows
            // within 20 days, so some evaluation time is used first.
            let at = now + TimeDelta::minutes(sim.rng.range(0, 20 * 24 * 60));
            let tags = sim.nodes[i].tags.clone();
            for t in tags {
                let count = sim.rng.range(1, 10) as u32;
                sim.nodes[i].agent.declare(tag(t), now);
                sim.set_usage(i, t, count);
            }
            sim.persist(i);
            sim.push(at, What::Agent(i, Wake::Action));
        }
        let mut day = now;
        while day <= end {
            sim.push(day, What::Global(Global::Sample));
            day += TimeDelta::days(1);
        }
        let mut check = now + TimeDelta::days(14);
        while check < end {
            sim.push(check, What::Global(Global::Check));
            check += TimeDelta::days(14);
        }
        sim.push(quiet_from, What::Global(Global::Quiet));
        Ok(sim)
    }

    fn push(&mut self, at: DateTime<Utc>, what: What) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, what)));
    }

    fn violation(&mut self, agent: Option<usize>, what: String) {
        self.violations.push(Violation {
            agent,
            at: self.now,
            what,
        });
    }

    fn check(&mut self, name: &'static str) {
        *self.stats.checks.entry(name).or_insert(0) += 1;
    }

    fn agent_now(&self, i: usize) -> DateTime<Utc> {
        self.now + self.nodes[i].offset
    }

    fn in_outage(&self) -> bool {
        self.outages
            .iter()
            .any(|(a, b)| *a <= self.now && self.now < *b)
    }

    fn persist(&mut self, i: usize) {
        let snap = self.nodes[i].agent.snapshot();
        self.stats.max_snapshot = self.stats.max_snapshot.max(snap.len());
        self.nodes[i].persisted = snap;
    }

    /// The product process dies; it starts again from the last persisted snapshot.
    fn crash(&mut self, i: usize) {
        self.trace(i, || "crash".into());
        self.stats.crashes += 1;
        self.restore(i);
    }

    fn restore(&mut self, i: usize) {
        let seed = self.rng.fork();
        let t = self.agent_now(i);
        let cfg = config(&self.nodes[i].udi, &self.manager, seed);
        match Agent::restore(&self.nodes[i].persisted, cfg, t) {
            Ok(agent) => {
                self.stats.restores += 1;
                // Crude count of the verifications a restore performs (identity, grant,
                // reservation codes, export keys): every stored ECDSA-signed document.
                let parts = agent.snapshot_parts();
                self.stats.ecdsa_verify += count(&parts.licensing, b"<signature>") as u64;
                self.nodes[i].agent = agent;
                self.nodes[i].late = None;
                self.drain(i);
                self.observe_evaluation(i);
            }
            Err(e) => self.violation(
                Some(i),
                format!("restore of the persisted snapshot failed: {e}"),
            ),
        }
    }

    fn set_usage(&mut self, i: usize, t: &str, count: u32) {
        let now = self.agent_now(i);
        if let Err(e) = self.nodes[i].agent.set_usage(&tag(t), count, now) {
            self.violation(Some(i), format!("set_usage of a declared tag refused: {e}"));
        }
    }

    // ---- the agent's wake-ups ----

    fn trace(&self, i: usize, what: impl FnOnce() -> String) {
        if self.args.trace == Some(i) {
            let node = &self.nodes[i];
            let st = node.agent.status(self.agent_now(i));
            eprintln!(
                "trace {} (+{}m) agent {i}: {} | {:?} {:?} eval {}s highest {:?}",
                self.now.format("%Y-%m-%d %H:%M:%S"),
                node.offset.num_minutes(),
                what(),
                st.registration.state,
                st.authorization.state,
                st.evaluation.remaining.num_seconds(),
                node.agent.highest_seen()
            );
        }
    }

    fn wake(&mut self, i: usize, wake: Wake) {
        self.stats.wakes += 1;
        self.trace(i, || format!("wake {wake:?}"));
        match wake {
            Wake::Timer(generation) => {
                if generation != self.nodes[i].timer_gen || self.nodes[i].late.is_some() {
                    return;
                }
                self.nodes[i].timer_at = None;
                let t = self.agent_now(i);
                self.nodes[i].agent.handle_timeout(t);
                self.persist(i);
                self.drain(i);
            }
            Wake::Deliver => {
                let Some(late) = self.nodes[i].late.take() else {
                    return; // the process crashed meanwhile: the answer has nowhere to go
                };
                self.hand_answer(i, late.id, late.result, true);
            }
            Wake::Action => {
                if self.quiet {
                    return;
                }
                self.action(i);
                let gap = TimeDelta::minutes(self.rng.range(24 * 60, 30 * 24 * 60));
                let at = self.now + gap;
                if at < self.quiet_from {
                    self.push(at, What::Agent(i, Wake::Action));
                }
            }
            Wake::ClockFix => {
                if self.nodes[i].offset != TimeDelta::zero() {
                    self.jump(i, TimeDelta::zero());
                }
            }
        }
        self.pump(i);
        self.schedule(i);
    }

    fn schedule(&mut self, i: usize) {
        if self.nodes[i].late.is_some() {
            return;
        }
        let Some((at, _)) = self.nodes[i].agent.poll_timeout() else {
            self.nodes[i].timer_at = None;
            return;
        };
        // The deadline is in the agent's (effective) time; its clock runs `offset` ahead.
        let mut real = at - self.nodes[i].offset;
        if real <= self.now {
            real = self.now + TimeDelta::minutes(1);
        }
        if self.nodes[i].timer_at == Some(real) {
            return;
        }
        self.nodes[i].timer_gen += 1;
        self.nodes[i].timer_at = Some(real);
        let generation = self.nodes[i].timer_gen;
        self.push(real, What::Agent(i, Wake::Timer(generation)));
    }

    fn jump(&mut self, i: usize, offset: TimeDelta) {
        if offset > self.nodes[i].offset {
            self.stats.clock_jumps_forward += 1;
        } else {
            self.stats.clock_jumps_back += 1;
        }
        self.nodes[i].offset = offset;
        self.trace(i, || {
            format!("clock jump to offset {}m", offset.num_minutes())
        });
        let t = self.agent_now(i);
        self.nodes[i].agent.handle_timeout(t);
        self.persist(i);
        self.drain(i);
        self.observe_evaluation(i);
    }

    fn register(&mut self, i: usize, force: Force) {
        let token = match self.nodes[i].profile {
            Profile::BadToken => self.revoked_token.clone(),
            _ => self.vas[self.nodes[i].va].token.clone(),
        };
        let t = self.agent_now(i);
        match self.nodes[i].agent.register(&token, force, t) {
            Ok(()) => {
                self.nodes[i].intent = if self.nodes[i].profile == Profile::BadToken {
                    Intent::Failed
                } else {
                    Intent::Registered
                };
            }
            // A registration still pending (its answer late or lost) refuses another: fine.
            Err(smart_agent::Error::RegistrationInProgress) => {}
            Err(e) => self.violation(Some(i), format!("register refused: {e}")),
        }
        self.persist(i);
    }

    fn action(&mut self, i: usize) {
        let node = &self.nodes[i];
        let roll = self.rng.below(100);
        self.trace(i, || format!("action roll {roll} intent {:?}", node.intent));
        // Clock trouble and idle crashes hit every kind of product.
        if roll < 4 {
            let offset = if self.rng.chance(0.5) {
                TimeDelta::minutes(self.rng.range(60, 5 * 24 * 60))
            } else {
                -TimeDelta::minutes(self.rng.range(120, 3 * 24 * 60))
            };
            self.jump(i, offset);
            let fix = self.now + TimeDelta::minutes(self.rng.range(60, 10 * 24 * 60));
            self.push(fix, What::Agent(i, Wake::ClockFix));
            return;
        }
        if roll < 7 {
            self.crash(i);
            return;
        }
        match node.profile {
            Profile::Eval => self.change_usage(i),
            Profile::BadToken => {
                if node.intent == Intent::Unregistered {
                    self.register(i, Force::No);
                } else {
                    self.change_usage(i);
                }
            }
            Profile::Online | Profile::Export => self.online_action(i, roll),
            Profile::Slr => self.slr_action(i, roll),
            Profile::Plr => self.plr_action(i, roll),
        }
    }

    fn change_usage(&mut self, i: usize) {
        let tags = self.nodes[i].tags.clone();
        let t = tags[self.rng.below(tags.len() as u64) as usize];
        let count = match self.nodes[i].reserved.get(t) {
            Some(max) => self.rng.range(0, i64::from(*max)) as u32,
            None if self.nodes[i].profile == Profile::Slr => 0,
            None => self.rng.range(0, 12) as u32,
        };
        self.set_usage(i, t, count);
        self.stats.usage_changes += 1;
        self.persist(i);
    }

    fn online_action(&mut self, i: usize, roll: u64) {
        let registered = self.nodes[i].intent == Intent::Registered;
        if !registered {
            let due = self.nodes[i].reregister_at.is_none_or(|at| at <= self.now);
            if due {
                if self.nodes[i].reregister_at.take().is_some() {
                    self.stats.reregistrations += 1;
                }
                self.register(i, Force::No);
            } else {
                self.change_usage(i);
            }
            return;
        }
        let t = self.agent_now(i);
        match roll {
            7..=11 => {
                // Deregister; most come back after a while, some stay away.
                let piid = self.nodes[i].agent.product_instance_id();
                match self.nodes[i].agent.deregister(t) {
                    Ok(()) => {
                        self.stats.deregistrations += 1;
                        self.nodes[i].intent = Intent::Unregistered;
                        self.nodes[i].deregistering = piid;
                        self.nodes[i].reregister_at = if self.rng.chance(0.7) {
                            Some(self.now + TimeDelta::days(self.rng.range(1, 60)))
                        } else {
                            Some(self.end)
                        };
                    }
                    // Registered in intent, but the registration is still pending.
                    Err(smart_agent::Error::NotRegisteredForDeregister) => {}
                    Err(e) => self.violation(Some(i), format!("deregister refused: {e}")),
                }
                self.persist(i);
            }
            12..=13 => {
                self.stats.force_reregistrations += 1;
                self.register(i, Force::Yes);
            }
            14..=23 if self.nodes[i].profile == Profile::Export => {
                let held = self.nodes[i]
                    .agent
                    .export_keys()
                    .iter()
                    .any(|f| f == EXPORT_FEATURE);
                let r = if held {
                    self.stats.export_returns += 1;
                    self.nodes[i].agent.export_return(EXPORT_FEATURE, t)
                } else {
                    self.stats.export_requests += 1;
                    self.nodes[i].agent.export_request(EXPORT_FEATURE, t)
                };
                match r {
                    Ok(()) | Err(smart_agent::Error::ExportKeysNotAvailable) => {}
                    Err(e) => self.violation(Some(i), format!("export key call refused: {e}")),
                }
                self.persist(i);
            }
            _ => self.change_usage(i),
        }
    }

    fn reservation_request(&mut self, i: usize) -> Option<String> {
        let t = self.agent_now(i);
        if !matches!(self.nodes[i].intent, Intent::ReservationMode) {
            if let Err(e) = self.nodes[i].agent.reservation_enable(t) {
                self.violation(Some(i), format!("reservation_enable refused: {e}"));
                return None;
            }
            self.nodes[i].intent = Intent::ReservationMode;
        }
        match self.nodes[i].agent.reservation_request(t) {
            Ok(code) => Some(code.to_string()),
            Err(e) => {
                self.violation(Some(i), format!("reservation_request refused: {e}"));
                None
            }
        }
    }

    fn install(&mut self, i: usize, code: &str, piid: Uuid, slr: bool) -> bool {
        let t = self.agent_now(i);
        match self.nodes[i].agent.reservation_install(code, t) {
            Ok(installed) => {
                self.stats.ecdsa_verify += 1;
                if slr {
                    let Some(confirmation) = installed.confirmation else {
                        self.violation(
                            Some(i),
                            "an SLR install printed no confirmation code".into(),
                        );
                        return false;
                    };
                    if let Err(e) = self
                        .manager
                        .confirm_reservation(&piid.to_string(), &confirmation.to_string())
                    {
                        self.violation(
                            Some(i),
                            format!("the manager refused the confirmation: {e}"),
                        );
                    }
                }
                self.nodes[i].intent = Intent::Reserved;
                self.stats.reservations_installed += 1;
                true
            }
            Err(e) => {
                self.violation(
                    Some(i),
                    format!("a genuine authorization code was refused: {e}"),
                );
                false
            }
        }
    }

    /// Returns the installed reservation (or a cancelled request's code) to the manager.
    fn give_back(&mut self, i: usize, code: &str) {
        match self.manager.return_reservation(code, self.now) {
            Ok(returned) => {
                let held = self.ledger.reserved.remove(&i).unwrap_or_default();
                let freed: BTreeMap<String, u64> = returned
                    .freed
                    .iter()
                    .map(|(t, n)| (t.to_string(), u64::from(*n)))
                    .collect();
                if freed != held {
                    self.violation(
                        Some(i),
                        format!("a return freed {freed:?}, the reservation held {held:?}"),
                    );
                }
                self.stats.reservations_returned += 1;
            }
            Err(e) => self.violation(
                Some(i),
                format!("the manager refused a genuine return code: {e}"),
            ),
        }
        self.nodes[i].reserved.clear();
        self.nodes[i].intent = Intent::ReservationMode;
    }

    fn slr_action(&mut self, i: usize, roll: u64) {
        let t = self.agent_now(i);
        match self.nodes[i].intent {
            Intent::Unregistered | Intent::ReservationMode => {
                let Some(request) = self.reservation_request(i) else {
                    return;
                };
                // Reserve the usage declared now plus a margin.
                let licenses: Vec<ReservedLicense> = self.nodes[i]
                    .tags
                    .clone()
                    .into_iter()
                    .map(|t| ReservedLicense::perpetual(tag(t), self.rng.range(4, 14) as u32))
                    .collect();
                let va = self.vas[self.reserve_va].id.clone();
                let issued = match self
                    .manager
                    .authorize_reservation(&va, &request, &licenses, None, false, self.now)
                {
                    Ok(issued) => issued,
                    Err(_) => {
                        self.stats.reservation_refusals += 1;
                        self.persist(i);
                        return;
                    }
                };
                self.stats.ecdsa_sign += 1;
                self.ledger.reserved.insert(
                    i,
                    licenses
                        .iter()
                        .map(|l| (l.tag.to_string(), u64::from(l.count)))
                        .collect(),
                );
                if roll < 20 {
                    // The person cancels before installing, then returns the issued code.
                    self.stats.reservations_cancelled += 1;
                    if let Err(e) = self.nodes[i].agent.reservation_cancel(t) {
                        self.violation(Some(i), format!("reservation_cancel refused: {e}"));
                        return;
                    }
                    match self.nodes[i]
                        .agent
                        .reservation_return_authorization(&issued.code, t)
                    {
                        Ok(code) => self.give_back(i, &code.to_string()),
                        Err(e) => self.violation(
                            Some(i),
                            format!("return-authorization of an issued code refused: {e}"),
                        ),
                    }
                } else if self.install(i, &issued.code, issued.piid, true) {
                    self.nodes[i].reserved = licenses
                        .iter()
                        .map(|l| {
                            let name = ONLINE_TAGS
                                .iter()
                                .copied()
                                .find(|t| *t == l.tag.as_str())
                                .unwrap_or(UCM_BASIC);
                            (name, l.count)
                        })
                        .collect();
                    // Keep the usage within what is reserved.
                    for (t, max) in self.nodes[i].reserved.clone() {
                        let count = self.rng.range(0, i64::from(max)) as u32;
                        self.set_usage(i, t, count);
                    }
                }
                self.persist(i);
            }
            Intent::Reserved => {
                if roll < 15 {
                    match self.nodes[i].agent.reservation_return(t) {
                        Ok(code) => self.give_back(i, &code.to_string()),
                        Err(e) => {
                            self.violation(Some(i), format!("reservation_return refused: {e}"))
                        }
                    }
                    // The product stops using what it returned.
                    for t in self.nodes[i].tags.clone() {
                        self.set_usage(i, t, 0);
                    }
                    self.persist(i);
                } else if roll < 30 {
                    // An update: new counts, installed, confirmed.
                    let licenses: Vec<ReservedLicense> = self.nodes[i]
                        .tags
                        .clone()
                        .into_iter()
                        .map(|t| ReservedLicense::perpetual(tag(t), self.rng.range(4, 14) as u32))
                        .collect();
                    let udi = self.nodes[i].udi.long_form();
                    match self
                        .manager
                        .update_reservation(&udi, &licenses, None, self.now)
                    {
                        Ok(issued) => {
                            self.stats.ecdsa_sign += 1;
                            self.stats.reservations_updated += 1;
                            // Held: the larger of old and new until the confirmation arrives.
                            if self.install(i, &issued.code, issued.piid, true) {
                                let counts: BTreeMap<String, u64> = licenses
                                    .iter()
                                    .map(|l| (l.tag.to_string(), u64::from(l.count)))
                                    .collect();
                                self.ledger.reserved.insert(i, counts);
                                for l in &licenses {
                                    if let Some(name) =
                                        ONLINE_TAGS.iter().copied().find(|t| *t == l.tag.as_str())
                                    {
                                        self.nodes[i].reserved.insert(name, l.count);
                                        let now_used = self.rng.range(0, i64::from(l.count)) as u32;
                                        self.set_usage(i, name, now_used);
                                    }
                                }
                            }
                        }
                        Err(_) => self.stats.reservation_refusals += 1,
                    }
                    self.persist(i);
                } else {
                    self.change_usage(i);
                }
            }
            _ => self.change_usage(i),
        }
    }

    fn plr_action(&mut self, i: usize, roll: u64) {
        let t = self.agent_now(i);
        match self.nodes[i].intent {
            Intent::Unregistered | Intent::ReservationMode => {
                let Some(request) = self.reservation_request(i) else {
                    return;
                };
                let va = self.vas[self.reserve_va].id.clone();
                let plr = tag(PLR_TAG);
                match self.manager.authorize_reservation(
                    &va,
                    &request,
                    &[],
                    Some(&plr),
                    false,
                    self.now,
                ) {
                    Ok(issued) => {
                        self.stats.ecdsa_sign += 1;
                        self.ledger
                            .reserved
                            .insert(i, BTreeMap::from([(PLR_TAG.to_string(), 1)]));
                        self.install(i, &issued.code, issued.piid, false);
                    }
                    Err(_) => self.stats.reservation_refusals += 1,
                }
                self.persist(i);
            }
            Intent::Reserved if roll < 12 => {
                match self.nodes[i].agent.reservation_return(t) {
                    Ok(code) => self.give_back(i, &code.to_string()),
                    Err(e) => self.violation(Some(i), format!("reservation_return refused: {e}")),
                }
                self.persist(i);
            }
            _ => self.change_usage(i),
        }
    }

    // ---- the network ----

    /// Sends everything the agent has due, through the faulty network.
    fn pump(&mut self, i: usize) {
        for _ in 0..64 {
            if self.nodes[i].late.is_some() {
                return;
            }
            let t = self.agent_now(i);
            let Some(tx) = self.nodes[i].agent.poll_transmit(t) else {
                return;
            };
            self.persist(i);
            self.stats.ed25519_sign += 1;
            self.trace(i, || format!("transmit {:?}", tx.kind));
            *self.stats.sent.entry(kind_name(tx.kind)).or_insert(0) += 1;
            let faults = !self.quiet;
            if faults && self.rng.chance(P_CRASH_IN_EXCHANGE) {
                // Dies before sending or while waiting: the request may or may not have arrived.
                if self.rng.chance(0.5) {
                    self.deliver(i, &tx.body);
                }
                self.crash(i);
                continue;
            }
            let result = if faults && self.in_outage() {
                self.stats.outage_refusals += 1;
                Err(SendError::Send {
                    detail: "HTTP 503 from the manager".into(),
                })
            } else if faults && self.rng.chance(P_LOST_REQUEST) {
                self.stats.lost_requests += 1;
                Err(SendError::Timeout)
            } else {
                let answer = self.deliver(i, &tx.body);
                if faults && self.rng.chance(P_DUPLICATE_REQUEST) {
                    self.stats.duplicated_requests += 1;
                    let _second = self.deliver(i, &tx.body);
                }
                if faults && self.rng.chance(P_LOST_ANSWER) {
                    self.stats.lost_answers += 1;
                    Err(SendError::Timeout)
                } else {
                    Ok(answer)
                }
            };
            if faults && self.rng.chance(P_LATE_ANSWER) {
                self.stats.late_answers += 1;
                let delay = TimeDelta::minutes(self.rng.range(1, 6 * 60));
                self.nodes[i].late = Some(Late { id: tx.id, result });
                self.push(self.now + delay, What::Agent(i, Wake::Deliver));
                return;
            }
            if faults && self.rng.chance(P_REPLAYED_ANSWER) && !self.nodes[i].old_answers.is_empty()
            {
                // An old answer arrives instead of this one (a captured answer replayed).
                self.stats.replayed_answers += 1;
                let k = self.rng.below(self.nodes[i].old_answers.len() as u64) as usize;
                let old = self.nodes[i].old_answers[k].clone();
                self.handle_checked(i, tx.id, Ok(old), "a replayed old answer");
                self.after_answer(i);
                continue;
            }
            self.hand_answer(i, tx.id, result, false);
        }
        self.violation(
            Some(i),
            "the agent kept transmitting (64 requests at one instant)".into(),
        );
    }

    /// The manager handles one request; the ledger records what it acknowledged.
    fn deliver(&mut self, i: usize, body: &[u8]) -> Vec<u8> {
        self.stats.delivered += 1;
        let answer = self.manager.handle(body, self.now);
        self.stats.ed25519_verify += 1;
        self.stats.ecdsa_sign += 1;
        let (Ok(req), Ok(resp)) = (
            decode_request(body, MAX_REQUEST_LEN),
            decode_response(&answer, MAX_REQUEST_LEN),
        ) else {
            self.violation(
                Some(i),
                "the manager's answer or the request does not decode".into(),
            );
            return answer;
        };
        let request = req.request;
        let response = resp.response;
        if response.status != ResponseStatus::Ok {
            self.stats.answered_failed += 1;
            return answer;
        }
        self.stats.answered_ok += 1;
        match request.kind {
            RequestKind::Register => {
                self.stats.ecdsa_sign += 1; // the identity certificate (or its resend)
                let Some(piid) = response.piid else {
                    self.violation(Some(i), "a register answer without a piid".into());
                    return answer;
                };
                let va = request
                    .body
                    .as_register()
                    .and_then(|b| self.token_va.get(&b.token).copied())
                    .unwrap_or(usize::MAX);
                // A registration with the same UDI replaces the instance (same piid: resent).
                let replaced: Vec<Uuid> = self
                    .ledger
                    .instances
                    .iter()
                    .filter(|(p, h)| h.agent == i && **p != piid)
                    .map(|(p, _)| *p)
                    .collect();
                for p in replaced {
                    self.ledger.instances.remove(&p);
                }
                self.ledger.instances.entry(piid).or_insert(Held {
                    agent: i,
                    va,
                    usage: BTreeMap::new(),
                    sequence: None,
                    export_keys: BTreeSet::new(),
                });
            }
            RequestKind::RenewId => self.stats.ecdsa_sign += 1,
            RequestKind::Authorize => {
                self.stats.ecdsa_sign += 1; // the grant
                if let (Some(piid), Some(body)) = (request.piid, request.body.as_authorize()) {
                    if let Some(held) = self.ledger.instances.get_mut(&piid) {
                        if held.sequence.is_none_or(|s| body.sequence > s) {
                            held.sequence = Some(body.sequence);
                            held.usage = body
                                .usage
                                .iter()
                                .filter(|u| u.count > 0)
                                .map(|u| (u.tag.clone(), u.count))
                                .collect();
                        }
                    }
                }
            }
            RequestKind::Deregister => {
                if let Some(piid) = request.piid {
                    self.ledger.instances.remove(&piid);
                }
            }
            RequestKind::ExportRequest | RequestKind::ExportReturn => {
                if request.kind == RequestKind::ExportRequest {
                    self.stats.ecdsa_sign += 1; // the key
                }
                if let (Some(piid), Some(body)) = (request.piid, request.body.as_export()) {
                    if let Some(held) = self.ledger.instances.get_mut(&piid) {
                        if request.kind == RequestKind::ExportRequest {
                            held.export_keys.insert(body.feature.clone());
                        } else {
                            held.export_keys.remove(&body.feature);
                        }
                    }
                }
            }
            _ => {}
        }
        answer
    }

    /// Hands a genuine answer (or a transport failure) to the agent, with the duplicate-answer
    /// fault and the crash after handling, before persisting.
    fn hand_answer(
        &mut self,
        i: usize,
        id: smart_agent::agent::TransmitId,
        result: Result<Vec<u8>, SendError>,
        late: bool,
    ) {
        let t = self.agent_now(i);
        let answer = result.as_ref().ok().cloned();
        let ok_authorize = answer.as_deref().is_some_and(|a| {
            decode_response(a, MAX_REQUEST_LEN).is_ok_and(|r| {
                r.response.kind == RequestKind::Authorize && r.response.status == ResponseStatus::Ok
            })
        });
        if answer.is_some() {
            self.stats.ecdsa_verify += 1 + u64::from(ok_authorize);
        }
        self.trace(i, || {
            format!("answer {:?}", result.as_ref().map(|a| a.len()))
        });
        self.nodes[i].agent.handle_response(id, result, t);
        self.trace(i, || "handled".into());
        if ok_authorize {
            self.nodes[i].last_auth_ok = self.nodes[i].agent.highest_seen();
        }
        if let Some(a) = answer {
            if !self.quiet && self.rng.chance(P_DUPLICATE_ANSWER) {
                self.stats.duplicated_answers += 1;
                self.handle_checked(i, id, Ok(a.clone()), "a duplicated answer");
            }
            let old = &mut self.nodes[i].old_answers;
            if old.len() == 2 {
                old.remove(0);
            }
            old.push(a);
        }
        if late {
            self.drain(i);
        }
        if !self.quiet && self.rng.chance(P_CRASH_IN_EXCHANGE) {
            // Dies after handling the answer, before persisting it.
            self.crash(i);
            return;
        }
        self.after_answer(i);
    }

    fn after_answer(&mut self, i: usize) {
        self.persist(i);
        self.drain(i);
    }

    /// An answer the agent must reject: its licensing part stays byte-identical (SPEC §12).
    fn handle_checked(
        &mut self,
        i: usize,
        id: smart_agent::agent::TransmitId,
        result: Result<Vec<u8>, SendError>,
        what: &str,
    ) {
        let before = self.nodes[i].agent.snapshot_parts().licensing;
        let t = self.agent_now(i);
        self.stats.ecdsa_verify += 1;
        self.nodes[i].agent.handle_response(id, result, t);
        let after = self.nodes[i].agent.snapshot_parts().licensing;
        self.check("rejected answer left the licensing part byte-identical");
        if before != after {
            self.violation(Some(i), format!("{what} changed the licensing part"));
        }
    }

    fn drain(&mut self, i: usize) {
        while let Some(event) = self.nodes[i].agent.poll_event() {
            let name = match &event.kind {
                EventKind::DeregistrationFailed { .. } => {
                    if let Some(piid) = self.nodes[i].deregistering.take() {
                        self.ledger.reported_ghosts.insert(piid);
                    }
                    "DeregistrationFailed"
                }
                EventKind::Deregistered => {
                    self.nodes[i].deregistering = None;
                    "Deregistered"
                }
                EventKind::ClockChanged { .. } => "ClockChanged",
                EventKind::EvaluationExpired => "EvaluationExpired",
                EventKind::RegistrationFailed { .. } => "RegistrationFailed",
                EventKind::RegistrationExpired => "RegistrationExpired",
                EventKind::AuthorizationExpired => "AuthorizationExpired",
                EventKind::ExportKeyGranted { .. } => "ExportKeyGranted",
                EventKind::ExportKeyRefused { .. } => "ExportKeyRefused",
                EventKind::CommunicationFailure { .. } => "CommunicationFailure",
                EventKind::IdentityDropped { .. } => "IdentityDropped",
                EventKind::GrantDropped { .. } => "GrantDropped",
                _ => continue,
            };
            *self.stats.events.entry(name).or_insert(0) += 1;
        }
    }

    // ---- checks ----

    fn observe_evaluation(&mut self, i: usize) {
        let t = self.agent_now(i);
        let remaining = self.nodes[i].agent.status(t).evaluation.remaining;
        self.check_evaluation(i, remaining);
    }

    /// The evaluation time left never grows: checked against the least seen so far.
    fn check_evaluation(&mut self, i: usize, remaining: TimeDelta) {
        self.check("evaluation never extended");
        if remaining > self.nodes[i].eval_seen {
            let seen = self.nodes[i].eval_seen;
            self.violation(
                Some(i),
                format!(
                    "evaluation grew from {}s to {}s",
                    seen.num_seconds(),
                    remaining.num_seconds()
                ),
            );
        }
        self.nodes[i].eval_seen = self.nodes[i].eval_seen.min(remaining);
    }

    fn sample(&mut self) {
        if self.args.break_invariant.as_deref() == Some("evaluation") && !self.broken {
            // The deliberate fault: one agent that has used evaluation time is swapped for a
            // fresh one behind the simulation's back (its evaluation period starts again).
            let victim =
                (0..self.nodes.len()).find(|&i| self.nodes[i].eval_seen < TimeDelta::days(80));
            if let Some(i) = victim {
                self.broken = true;
                let seed = self.rng.fork();
                let cfg = config(&self.nodes[i].udi, &self.manager, seed);
                if let Ok(mut fresh) = Agent::new(cfg, self.agent_now(i)) {
                    for t in self.nodes[i].tags.clone() {
                        fresh.declare(tag(t), self.agent_now(i));
                        let _ = fresh.set_usage(&tag(t), 1, self.agent_now(i));
                    }
                    self.nodes[i].agent = fresh;
                }
            }
        }
        let mut counts = [0u64; 6];
        for i in 0..self.nodes.len() {
            // The product's daily tick (Unified CM recounts every 24 h, 003:219): it hands the
            // agent the time, persists, and reads the status. `status` alone records nothing,
            // so without the tick a clock moved back would show an earlier instant.
            let t = self.agent_now(i);
            if self.nodes[i].late.is_none() {
                self.nodes[i].agent.handle_timeout(t);
                self.persist(i);
                self.drain(i);
                self.pump(i);
                self.schedule(i);
            }
            let st = self.nodes[i].agent.status(t);
            let class = match st.authorization.state {
                AuthorizationState::Authorized => 0,
                AuthorizationState::OutOfCompliance => 1,
                AuthorizationState::EvalExpired | AuthorizationState::AuthorizationExpired => 2,
                AuthorizationState::EvalMode => 3,
                AuthorizationState::AuthorizedReserved
                | AuthorizationState::NotAuthorizedReserved => 4,
                _ => 5,
            };
            counts[class] += 1;
            self.check_status(i, &st);
        }
        self.samples.push(Sample {
            day: (self.now - t0()).num_days(),
            counts,
        });
    }

    fn check_status(&mut self, i: usize, st: &Status) {
        self.check_evaluation(i, st.evaluation.remaining);
        if st.authorization.state == AuthorizationState::Authorized {
            self.check("no AUTHORIZED past the deadline");
            let bound = self.nodes[i].last_auth_ok.map(|t| t + TimeDelta::days(90));
            match (st.authorization.deadline, bound) {
                (Some(deadline), Some(bound)) if st.at < deadline && deadline <= bound => {}
                (deadline, _) => self.violation(
                    Some(i),
                    format!(
                        "AUTHORIZED at {} with deadline {deadline:?}, last accepted answer {:?}",
                        st.at, self.nodes[i].last_auth_ok
                    ),
                ),
            }
        }
    }

    /// The manager's records against the ledger and the agents (every 14 days and at the end).
    fn check_manager(&mut self, last: bool) {
        // 1. Consumption equals the usage it last acknowledged, for exactly the instances held.
        let instances = self.manager.instances();
        let held: BTreeSet<Uuid> = instances.iter().map(|i| i.piid).collect();
        let ledger: BTreeSet<Uuid> = self.ledger.instances.keys().copied().collect();
        self.check("manager instances = instances it acknowledged");
        if held != ledger {
            let extra: Vec<_> = held.difference(&ledger).collect();
            let missing: Vec<_> = ledger.difference(&held).collect();
            self.violation(
                None,
                format!("manager instances differ from the acknowledged ones: extra {extra:?}, missing {missing:?}"),
            );
        }
        for info in &instances {
            let Some(entry) = self.ledger.instances.get(&info.piid).cloned() else {
                continue;
            };
            self.check("manager consumption = usage last acknowledged");
            if entry.usage != info.usage {
                let (agent, usage) = (entry.agent, entry.usage.clone());
                self.violation(
                    Some(agent),
                    format!(
                        "manager holds usage {:?}, it acknowledged {usage:?}",
                        info.usage
                    ),
                );
            }
        }
        // Per Virtual Account: the license report against the reference allocation.
        for va in 0..self.vas.len() {
            let alloc = self.reference_allocation(va);
            let reserved = self.reserved_in(va);
            let lines = self.manager.licenses(&self.vas[va].id);
            for line in lines {
                let t = line.tag.to_string();
                let purchased = self.vas[va].purchased.get(&t).copied().unwrap_or(0);
                let r = reserved.get(&t).copied().unwrap_or(0);
                let own = alloc.own.get(&t).copied().unwrap_or(0);
                let lent = alloc.lent.get(&t).copied().unwrap_or(0);
                self.check("license report = reference allocation, nothing granted twice or lost");
                let got = (
                    u64::from(line.purchased),
                    u64::from(line.reserved),
                    u64::from(line.in_use) - u64::from(line.reserved),
                    u64::from(line.lent_to_lower),
                    u64::from(line.balance),
                );
                let want = (
                    purchased,
                    r,
                    own,
                    lent,
                    purchased.saturating_sub(r + own + lent),
                );
                if got != want || r + own + lent > purchased {
                    self.violation(
                        None,
                        format!(
                            "{} {}: (purchased, reserved, in use, lent, balance) = {got:?}, reference {want:?}",
                            self.vas[va].id, t
                        ),
                    );
                }
            }
            if self.vas[va].export_keys > 0 {
                for pool in self.manager.export_key_pools(&self.vas[va].id) {
                    self.check("export keys: held ≤ bought, held = acknowledged");
                    let acknowledged = self
                        .ledger
                        .instances
                        .values()
                        .filter(|h| h.va == va && h.export_keys.contains(&pool.feature))
                        .count() as u32;
                    if pool.in_use > pool.total || pool.in_use != acknowledged {
                        self.violation(
                            None,
                            format!(
                                "export keys {}: {} of {} in use, {acknowledged} acknowledged",
                                pool.feature, pool.in_use, pool.total
                            ),
                        );
                    }
                }
            }
        }
        // 2. Every instance held is a current registration, a registration whose answer is on
        // its way, or a ghost whose deregistration failure the agent reported.
        let mut ghosts = 0u64;
        for (piid, entry) in self.ledger.instances.clone() {
            let i = entry.agent;
            self.check("every instance held is accounted for");
            let agent = &self.nodes[i].agent;
            if agent.product_instance_id() == Some(piid) {
                continue;
            }
            let pending = agent.status(self.agent_now(i)).registration.state
                == RegistrationState::RegistrationPending
                || self.nodes[i].late.is_some()
                || self.nodes[i].intent == Intent::Registered;
            if self.ledger.reported_ghosts.contains(&piid) {
                ghosts += 1;
            } else if !pending || last {
                self.violation(
                    Some(i),
                    format!("the manager holds instance {piid} which the agent does not hold and no failure was reported"),
                );
            }
        }
        // Reservations: every one the manager holds is installed at its agent, with the same
        // counts, and every installed one is held.
        let held: BTreeMap<String, Vec<(String, u64)>> = self
            .manager
            .reservations()
            .into_iter()
            .map(|r| {
                (
                    r.udi.long_form(),
                    r.held
                        .iter()
                        .map(|(t, n)| (t.to_string(), u64::from(*n)))
                        .collect(),
                )
            })
            .collect();
        for i in 0..self.nodes.len() {
            if !matches!(self.nodes[i].profile, Profile::Slr | Profile::Plr) {
                continue;
            }
            self.check("every reservation held is installed, every installed one held");
            let st = self.nodes[i].agent.status(self.agent_now(i));
            let installed: Option<Vec<(String, u64)>> =
                st.reservation.installed.as_ref().map(|r| {
                    let mut v: Vec<(String, u64)> = r
                        .entitlements
                        .iter()
                        .map(|e| (e.tag.to_string(), u64::from(e.count)))
                        .collect();
                    v.sort();
                    v
                });
            let on_manager = held.get(&self.nodes[i].udi.long_form()).map(|v| {
                let mut v = v.clone();
                v.sort();
                v
            });
            if installed != on_manager {
                self.violation(
                    Some(i),
                    format!(
                        "installed reservation {installed:?}, the manager holds {on_manager:?}"
                    ),
                );
            }
        }
        if last {
            self.stats
                .checks
                .insert("ghost instances at the end (reported)", ghosts);
        }
    }

    fn reserved_in(&self, va: usize) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        if va == self.reserve_va {
            for r in self.ledger.reserved.values() {
                for (t, n) in r {
                    *out.entry(t.clone()).or_insert(0) += n;
                }
            }
        }
        out
    }

    /// The reference allocation of `va`: pools less reservations, demand from the usage the
    /// manager acknowledged for the instances it holds.
    fn reference_allocation(&self, va: usize) -> reference::Allocation {
        let reserved = self.reserved_in(va);
        let pools: BTreeMap<String, u64> = self.vas[va]
            .purchased
            .iter()
            .map(|(t, n)| {
                (
                    t.clone(),
                    n.saturating_sub(reserved.get(t).copied().unwrap_or(0)),
                )
            })
            .collect();
        let mut demand: BTreeMap<String, u64> = BTreeMap::new();
        for h in self.ledger.instances.values().filter(|h| h.va == va) {
            for (t, n) in &h.usage {
                *demand.entry(t.clone()).or_insert(0) += u64::from(*n);
            }
        }
        reference::allocate(&pools, &demand)
    }

    fn start_quiet(&mut self) {
        self.quiet = true;
        for i in 0..self.nodes.len() {
            self.nodes[i].reregister_at = None;
            if self.nodes[i].offset != TimeDelta::zero() {
                self.jump(i, TimeDelta::zero());
                self.pump(i);
                self.schedule(i);
            }
        }
    }

    /// After the quiet period: every agent shows what its history and the reference
    /// allocation give it.
    fn converge(&mut self) {
        let allocations: Vec<reference::Allocation> = (0..self.vas.len())
            .map(|va| self.reference_allocation(va))
            .collect();
        let mut export_held = vec![0u32; self.vas.len()];
        for i in 0..self.nodes.len() {
            let t = self.agent_now(i);
            let st = self.nodes[i].agent.status(t);
            let node = &self.nodes[i];
            let in_use = st.entitlements.iter().any(|e| e.count > 0);
            let eval_state = if !in_use {
                AuthorizationState::NoLicensesInUse
            } else if st.evaluation.remaining > TimeDelta::zero() {
                AuthorizationState::EvalMode
            } else {
                AuthorizationState::EvalExpired
            };
            let (registration, authorization): (Vec<RegistrationState>, AuthorizationState) =
                match node.intent {
                    Intent::Registered => {
                        let alloc = &allocations[node.va];
                        let short = st
                            .entitlements
                            .iter()
                            .any(|e| e.count > 0 && !alloc.fully_served(e.tag.as_str()));
                        let want = if !in_use {
                            AuthorizationState::NoLicensesInUse
                        } else if short {
                            AuthorizationState::OutOfCompliance
                        } else {
                            AuthorizationState::Authorized
                        };
                        for e in st.entitlements.iter().filter(|e| e.count > 0) {
                            let tag_want = if alloc.fully_served(e.tag.as_str()) {
                                TagStatus::InCompliance
                            } else {
                                TagStatus::OutOfCompliance
                            };
                            if e.status != tag_want {
                                let what = format!(
                                    "converged: {} shows {:?}, the reference allocation gives {tag_want:?}",
                                    e.tag, e.status
                                );
                                self.violations.push(Violation {
                                    agent: Some(i),
                                    at: self.now,
                                    what,
                                });
                            }
                        }
                        // Its usage is what the manager acknowledged.
                        let usage: BTreeMap<String, u32> = st
                            .entitlements
                            .iter()
                            .filter(|e| e.count > 0)
                            .map(|e| (e.tag.to_string(), e.count))
                            .collect();
                        let acknowledged = node
                            .agent
                            .product_instance_id()
                            .and_then(|p| self.ledger.instances.get(&p))
                            .map(|h| h.usage.clone());
                        if acknowledged.as_ref() != Some(&usage) {
                            let what = format!(
                                "converged: usage {usage:?}, the manager acknowledged {acknowledged:?}"
                            );
                            self.violations.push(Violation {
                                agent: Some(i),
                                at: self.now,
                                what,
                            });
                        }
                        if node.profile == Profile::Export
                            && node.agent.export_keys().iter().any(|f| f == EXPORT_FEATURE)
                        {
                            export_held[node.va] += 1;
                        }
                        (vec![RegistrationState::Registered], want)
                    }
                    Intent::Reserved => {
                        let kind = if node.profile == Profile::Plr {
                            RegistrationState::UniversalReservation
                        } else {
                            RegistrationState::SpecificReservation
                        };
                        (vec![kind], AuthorizationState::AuthorizedReserved)
                    }
                    Intent::ReservationMode => (
                        vec![
                            RegistrationState::Unregistered,
                            RegistrationState::ReservationInProgress,
                        ],
                        eval_state,
                    ),
                    Intent::Unregistered => (vec![RegistrationState::Unregistered], eval_state),
                    Intent::Failed => (vec![RegistrationState::RegistrationFailed], eval_state),
                };
            *self
                .stats
                .checks
                .entry("converged to the expected state")
                .or_insert(0) += 1;
            if !registration.contains(&st.registration.state)
                || st.authorization.state != authorization
            {
                let what = format!(
                    "converged: {:?} / {:?}, expected {registration:?} / {authorization:?} ({:?}, intent {:?})",
                    st.registration.state, st.authorization.state, node.profile, node.intent
                );
                self.violations.push(Violation {
                    agent: Some(i),
                    at: self.now,
                    what,
                });
            }
        }
        // Export keys: held on the manager = held by agents + held by ghosts.
        for (va, held) in export_held.iter().enumerate() {
            if self.vas[va].export_keys == 0 {
                continue;
            }
            let ghosts = self
                .ledger
                .instances
                .iter()
                .filter(|(p, h)| {
                    h.va == va
                        && h.export_keys.contains(EXPORT_FEATURE)
                        && self.nodes[h.agent].agent.product_instance_id() != Some(**p)
                })
                .count() as u32;
            let in_use = self
                .manager
                .export_key_pools(&self.vas[va].id)
                .iter()
                .find(|p| p.feature == EXPORT_FEATURE)
                .map_or(0, |p| p.in_use);
            *self
                .stats
                .checks
                .entry("converged export keys")
                .or_insert(0) += 1;
            if in_use != held + ghosts {
                let what = format!(
                    "converged: {in_use} export keys in use, agents hold {held}, ghosts {ghosts}"
                );
                self.violations.push(Violation {
                    agent: None,
                    at: self.now,
                    what,
                });
            }
        }
    }

    fn digest(&self) -> u64 {
        let mut h = Fnv::new();
        for node in &self.nodes {
            crate::digest::licensing(&mut h, &node.agent.snapshot_parts().licensing);
        }
        for info in self.manager.instances() {
            h.item(format!("{info:?}").as_bytes());
        }
        for r in self.manager.reservations() {
            h.item(
                format!(
                    "{:?} {:?} {:?} {:?} {:?}",
                    r.piid, r.udi, r.kind, r.held, r.in_transit
                )
                .as_bytes(),
            );
        }
        for va in &self.vas {
            for line in self.manager.licenses(&va.id) {
                h.item(format!("{line:?}").as_bytes());
            }
            for pool in self.manager.export_key_pools(&va.id) {
                h.item(format!("{pool:?}").as_bytes());
            }
        }
        h.finish()
    }

    #[allow(clippy::too_many_arguments)]
    fn report(
        &self,
        digest: u64,
        wall: std::time::Duration,
        setup: std::time::Duration,
        run: std::time::Duration,
        rss_before: u64,
        rss_fleet: u64,
        peak: u64,
    ) -> String {
        let s = &self.stats;
        let n = self.nodes.len();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "fleet: {n} agents, {} simulated years (last {QUIET_DAYS} days quiet), seed {}",
            self.args.years, self.args.seed
        );
        let mut profiles: BTreeMap<String, usize> = BTreeMap::new();
        for node in &self.nodes {
            *profiles.entry(format!("{:?}", node.profile)).or_insert(0) += 1;
        }
        let _ = writeln!(out, "profiles: {profiles:?}");
        let _ = writeln!(out, "requests sent by kind: {:?}", s.sent);
        let _ = writeln!(
            out,
            "delivered {} (ok {}, refused {}); lost requests {}, outage refusals {} ({} windows), lost answers {}, duplicated requests {}, duplicated answers {}, late answers {}, replayed answers {}",
            s.delivered, s.answered_ok, s.answered_failed, s.lost_requests, s.outage_refusals,
            self.outages.len(), s.lost_answers, s.duplicated_requests, s.duplicated_answers,
            s.late_answers, s.replayed_answers
        );
        let _ = writeln!(
            out,
            "product: usage changes {}, deregistrations {}, reregistrations {}, forced reregistrations {}, export requests {}, export returns {}",
            s.usage_changes, s.deregistrations, s.reregistrations, s.force_reregistrations,
            s.export_requests, s.export_returns
        );
        let _ = writeln!(
            out,
            "reservations: installed {}, updated {}, returned {}, cancelled {}, refused by the manager {}",
            s.reservations_installed, s.reservations_updated, s.reservations_returned,
            s.reservations_cancelled, s.reservation_refusals
        );
        let _ = writeln!(
            out,
            "faults: crashes {} (restores {}), clock jumps forward {}, back {}; agent wake-ups {}",
            s.crashes, s.restores, s.clock_jumps_forward, s.clock_jumps_back, s.wakes
        );
        let _ = writeln!(out, "events: {:?}", s.events);
        let ghosts_reported = self.ledger.reported_ghosts.len();
        let _ = writeln!(
            out,
            "deregistration failures reported (possible ghosts): {ghosts_reported}"
        );
        let _ = writeln!(out, "invariants checked (count):");
        for (name, count) in &s.checks {
            let _ = writeln!(out, "  {count:>10}  {name}");
        }
        let _ = writeln!(out, "violations: {}", self.violations.len());
        let secs = run.as_secs_f64().max(1e-9);
        let _ = writeln!(
            out,
            "time: total {:.1}s (setup {:.1}s, simulation {:.1}s); {:.0} messages/s (delivered requests per second of simulation)",
            wall.as_secs_f64(), setup.as_secs_f64(), secs, s.delivered as f64 / secs
        );
        let _ = writeln!(
            out,
            "crypto operations (counted per message: agent Ed25519 sign per request, manager Ed25519 verify per delivered request, manager ECDSA sign per answer plus per identity/grant/export key/reservation code issued, agent ECDSA verify per answer handled plus its grant, per installed code, per signed document re-verified at restore): Ed25519 sign {}, Ed25519 verify {}, ECDSA sign {}, ECDSA verify {}",
            s.ed25519_sign, s.ed25519_verify, s.ecdsa_sign, s.ecdsa_verify
        );
        // Timed after the run (printed only: not part of the digest).
        match crate::floor::measure() {
            Ok(f) => {
                let crypto = s.ed25519_sign as f64 * f.ed25519_sign
                    + s.ed25519_verify as f64 * f.ed25519_verify
                    + s.ecdsa_sign as f64 * f.ecdsa_sign
                    + s.ecdsa_verify as f64 * f.ecdsa_verify;
                let _ = writeln!(
                    out,
                    "crypto floor (ring, 1 KiB, timed here after the run): Ed25519 sign {:.1} µs, verify {:.1} µs, ECDSA P-256 sign {:.1} µs, verify {:.1} µs; the counted operations {:.1}s; simulation / crypto {:.2}x",
                    f.ed25519_sign * 1e6, f.ed25519_verify * 1e6, f.ecdsa_sign * 1e6,
                    f.ecdsa_verify * 1e6, crypto, secs / crypto.max(1e-9)
                );
            }
            Err(e) => {
                let _ = writeln!(out, "crypto floor: not measured ({e})");
            }
        }
        let mut sizes: Vec<usize> = self.nodes.iter().map(|n| n.persisted.len()).collect();
        sizes.sort_unstable();
        let mean = sizes.iter().sum::<usize>() as f64 / n as f64;
        let _ = writeln!(
            out,
            "snapshot bytes at the end: min {}, median {}, mean {:.0}, p99 {}, max {}; largest seen during the run {}",
            sizes[0], sizes[n / 2], mean, sizes[(n * 99) / 100], sizes[n - 1], s.max_snapshot
        );
        let _ = writeln!(
            out,
            "memory (/proc/self/status): RSS {rss_before} KiB before setup, {rss_fleet} KiB with the fleet built, peak (VmHWM) {peak} KiB; peak per agent {:.1} KiB (peak less the RSS before setup, over {n}: agent, its persisted snapshot copy, the manager's rows and the simulation's bookkeeping)",
            (peak.saturating_sub(rss_before)) as f64 / n as f64
        );
        let _ = write!(out, "digest: {digest:016x}");
        out
    }
}

fn count(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}
