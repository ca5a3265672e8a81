//! The Expressway export-limit governor (SPEC §7, 004:1644-1681): both limits, the alarms at
//! 90 % and 100 %, the low watermark, WebRTC, the export key, VCS and saturating ends; and a
//! property test against a reference model written from the SPEC's formulas.

use std::cell::RefCell;

use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use smart_agent::export_limit::{
    Admission, AlarmKind, AlarmState, ExportLimit, ExportLimitAlarm, EXPORT_LIMIT_KEY_FEATURE,
};

use AlarmKind::{Approaching, Reached};
use AlarmState::{Cleared, Raised};

/// Every alarm queued so far, as (kind, state, count).
fn alarms(governor: &mut ExportLimit) -> Vec<(AlarmKind, AlarmState, u64)> {
    std::iter::from_fn(|| governor.poll_alarm())
        .map(|a| (a.kind, a.state, a.count))
        .collect()
}

/// Starts sessions one by one up to `target`, asserting each is admitted.
fn start_up_to(governor: &mut ExportLimit, target: u64) {
    while governor.count() < target {
        assert!(
            governor.try_start(1).is_admitted(),
            "at {}",
            governor.count()
        );
    }
}

/// A governor with WebRTC enabled.
fn webrtc() -> ExportLimit {
    let mut governor = ExportLimit::new();
    governor.set_webrtc(true);
    governor
}

#[test]
fn the_approaching_alarm_is_raised_exactly_at_2250_of_2500() {
    let mut governor = ExportLimit::new();
    start_up_to(&mut governor, 2249);
    assert_eq!(alarms(&mut governor), []);
    assert!(governor.try_start(1).is_admitted());
    let alarm = governor.poll_alarm();
    assert_eq!(
        alarm,
        Some(ExportLimitAlarm {
            kind: Approaching,
            state: Raised,
            count: 2250,
            limit: 2500,
            low_watermark: 2475,
        })
    );
    assert_eq!(
        alarm.map(|a| a.to_string()).as_deref(),
        Some("Export control limit approaching: 2250 of 2500 encrypted sessions in use")
    );
    start_up_to(&mut governor, 2499);
    assert_eq!(alarms(&mut governor), [], "raised once per crossing");
}

#[test]
fn the_reached_alarm_is_raised_exactly_at_2500_and_refuses_until_below_2475() {
    let mut governor = ExportLimit::new();
    start_up_to(&mut governor, 2499);
    assert_eq!(alarms(&mut governor), [(Approaching, Raised, 2250)]);
    assert!(governor.admitting());
    assert!(governor.try_start(1).is_admitted());
    assert!(!governor.admitting());
    assert_eq!(
        governor.poll_alarm().map(|a| a.to_string()).as_deref(),
        Some(
            "Export control limit reached: 2500 of 2500 encrypted sessions in use; \
             new ones are refused until fewer than 2475 are in use"
        )
    );
    assert_eq!(governor.try_start(1), Admission::RefusedAtLimit);
    for count in (2475..2500).rev() {
        governor.end(1);
        assert_eq!(governor.count(), count);
        assert_eq!(
            governor.try_start(1),
            Admission::RefusedAtLimit,
            "at {count}"
        );
        assert_eq!(governor.headroom(), Some(0));
    }
    assert_eq!(
        alarms(&mut governor),
        [],
        "the reached alarm holds down to 2475"
    );
    governor.end(1);
    assert!(governor.admitting());
    assert_eq!(alarms(&mut governor), [(Reached, Cleared, 2474)]);
    assert_eq!(governor.headroom(), Some(26));
    assert!(governor.try_start(1).is_admitted());
    assert_eq!(governor.count(), 2475);
}

#[test]
fn the_approaching_alarm_clears_below_2250_and_is_raised_again_on_the_next_crossing() {
    let mut governor = ExportLimit::new();
    start_up_to(&mut governor, 2250);
    assert_eq!(alarms(&mut governor), [(Approaching, Raised, 2250)]);
    governor.end(1);
    assert_eq!(alarms(&mut governor), [(Approaching, Cleared, 2249)]);
    assert!(governor.try_start(1).is_admitted());
    assert_eq!(alarms(&mut governor), [(Approaching, Raised, 2250)]);
}

#[test]
fn with_webrtc_the_alarms_are_at_2020_and_2244_and_admission_resumes_below_2222() {
    let mut governor = webrtc();
    assert_eq!(
        (
            governor.limit(),
            governor.approaching_threshold(),
            governor.low_watermark()
        ),
        (2244, 2020, 2222)
    );
    start_up_to(&mut governor, 2019);
    assert_eq!(alarms(&mut governor), []);
    start_up_to(&mut governor, 2020);
    assert_eq!(
        governor.poll_alarm().map(|a| a.to_string()).as_deref(),
        Some("Export control limit approaching: 2020 of 2244 encrypted sessions in use")
    );
    start_up_to(&mut governor, 2244);
    assert_eq!(
        governor.poll_alarm().map(|a| a.to_string()).as_deref(),
        Some(
            "Export control limit reached: 2244 of 2244 encrypted sessions in use; \
             new ones are refused until fewer than 2222 are in use"
        )
    );
    governor.end(22);
    assert_eq!(governor.count(), 2222);
    assert_eq!(governor.try_start(1), Admission::RefusedAtLimit);
    governor.end(1);
    assert_eq!(alarms(&mut governor), [(Reached, Cleared, 2221)]);
    assert!(governor.try_start(1).is_admitted());
}

#[test]
fn webrtc_switched_on_above_2244_refuses_until_below_2222_and_raises_reached_once() {
    let mut governor = ExportLimit::new();
    start_up_to(&mut governor, 2300);
    assert_eq!(alarms(&mut governor), [(Approaching, Raised, 2250)]);
    governor.set_webrtc(true);
    assert_eq!(
        governor.poll_alarm().map(|a| a.to_string()).as_deref(),
        Some(
            "Export control limit reached: 2300 of 2244 encrypted sessions in use; \
             new ones are refused until fewer than 2222 are in use"
        )
    );
    assert_eq!(governor.poll_alarm(), None, "raised once");
    governor.set_webrtc(true);
    assert_eq!(
        governor.poll_alarm(),
        None,
        "enabling it again changes nothing"
    );
    governor.end(78);
    assert_eq!(governor.count(), 2222);
    assert_eq!(governor.try_start(1), Admission::RefusedAtLimit);
    assert_eq!(alarms(&mut governor), []);
    governor.end(1);
    assert_eq!(alarms(&mut governor), [(Reached, Cleared, 2221)]);
    assert!(governor.try_start(1).is_admitted());
}

#[test]
fn webrtc_switched_on_below_2244_only_lowers_the_limit() {
    let mut governor = ExportLimit::new();
    start_up_to(&mut governor, 2100);
    governor.set_webrtc(true);
    assert_eq!(alarms(&mut governor), [(Approaching, Raised, 2100)]);
    assert_eq!(
        governor.try_start(145),
        Admission::RefusedNoRoom { headroom: 144 }
    );
    assert!(governor.try_start(144).is_admitted());
    assert_eq!(alarms(&mut governor), [(Reached, Raised, 2244)]);
}

#[test]
fn webrtc_switched_off_applies_the_2500_rules_to_the_current_count() {
    let mut governor = webrtc();
    start_up_to(&mut governor, 2244);
    alarms(&mut governor);
    governor.set_webrtc(false);
    // 2244 is below 2475: admission resumes and both alarms clear (2244 < 2250).
    assert_eq!(
        alarms(&mut governor),
        [(Reached, Cleared, 2244), (Approaching, Cleared, 2244)]
    );
    assert!(governor.try_start(256).is_admitted());
    assert_eq!(governor.count(), 2500);
}

#[test]
fn a_webrtc_change_while_refusing_keeps_refusing_without_a_new_alarm() {
    let mut governor = ExportLimit::new();
    start_up_to(&mut governor, 2500);
    governor.end(20); // 2480: refused until below 2475
    alarms(&mut governor);
    governor.set_webrtc(true);
    assert_eq!(alarms(&mut governor), []);
    assert_eq!(governor.low_watermark(), 2222);
    governor.end(250); // 2230
    assert_eq!(governor.try_start(1), Admission::RefusedAtLimit);
    governor.set_webrtc(false); // 2230 < 2475: resumes
    assert_eq!(
        alarms(&mut governor),
        [(Reached, Cleared, 2230), (Approaching, Cleared, 2230)]
    );
    assert!(governor.admitting());
}

#[test]
fn the_cap_is_lifted_only_while_the_export_key_is_held() {
    assert_eq!(EXPORT_LIMIT_KEY_FEATURE, "EXPY_Export_Limit_Key");
    let mut governor = ExportLimit::new();
    assert!(governor.is_capped(), "capped by default");
    start_up_to(&mut governor, 2500);
    alarms(&mut governor);
    governor.set_export_key_held(true);
    assert!(!governor.is_capped());
    assert_eq!(
        alarms(&mut governor),
        [(Reached, Cleared, 2500), (Approaching, Cleared, 2500)]
    );
    assert_eq!(governor.headroom(), None);
    assert!(governor.try_start(1000).is_admitted());
    assert_eq!(
        alarms(&mut governor),
        [],
        "no alarms while the cap is lifted"
    );
    assert_eq!(governor.count(), 3500);

    governor.set_export_key_held(false);
    assert!(governor.is_capped());
    assert_eq!(
        alarms(&mut governor),
        [(Approaching, Raised, 3500), (Reached, Raised, 3500)]
    );
    assert_eq!(governor.try_start(1), Admission::RefusedAtLimit);
    governor.end(1025);
    assert_eq!(governor.count(), 2475);
    assert_eq!(governor.try_start(1), Admission::RefusedAtLimit);
    governor.end(1);
    assert!(governor.try_start(1).is_admitted());
}

#[test]
fn a_vcs_is_always_capped_even_with_the_export_key() {
    let mut governor = ExportLimit::new();
    governor.set_vcs(true);
    governor.set_export_key_held(true);
    assert!(governor.is_capped());
    start_up_to(&mut governor, 2500);
    assert_eq!(governor.try_start(1), Admission::RefusedAtLimit);
    assert_eq!(
        alarms(&mut governor),
        [(Approaching, Raised, 2250), (Reached, Raised, 2500)]
    );

    // An Expressway holding the key is uncapped; marking it a VCS caps it at once.
    let mut governor = ExportLimit::new();
    governor.set_export_key_held(true);
    assert!(governor.try_start(3000).is_admitted());
    governor.set_vcs(true);
    assert_eq!(
        alarms(&mut governor),
        [(Approaching, Raised, 3000), (Reached, Raised, 3000)]
    );
    assert!(!governor.admitting());
}

#[test]
fn unmatched_ends_never_take_the_count_below_zero() {
    let mut governor = ExportLimit::new();
    assert_eq!(governor.end(1), 0);
    assert_eq!(governor.end(u32::MAX), 0);
    assert_eq!(governor.count(), 0);
    assert!(governor.try_start(3).is_admitted());
    assert_eq!(governor.end(5), 3);
    assert_eq!(governor.count(), 0);
    assert_eq!(alarms(&mut governor), []);
    assert!(governor.try_start(2500).is_admitted());
}

#[test]
fn a_batch_larger_than_the_limit_is_refused_and_changes_nothing() {
    let mut governor = ExportLimit::new();
    let before = governor.clone();
    assert_eq!(
        governor.try_start(u32::MAX),
        Admission::RefusedNoRoom { headroom: 2500 }
    );
    assert_eq!(governor, before);
    assert_eq!(governor.poll_alarm(), None);
}

// ---------------------------------------------------------------------------------------------
// Property: the governor behaves like the SPEC's rules, written naively.
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Op {
    Start(u32),
    End(u32),
    /// Starts or ends sessions to bring the count to `delta` from a threshold of the current
    /// limit (0: approaching, 1: low watermark, 2: limit), so that random sequences land exactly
    /// on the edges; run() turns it into a `Start` or `End`.
    Towards {
        threshold: usize,
        delta: i64,
    },
    WebRtc(bool),
    Vcs(bool),
    Key(bool),
}

/// Sizes that walk around every threshold: single sessions, medium steps, jumps to near the
/// limits, and the extremes.
fn size() -> impl Strategy<Value = u32> {
    prop_oneof![
        4 => 0u32..4,
        3 => 0u32..300,
        2 => 1990u32..2560,
        1 => Just(u32::MAX),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => size().prop_map(Op::Start),
        4 => size().prop_map(Op::End),
        6 => (0usize..3, -2i64..=2).prop_map(|(threshold, delta)| Op::Towards { threshold, delta }),
        1 => any::<bool>().prop_map(Op::WebRtc),
        1 => any::<bool>().prop_map(Op::Vcs),
        1 => any::<bool>().prop_map(Op::Key),
    ]
}

/// SPEC §7 as stated: f64 formulas, every rule re-evaluated after every operation.
#[derive(Debug, Default)]
struct Model {
    n: u64,
    webrtc: bool,
    vcs: bool,
    key: bool,
    refusing: bool,
    approaching: bool,
}

impl Model {
    /// Applies `op`; returns the admission for a start and appends the alarm changes.
    fn step(&mut self, op: Op, out: &mut Vec<ExportLimitAlarm>) -> Option<Admission> {
        let l = |m: &Model| if m.webrtc { 2244.0 } else { 2500.0 };
        let capped = |m: &Model| m.vcs || !m.key;
        let mut admission = None;
        match op {
            Op::Start(k) if k == 0 || !capped(self) => {
                self.n = self.n.saturating_add(u64::from(k));
                admission = Some(Admission::Admitted);
            }
            Op::Start(_) if self.refusing => admission = Some(Admission::RefusedAtLimit),
            Op::Start(k) if (self.n + u64::from(k)) as f64 > l(self) => {
                let headroom = l(self) as u64 - self.n;
                admission = Some(Admission::RefusedNoRoom { headroom });
            }
            Op::Start(k) => {
                self.n += u64::from(k);
                admission = Some(Admission::Admitted);
            }
            Op::End(k) => self.n = self.n.saturating_sub(u64::from(k)),
            Op::Towards { .. } => unreachable!("run() resolves it"),
            Op::WebRtc(on) => self.webrtc = on,
            Op::Vcs(on) => self.vcs = on,
            Op::Key(held) => self.key = held,
        }
        let (limit, n) = (l(self), self.n as f64);
        let low = limit - (limit / 100.0).round();
        let refusing = capped(self) && (n >= limit || (self.refusing && n >= low));
        let approaching = capped(self) && n >= (limit * 9.0 / 10.0).ceil();
        let alarm = |kind, state| ExportLimitAlarm {
            kind,
            state,
            count: self.n,
            limit: limit as u32,
            low_watermark: low as u32,
        };
        if self.refusing && !refusing {
            out.push(alarm(Reached, Cleared));
        }
        if approaching != self.approaching {
            out.push(alarm(
                Approaching,
                if approaching { Raised } else { Cleared },
            ));
        }
        if refusing && !self.refusing {
            out.push(alarm(Reached, Raised));
        }
        (self.refusing, self.approaching) = (refusing, approaching);
        admission
    }
}

/// What the property saw, to check that it exercised every rule.
#[derive(Default)]
struct Seen {
    alarms: [[usize; 2]; 2],
    at_limit: usize,
    no_room: usize,
    webrtc_refusals: usize,
    uncapped_above_limit: usize,
}

fn run(ops: &[Op], seen: &mut Seen) -> Result<(), TestCaseError> {
    let mut governor = ExportLimit::new();
    let mut model = Model::default();
    let mut expected = Vec::new();
    for &op in ops {
        let op = match op {
            Op::Towards { threshold, delta } => {
                let edges: [u64; 3] = if model.webrtc {
                    [2020, 2222, 2244]
                } else {
                    [2250, 2475, 2500]
                };
                let target = edges[threshold].saturating_add_signed(delta);
                let k = u32::try_from(target.abs_diff(model.n)).unwrap_or(u32::MAX);
                if target >= model.n {
                    Op::Start(k)
                } else {
                    Op::End(k)
                }
            }
            op => op,
        };
        let admission = match op {
            Op::Start(k) => Some(governor.try_start(k)),
            Op::End(k) => {
                let before = governor.count();
                let ended = governor.end(k);
                prop_assert_eq!(u64::from(ended), before.min(u64::from(k)));
                None
            }
            Op::WebRtc(on) => {
                governor.set_webrtc(on);
                None
            }
            Op::Vcs(on) => {
                governor.set_vcs(on);
                None
            }
            Op::Key(held) => {
                governor.set_export_key_held(held);
                None
            }
            Op::Towards { .. } => unreachable!("resolved above"),
        };
        expected.clear();
        let model_admission = model.step(op, &mut expected);
        let actual: Vec<_> = std::iter::from_fn(|| governor.poll_alarm()).collect();
        prop_assert_eq!(admission, model_admission, "after {:?}", op);
        prop_assert_eq!(&actual, &expected, "after {:?}", op);
        prop_assert_eq!(governor.count(), model.n, "after {:?}", op);
        prop_assert_eq!(governor.admitting(), !model.refusing);
        prop_assert_eq!(governor.is_capped(), model.vcs || !model.key);
        prop_assert_eq!(governor.alarm_active(Approaching), model.approaching);
        prop_assert_eq!(governor.alarm_active(Reached), model.refusing);

        for alarm in &actual {
            let kind = usize::from(alarm.kind == Reached);
            seen.alarms[kind][usize::from(alarm.state == Cleared)] += 1;
        }
        match admission {
            Some(Admission::RefusedAtLimit) if governor.webrtc() => seen.webrtc_refusals += 1,
            Some(Admission::RefusedAtLimit) => seen.at_limit += 1,
            Some(Admission::RefusedNoRoom { .. }) => seen.no_room += 1,
            _ => {}
        }
        if !governor.is_capped() && governor.count() > 2500 {
            seen.uncapped_above_limit += 1;
        }
    }
    Ok(())
}

#[test]
fn the_governor_matches_the_reference_model_on_random_sequences() {
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 512,
        ..ProptestConfig::default()
    });
    let seen = RefCell::new(Seen::default());
    let result = runner.run(&proptest::collection::vec(op(), 1..150), |ops| {
        run(&ops, &mut seen.borrow_mut())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let seen = seen.into_inner();
    assert!(
        seen.alarms.iter().flatten().all(|&n| n > 0),
        "every alarm was raised and cleared: {:?}",
        seen.alarms
    );
    assert!(seen.at_limit > 0 && seen.webrtc_refusals > 0 && seen.no_room > 0);
    assert!(seen.uncapped_above_limit > 0);
}
