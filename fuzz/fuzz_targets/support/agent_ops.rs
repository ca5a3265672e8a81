//! The stateful target: an [`Agent`] driven by operations decoded from the input — commands,
//! times forward and back, answers from the in-process manager (genuine, mutated, truncated,
//! arbitrary, lost, late, duplicated), crashes with a restore from the last persisted snapshot
//! — and the invariants checked after every step:
//!
//! 1. nothing panics;
//! 2. a call that returns `Err` leaves the licensing part byte-identical; so does an answer the
//!    agent rejects or a transport error ([`World::deliver`]); an answer for a transmission
//!    that is not outstanding changes nothing at all;
//! 3. after `handle_timeout(now)`, with `h` the agent's effective time (the highest time it has
//!    recorded, `max(previous h, now)`): a deadline `poll_timeout` reports for a notification
//!    (identity expiry, authorization deadline, evaluation warning or expiry) is strictly
//!    after `h` — `handle_timeout` raised everything due by `h` —, and one at or before `h`
//!    (the "at once" of `poll_timeout`'s contract) is for a request, which `poll_transmit(now)`
//!    then hands out: the agent never asks to be woken in the past for nothing;
//! 4. the evaluation left at the agent's own time never grows while it runs, and a restore
//!    from a snapshot gives no more than the agent had when that snapshot was persisted (a
//!    restored agent may have seen less time than the one that crashed: the product persisted
//!    before it, so it resumes from there).
//!
//! The product modelled persists the snapshot whenever the licensing part changed and before
//! every request it sends (the crate docs' loop), and when an operation says so.
//!
//! Input: a sequence of operations, each an opcode byte (`% OPS`) and its operand bytes (a
//! missing byte reads as 0); at most [`MAX_OPS`] are run. Times stay within
//! `now() ± about 40 years`, far inside the storable range.

use chrono::{DateTime, TimeDelta, Utc};
use smart_agent::codes::{
    LicenseType, PlrClaims, PlrCode, PlrEntitlement, RequestCode, SlrClaims, SlrCode,
    SlrEntitlement,
};
use smart_agent::crypto::DeviceKey;
use smart_agent::wire::resign;
use smart_agent::{
    Agent, DeterministicRandom, Environment, Force, HostIdentity, SendError, Tag, TimerReason,
    Transmit, TransmitId, TransportSettings, Udi, Uuid,
};

use super::sim::{ExportAnswer, Fate, Persisted, World, FEATURES, TAGS};
use super::{config_for, now, UDI};

/// The most operations one input runs (keeps an input under a few milliseconds).
pub const MAX_OPS: usize = 48;

/// The time steps of [`Op::Forward`] and [`Op::Back`].
const STEPS: [TimeDelta; 12] = [
    TimeDelta::seconds(1),
    TimeDelta::minutes(1),
    TimeDelta::minutes(15),
    TimeDelta::hours(1),
    TimeDelta::hours(24),
    TimeDelta::days(7),
    TimeDelta::days(30),
    TimeDelta::days(31),
    TimeDelta::days(90),
    TimeDelta::days(182),
    TimeDelta::days(365),
    TimeDelta::days(400),
];

/// The opcodes, in input order (`opcode byte % OPS`).
pub mod op {
    pub const FORWARD: u8 = 0; // step
    pub const BACK: u8 = 1; // step
    pub const TO_DEADLINE: u8 = 2; // jitter (i8 seconds)
    pub const DECLARE: u8 = 3; // tag
    pub const SET_USAGE: u8 = 4; // tag, count
    pub const REGISTER: u8 = 5; // which (bit 0-1 token kind, bit 2 force)
    pub const RENEW_ID: u8 = 6;
    pub const RENEW_AUTH: u8 = 7;
    pub const DEREGISTER: u8 = 8;
    pub const SETTINGS: u8 = 9; // which, arg
    pub const RESERVATION_ENABLE: u8 = 10;
    pub const RESERVATION_REQUEST: u8 = 11;
    pub const RESERVATION_INSTALL: u8 = 12; // code spec (see `code`)
    pub const RESERVATION_RETURN: u8 = 13;
    pub const RESERVATION_RETURN_AUTHORIZATION: u8 = 14; // code spec
    pub const RESERVATION_CANCEL: u8 = 15;
    pub const RESERVATION_DISABLE: u8 = 16;
    pub const EXPORT_REQUEST: u8 = 17; // feature
    pub const EXPORT_RETURN: u8 = 18; // feature
    pub const EXPORT_CANCEL: u8 = 19;
    pub const EXCHANGE: u8 = 20; // how, then what `how` needs (see `exchange`)
    pub const DELIVER_LATE: u8 = 21;
    pub const PERSIST: u8 = 22;
    pub const RESTORE: u8 = 23;
    pub const PUMP: u8 = 24;
    /// The number of opcodes.
    pub const OPS: u8 = 25;
}

/// The ways of answering a transmission ([`op::EXCHANGE`]'s first operand `% 10`).
pub mod how {
    pub const GENUINE: u8 = 0; // export answer byte
    pub const LOST_REQUEST: u8 = 1; // error byte
    pub const LOST_ANSWER: u8 = 2;
    pub const FLIPPED: u8 = 3; // u16 position, xor byte
    pub const TRUNCATED: u8 = 4; // u16 length
    pub const ARBITRARY: u8 = 5; // length byte, that many bytes
    pub const LATE: u8 = 6; // export answer byte: kept for DELIVER_LATE
    pub const DUPLICATED: u8 = 7; // export answer byte
    pub const SPLICED: u8 = 8; // u16 position, length byte, that many bytes inserted
    pub const RESIGNED: u8 = 9; // u16 position, xor byte: flipped, then the envelope re-signed
}

struct Input<'a> {
    data: &'a [u8],
}

impl Input<'_> {
    fn next(&mut self) -> Option<u8> {
        let (&b, rest) = self.data.split_first()?;
        self.data = rest;
        Some(b)
    }
    fn byte(&mut self) -> u8 {
        self.next().unwrap_or(0)
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head.to_vec()
    }
}

struct Run {
    world: World,
    /// The last persisted snapshot.
    persisted: Persisted,
    /// A transmission handed out and not answered yet.
    held: Option<Transmit>,
    /// Answers that arrive late, for whichever transmission they were made for.
    late: Vec<(TransmitId, Result<Vec<u8>, SendError>)>,
    /// The evaluation left after the previous step.
    evaluation_left: TimeDelta,
    restores: u64,
}

/// Runs the operations of `data` and checks the invariants of the module docs.
pub fn agent_ops(data: &[u8]) {
    let world = World::new(1);
    let mut run = Run {
        persisted: Persisted::of(&world),
        evaluation_left: world.evaluation_left(),
        world,
        held: None,
        late: Vec::new(),
        restores: 0,
    };
    let mut input = Input { data };
    for _ in 0..MAX_OPS {
        let Some(code) = input.next() else { break };
        run.step(code % op::OPS, &mut input);
    }
}

fn tag(i: u8) -> Tag {
    Tag::parse(TAGS[usize::from(i) % TAGS.len()]).expect("the fuzz tags parse")
}

fn within_range(t: DateTime<Utc>) -> DateTime<Utc> {
    let span = TimeDelta::days(40 * 365);
    t.clamp(now() - span, now() + span)
}

fn send_error(b: u8) -> SendError {
    match b % 5 {
        0 => SendError::Timeout,
        1 => SendError::Send {
            detail: "connection refused".into(),
        },
        2 => SendError::UnknownCa,
        3 => SendError::ProxyAuthentication,
        _ => SendError::TooLarge,
    }
}

/// Whether a timer reason is a notification (raised by `handle_timeout` itself) rather than
/// a request to send.
fn is_notification(reason: TimerReason) -> bool {
    matches!(
        reason,
        TimerReason::IdentityExpiry
            | TimerReason::AuthorizationDeadline
            | TimerReason::EvaluationWarning
            | TimerReason::EvaluationExpiry
    )
}

impl Run {
    fn agent(&mut self) -> &mut Agent {
        &mut self.world.agent
    }

    fn persist(&mut self) {
        self.persisted = Persisted::of(&self.world);
    }

    fn step(&mut self, code: u8, input: &mut Input<'_>) {
        let before = self.world.licensing();
        let now = self.world.now;
        let result: Result<(), smart_agent::Error> = match code {
            op::FORWARD => {
                self.timeout(now + STEPS[usize::from(input.byte()) % STEPS.len()]);
                Ok(())
            }
            op::BACK => {
                self.timeout(now - STEPS[usize::from(input.byte()) % STEPS.len()]);
                Ok(())
            }
            op::TO_DEADLINE => {
                let jitter = TimeDelta::seconds(i64::from(input.byte() as i8));
                if let Some((at, _)) = self.world.agent.poll_timeout() {
                    self.timeout(at + jitter);
                }
                Ok(())
            }
            op::DECLARE => {
                let tag = tag(input.byte());
                self.agent().declare(tag, now);
                Ok(())
            }
            op::SET_USAGE => {
                let tag = tag(input.byte());
                let count = u32::from(input.byte());
                self.agent().set_usage(&tag, count, now)
            }
            op::REGISTER => {
                let which = input.byte();
                let token = match which % 4 {
                    0 => self.world.token.clone(),
                    1 => self.world.export_token.clone(),
                    2 => "UnknownFuzzToken0123456789".to_string(),
                    _ => "not a token!".to_string(),
                };
                let force = if which & 4 != 0 {
                    Force::Yes
                } else {
                    Force::No
                };
                self.agent().register(&token, force, now)
            }
            op::RENEW_ID => self.agent().renew_id(now),
            op::RENEW_AUTH => self.agent().renew_auth(now),
            op::DEREGISTER => self.agent().deregister(now),
            op::SETTINGS => self.settings(input.byte(), input.byte()),
            op::RESERVATION_ENABLE => self.agent().reservation_enable(now),
            op::RESERVATION_REQUEST => self.agent().reservation_request(now).map(|_| ()),
            op::RESERVATION_INSTALL => {
                let code = self.code(input);
                self.agent().reservation_install(&code, now).map(|_| ())
            }
            op::RESERVATION_RETURN => self.agent().reservation_return(now).map(|_| ()),
            op::RESERVATION_RETURN_AUTHORIZATION => {
                let code = self.code(input);
                self.agent()
                    .reservation_return_authorization(&code, now)
                    .map(|_| ())
            }
            op::RESERVATION_CANCEL => self.agent().reservation_cancel(now),
            op::RESERVATION_DISABLE => self.agent().reservation_disable(now),
            op::EXPORT_REQUEST => {
                let feature = FEATURES[usize::from(input.byte()) % FEATURES.len()];
                self.agent().export_request(feature, now)
            }
            op::EXPORT_RETURN => {
                let feature = FEATURES[usize::from(input.byte()) % FEATURES.len()];
                self.agent().export_return(feature, now)
            }
            op::EXPORT_CANCEL => self.agent().export_cancel(now),
            op::EXCHANGE => {
                self.exchange(input);
                Ok(())
            }
            op::DELIVER_LATE => {
                if !self.late.is_empty() {
                    let (id, answer) = self.late.remove(0);
                    self.world.deliver(id, answer);
                }
                Ok(())
            }
            op::PERSIST => {
                self.persist();
                Ok(())
            }
            op::RESTORE => {
                self.restore();
                Ok(())
            }
            _ => {
                self.pump();
                Ok(())
            }
        };
        let after = self.world.licensing();
        if let Err(e) = &result {
            assert_eq!(
                after, before,
                "a refused call (opcode {code}: {e}) changed the licensing part"
            );
        }
        let _ = self.world.take_events();
        let left = self.world.evaluation_left();
        if code != op::RESTORE {
            assert!(
                left <= self.evaluation_left,
                "opcode {code} gave evaluation back: {} -> {left}",
                self.evaluation_left
            );
        }
        self.evaluation_left = left;
        if after != self.persisted.parts.licensing {
            self.persist();
        }
    }

    /// `handle_timeout(t)` and invariant 3.
    fn timeout(&mut self, t: DateTime<Utc>) {
        let t = within_range(t);
        let previous = self.world.agent_time();
        self.world.now = t;
        self.world.agent.handle_timeout(t);
        let h = self.world.agent_time();
        assert_eq!(
            h,
            previous.max(t),
            "the agent's time is not max(previous, now)"
        );
        let Some((at, reason)) = self.world.agent.poll_timeout() else {
            return;
        };
        if is_notification(reason) {
            assert!(
                at > h,
                "after handle_timeout({t}) the agent (at {h}) still asks to be woken at {at} \
                 for {reason:?}"
            );
        } else if at <= h {
            let tx = self.world.agent.poll_transmit(t);
            assert!(
                tx.is_some(),
                "poll_timeout says {reason:?} at once ({at}, agent at {h}), but poll_transmit \
                 has nothing to send"
            );
            self.persist(); // before the request goes out
            if let Some(stale) = self.held.take() {
                // Two transmissions at once: the first must have been answered or abandoned.
                panic!("a second transmission while {:?} is unanswered", stale.id);
            }
            self.held = tx;
        }
    }

    fn settings(&mut self, which: u8, arg: u8) -> Result<(), smart_agent::Error> {
        let now = self.world.now;
        match which % 5 {
            0 => self.agent().set_privacy(arg & 1 == 1, now),
            1 => {
                let names = ["ucm-pub", "ucm-sub.example.com", "x"];
                let name = names[usize::from(arg) % names.len()];
                let ip = std::net::IpAddr::from([10, 0, 0, arg]);
                let host = HostIdentity::new(name, ip)?;
                self.agent().set_host(host, now);
            }
            // A subscriber node refuses almost everything: set it only now and then.
            2 => self.agent().set_subscriber(arg.is_multiple_of(8), now),
            3 => {
                let settings = match arg % 3 {
                    0 => TransportSettings::Direct,
                    1 => TransportSettings::on_prem("satellite.example.com:8443")?,
                    _ => TransportSettings::proxy("proxy.example.com", "3128", None)?,
                };
                self.agent().set_transport(settings, now)?;
            }
            _ => self.agent().set_transport(TransportSettings::Direct, now)?,
        }
        Ok(())
    }

    /// A reservation authorization code, as the manager's side would issue it for the
    /// agent's request code, or one that differs. Operands: `spec` bits — 0: PLR (else SLR);
    /// 1: for another reservation key; 2: for another UDI; 3-4: 1 flips a character, 2
    /// truncates; 5: a second entitlement; 6: export-controlled; 7: a TERM license (SLR) —
    /// then count, minutes before now it was issued, and the mutation's position and byte.
    fn code(&mut self, input: &mut Input<'_>) -> String {
        let spec = input.byte();
        let count = u32::from(input.byte());
        let issued = self.world.now - TimeDelta::minutes(i64::from(input.byte()));
        let (position, byte) = (usize::from(input.byte()), input.byte());
        let own = self
            .world
            .agent
            .status(self.world.now)
            .reservation
            .request_code
            .and_then(|c| RequestCode::parse(&c).ok());
        let request = match own {
            Some(code) if spec & 2 == 0 => code,
            _ => RequestCode::new(
                UDI.parse().expect("the seed UDI parses"),
                DeviceKey::from_seed([9; 32]).public_key(),
            ),
        };
        let udi: Udi = if spec & 4 != 0 {
            "PID:UCM,SN:OTHER1".parse().expect("UDIs parse")
        } else {
            request.udi().clone()
        };
        let mut tags = vec![(tag(0), count)];
        if spec & 32 != 0 {
            tags.push((tag(1), count / 2 + 1));
        }
        let piid = Uuid([0x42; 16]);
        let export_controlled = spec & 64 != 0;
        let text = if spec & 1 != 0 {
            let claims = PlrClaims {
                piid,
                timestamp: issued,
                udi,
                reservation_key: request.reservation_key_hash(),
                environment: Environment::Production,
                export_controlled,
                entitlements: tags
                    .into_iter()
                    .map(|(tag, count)| PlrEntitlement { tag, count })
                    .collect(),
            };
            PlrCode::issue(&claims, &self.world.key).map(|c| c.to_string())
        } else {
            let term = spec & 128 != 0;
            let today = self.world.now.date_naive();
            let claims = SlrClaims {
                piid,
                timestamp: issued,
                udi,
                reservation_key: request.reservation_key_hash(),
                environment: Environment::Production,
                export_controlled,
                entitlements: tags
                    .into_iter()
                    .map(|(tag, count)| SlrEntitlement {
                        tag,
                        count,
                        start_date: term.then_some(today),
                        end_date: term.then(|| today + TimeDelta::days(i64::from(count % 64) + 1)),
                        license_type: if term {
                            LicenseType::Term
                        } else {
                            LicenseType::Perpetual
                        },
                        display_name: "UC Manager Enhanced License (12.x)".into(),
                        tag_description: "UC Manager Enhanced License".into(),
                        subscription_id: None,
                    })
                    .collect(),
            };
            SlrCode::issue(&claims, &self.world.key).map(|c| c.to_string())
        };
        let mut text = text.unwrap_or_default();
        match (spec >> 3) & 3 {
            1 if !text.is_empty() => {
                let mut bytes = text.into_bytes();
                let at = position % bytes.len();
                bytes[at] = byte;
                text = String::from_utf8_lossy(&bytes).into_owned();
            }
            2 => {
                let mut cut = position.min(text.len());
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                text.truncate(cut);
            }
            _ => {}
        }
        text
    }

    /// The held transmission, or the next one due (persisted before it goes out).
    fn transmission(&mut self) -> Option<Transmit> {
        if let Some(tx) = self.held.take() {
            return Some(tx);
        }
        let tx = self.world.agent.poll_transmit(self.world.now);
        if tx.is_some() {
            self.persist();
        }
        tx
    }

    /// Sends what is due and answers it genuinely, a few times.
    fn pump(&mut self) {
        for _ in 0..8 {
            let Some(tx) = self.transmission() else {
                return;
            };
            let answer = self.world.genuine_answer(&tx, ExportAnswer::Ok);
            self.world.deliver(tx.id, Ok(answer));
        }
    }

    /// Answers the held transmission, or the next one due, as the operands say.
    fn exchange(&mut self, input: &mut Input<'_>) {
        let how = input.byte() % 10;
        let Some(tx) = self.transmission() else {
            return;
        };
        let id = tx.id;
        let genuine =
            |world: &mut World, b: u8| world.genuine_answer(&tx, ExportAnswer::from_byte(b));
        match how {
            how::GENUINE => {
                let answer = genuine(&mut self.world, input.byte());
                self.world.deliver(id, Ok(answer));
            }
            how::LOST_REQUEST => {
                let error = send_error(input.byte());
                self.world.deliver(id, Err(error));
            }
            how::LOST_ANSWER => {
                let _lost = genuine(&mut self.world, 0);
                self.world.deliver(id, Err(SendError::Timeout));
            }
            how::FLIPPED | how::RESIGNED => {
                let mut answer = genuine(&mut self.world, 0);
                let (position, xor) = (usize::from(input.u16()), input.byte().max(1));
                if !answer.is_empty() {
                    let at = position % answer.len();
                    answer[at] ^= xor;
                }
                if how == how::RESIGNED {
                    if let Ok(resigned) = resign(&answer, &self.world.key) {
                        answer = resigned;
                    }
                }
                self.world.deliver(id, Ok(answer));
            }
            how::TRUNCATED => {
                let mut answer = genuine(&mut self.world, 0);
                let len = usize::from(input.u16()) % (answer.len() + 1);
                answer.truncate(len);
                self.world.deliver(id, Ok(answer));
            }
            how::ARBITRARY => {
                let len = usize::from(input.byte());
                let answer = input.bytes(len);
                self.world.deliver(id, Ok(answer));
            }
            how::LATE => {
                let answer = genuine(&mut self.world, input.byte());
                self.world.deliver(id, Err(SendError::Timeout));
                self.late.push((id, Ok(answer)));
                self.late.truncate(4);
            }
            how::DUPLICATED => {
                let answer = genuine(&mut self.world, input.byte());
                self.world.deliver(id, Ok(answer.clone()));
                let again = self.world.deliver(id, Ok(answer));
                assert_eq!(again, Fate::Ignored, "a duplicated answer was taken twice");
            }
            _ => {
                let mut answer = genuine(&mut self.world, 0);
                let at = usize::from(input.u16()) % (answer.len() + 1);
                let len = usize::from(input.byte());
                let spliced = input.bytes(len);
                answer.splice(at..at, spliced);
                self.world.deliver(id, Ok(answer));
            }
        }
    }

    /// A crash: the agent restarts from the last persisted snapshot (invariant 4).
    fn restore(&mut self) {
        // A transmission in flight is lost with the process; its answer may still arrive.
        if let Some(tx) = self.held.take() {
            let answer = self.world.genuine_answer(&tx, ExportAnswer::Ok);
            self.late.push((tx.id, Ok(answer)));
            self.late.truncate(4);
        }
        self.restores += 1;
        let config =
            config_for(UDI).with_random(Box::new(DeterministicRandom::new(1000 + self.restores)));
        let agent = Agent::restore(&self.persisted.snapshot, config, self.world.now)
            .expect("the last persisted snapshot restores");
        self.world.agent = agent;
        let left = self.world.evaluation_left();
        assert!(
            left <= self.persisted.evaluation_left,
            "a restore gave evaluation back: {} persisted, {left} restored",
            self.persisted.evaluation_left
        );
    }
}
