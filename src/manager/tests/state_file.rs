//! The saved state: round trips of managers built by random histories, and decoding of
//! damaged or forged bytes without panics.

use proptest::prelude::*;
use ring::digest;

use super::*;
use catalogue::{UCM_BASIC, UCM_ENHANCED};

const OWN_TAG: &str = "regid.2020-01.com.cisco.Own,1.0_3585abe5-bf6a-49ed-a8d6-a17463d0e734";

/// One step of a manager's life.
#[derive(Clone, Debug)]
enum Op {
    SmartAccount(u8),
    VirtualAccount(u8, u8),
    Pool {
        va: u8,
        tag: u8,
        count: u32,
        named: bool,
    },
    Token {
        va: u8,
        days: i64,
        uses: Option<u32>,
        export: bool,
    },
    Revoke(u8),
    Register {
        device: u8,
        token: u8,
    },
    Authorize {
        device: u8,
        sequence: u64,
        basic: u32,
        own: u32,
    },
    RenewId(u8),
    Deregister(u8),
    Rotate,
    MaxVersion(u32),
    Wait(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..3).prop_map(Op::SmartAccount),
        (0u8..3, 0u8..3).prop_map(|(s, v)| Op::VirtualAccount(s, v)),
        (0u8..4, 0u8..3, 0u32..50, any::<bool>()).prop_map(|(va, tag, count, named)| Op::Pool {
            va,
            tag,
            count,
            named
        }),
        (
            0u8..4,
            1i64..60,
            proptest::option::of(1u32..3),
            any::<bool>()
        )
            .prop_map(|(va, days, uses, export)| Op::Token {
                va,
                days,
                uses,
                export
            }),
        (0u8..4).prop_map(Op::Revoke),
        (0u8..4, 0u8..4).prop_map(|(device, token)| Op::Register { device, token }),
        (0u8..4, 0u64..4, 0u32..5, 0u32..3).prop_map(|(device, sequence, basic, own)| {
            Op::Authorize {
                device,
                sequence,
                basic,
                own,
            }
        }),
        (0u8..4).prop_map(Op::RenewId),
        (0u8..4).prop_map(Op::Deregister),
        Just(Op::Rotate),
        (1u32..3).prop_map(Op::MaxVersion),
        (0i64..200).prop_map(Op::Wait),
    ]
}

/// Sends a request and adopts the piid of a successful registration; answers are not
/// verified (a repeated registration may carry an identity signed by a retired key).
fn send(m: &mut Manager, d: &mut Device, body: RequestBody, now: DateTime<Utc>) {
    let (raw, _) = d.request(body, now);
    let answer = m.handle(&raw, now);
    let Ok(parsed) = decode_response(&answer, MAX_REQUEST_LEN) else {
        return; // an identity beyond year 9999 does not parse back
    };
    let response = parsed.response;
    if response.kind == RequestKind::Register && response.status == ResponseStatus::Ok {
        d.piid = response.piid;
    }
    if response.kind == RequestKind::Deregister && response.status == ResponseStatus::Ok {
        d.piid = None;
    }
}

/// A manager after `ops`.
fn build(ops: &[Op]) -> Manager {
    let mut m = manager();
    let mut now = t0();
    let mut devices: Vec<Device> = (1..=4).map(Device::new).collect();
    let mut tokens: Vec<Token> = Vec::new();
    let tags = [UCM_BASIC, UCM_ENHANCED, OWN_TAG];
    for op in ops {
        let vas = m.virtual_accounts();
        let va = |i: u8| vas[usize::from(i) % vas.len()].clone();
        match op.clone() {
            Op::SmartAccount(n) => {
                let _ = m.add_smart_account(&format!("Smart {n}"));
            }
            Op::VirtualAccount(s, v) => {
                let _ = m.add_virtual_account(&format!("Smart {s}"), &format!("VA {v}"));
            }
            Op::Pool {
                va: i,
                tag: t,
                count,
                named,
            } => {
                let names = named.then_some(("Shown name", "A description"));
                let _ = m.add_licenses(
                    &va(i),
                    &tag(tags[usize::from(t)]),
                    count,
                    names.map(|n| n.0),
                    names.map(|n| n.1),
                );
            }
            Op::Token {
                va: i,
                days: d,
                uses,
                export,
            } => {
                let options = TokenOptions {
                    expires_after: days(d),
                    max_uses: uses,
                    export_controlled: export,
                };
                tokens.push(m.create_token(&va(i), options, now).unwrap());
            }
            Op::Revoke(i) => {
                if let Some(t) = tokens.get(usize::from(i)) {
                    m.revoke_token(t).unwrap();
                }
            }
            Op::Register { device, token } => {
                if let Some(t) = tokens.get(usize::from(token)).cloned() {
                    let d = &mut devices[usize::from(device)];
                    let body = d.register_body(&t);
                    send(&mut m, d, body, now);
                }
            }
            Op::Authorize {
                device,
                sequence,
                basic,
                own,
            } => {
                let body = usage_body(sequence, &[(UCM_BASIC, basic), (OWN_TAG, own)]);
                send(&mut m, &mut devices[usize::from(device)], body, now);
            }
            Op::RenewId(device) => {
                send(
                    &mut m,
                    &mut devices[usize::from(device)],
                    RequestBody::renew_id(),
                    now,
                );
            }
            Op::Deregister(device) => {
                let d = &mut devices[usize::from(device)];
                send(&mut m, d, RequestBody::deregister(), now);
            }
            Op::Rotate => {
                m.rotate_signing_key().unwrap();
            }
            Op::MaxVersion(v) => m.set_max_protocol_version(v),
            Op::Wait(d) => now += days(d),
        }
    }
    m
}

fn reload(bytes: &[u8]) -> Result<Manager, StateError> {
    Manager::load_state(bytes, Box::new(DeterministicRandom::new(99)))
}

fn v1(m: &Manager) -> Vec<u8> {
    crate::manager::state_file::v1_writer::encode(m)
}

fn assert_same(a: &Manager, b: &Manager) {
    assert_eq!(a.dump(), b.dump());
    assert_eq!(a.environment, b.environment);
    assert_eq!(a.max_protocol_version, b.max_protocol_version);
    assert_eq!(a.default_va, b.default_va);
    assert_eq!(a.trust_anchors(), b.trust_anchors());
    assert_eq!(a.instances(), b.instances());
}

/// `bytes` with the digest recomputed, so that the decoder proper sees the damage.
fn redigest(mut bytes: Vec<u8>) -> Vec<u8> {
    let len = bytes.len().saturating_sub(32);
    bytes.truncate(len);
    let sum = digest::digest(&digest::SHA256, &bytes);
    bytes.extend_from_slice(sum.as_ref());
    bytes
}

fn sample() -> Manager {
    build(&[
        Op::SmartAccount(1),
        Op::VirtualAccount(1, 1),
        Op::Pool {
            va: 0,
            tag: 0,
            count: 10,
            named: false,
        },
        Op::Pool {
            va: 1,
            tag: 2,
            count: 3,
            named: true,
        },
        Op::Token {
            va: 0,
            days: 30,
            uses: Some(2),
            export: true,
        },
        Op::Register {
            device: 0,
            token: 0,
        },
        Op::Authorize {
            device: 0,
            sequence: 1,
            basic: 4,
            own: 1,
        },
        Op::Rotate,
        Op::Token {
            va: 1,
            days: 5,
            uses: None,
            export: false,
        },
        Op::Revoke(1),
        Op::Register {
            device: 1,
            token: 0,
        },
        Op::Deregister(1),
    ])
}

#[test]
fn a_saved_manager_loads_unchanged_and_keeps_working() {
    let m = sample();
    let bytes = m.save_state();
    assert!(bytes.starts_with(b"SQLite format 3\0"));
    let mut loaded = reload(&bytes).unwrap();
    assert_same(&m, &loaded);
    assert_eq!(loaded.instances().len(), 1);
    assert_eq!(loaded.trust_anchors().len(), 2);
    // The loaded manager renews the instance's authorization, signing with the current key.
    let mut d = Device::new(1);
    d.piid = Some(loaded.instances()[0].piid);
    let g = grant(authorize(&mut loaded, &mut d, 2, &[(UCM_BASIC, 5)], t0()));
    assert_eq!(entry(&g, UCM_BASIC).authorized, 5);
}

#[test]
fn a_version_1_state_imports_everything_it_holds() {
    let m = sample();
    let bytes = v1(&m);
    assert!(bytes.starts_with(STATE_MAGIC));
    let mut loaded = reload(&bytes).unwrap();
    // Everything version 1 holds, and nothing else, came across.
    assert_eq!(v1(&loaded), bytes);
    assert_eq!(loaded.trust_anchors(), m.trust_anchors());
    assert_eq!(loaded.instances(), m.instances());
    // What is imported is written as the current version, and keeps working.
    let again = reload(&loaded.save_state()).unwrap();
    assert_same(&loaded, &again);
    let mut d = Device::new(1);
    d.piid = Some(loaded.instances()[0].piid);
    let g = grant(authorize(&mut loaded, &mut d, 2, &[(UCM_BASIC, 5)], t0()));
    assert_eq!(entry(&g, UCM_BASIC).authorized, 5);
}

#[test]
fn times_beyond_the_snapshot_range_round_trip() {
    let mut m = manager();
    let va = m.default_virtual_account();
    let late: DateTime<Utc> = "9999-12-30T00:00:00Z".parse().unwrap();
    let token = m.create_token(&va, TokenOptions::default(), late).unwrap();
    // The token expires in year 10000, which the state must still store; the identity is
    // clamped to the end of 9999, the last date the wire can carry.
    let mut d = Device::new(1);
    let body = d.register_body(&token);
    send(&mut m, &mut d, body, late);
    let end_of_9999: DateTime<Utc> = "9999-12-31T23:59:59Z".parse().unwrap();
    assert_eq!(m.instances()[0].identity_not_after, end_of_9999);
    let loaded = reload(&m.save_state()).unwrap();
    assert_same(&m, &loaded);
    let from_v1 = reload(&v1(&m)).unwrap();
    assert_eq!(from_v1.instances(), m.instances());
}

#[test]
fn wrong_magic_version_and_damage_are_typed_errors() {
    let bytes = v1(&sample());
    assert_eq!(reload(b"").err(), Some(StateError::WrongMagic));
    assert_eq!(
        reload(b"SMAGSNAP\0\x01").err(),
        Some(StateError::WrongMagic)
    );
    let mut newer = bytes.clone();
    newer[9] = 2;
    assert_eq!(
        reload(&newer).err(),
        Some(StateError::UnsupportedVersion(2))
    );
    for len in 0..bytes.len() {
        assert!(reload(&bytes[..len]).is_err(), "truncated to {len}");
    }
    for i in 10..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x40;
        assert!(
            matches!(reload(&b), Err(StateError::Corrupt(_))),
            "flipped byte {i}"
        );
    }
    let mut longer = bytes.clone();
    longer.insert(bytes.len() - 32, 0);
    assert!(matches!(
        reload(&redigest(longer)),
        Err(StateError::Corrupt(_))
    ));
}

#[test]
fn a_database_of_a_newer_version_or_not_ours_is_refused() {
    let m = sample();
    let bytes = m.save_state();
    // user_version is the big-endian integer at offset 60 of a SQLite file.
    let mut newer = bytes.clone();
    newer[60..64].copy_from_slice(&u32::from(STATE_VERSION + 1).to_be_bytes());
    assert_eq!(
        reload(&newer).err(),
        Some(StateError::UnsupportedVersion(STATE_VERSION + 1))
    );
    // application_id is at offset 68.
    let mut foreign = bytes.clone();
    foreign[68..72].copy_from_slice(&0u32.to_be_bytes());
    assert_eq!(reload(&foreign).err(), Some(StateError::WrongMagic));
    for len in [0, 16, 100, bytes.len() / 2] {
        assert!(reload(&bytes[..len]).is_err(), "truncated to {len}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn any_history_round_trips(ops in proptest::collection::vec(op(), 0..24)) {
        let m = build(&ops);
        let loaded = reload(&m.save_state()).unwrap();
        assert_same(&m, &loaded);
        let bytes = v1(&m);
        let imported = reload(&bytes).unwrap();
        prop_assert_eq!(v1(&imported), bytes);
        prop_assert_eq!(imported.instances(), m.instances());
    }

    /// Damage behind a valid digest reaches the decoder proper: an error or a manager, never
    /// a panic, and whatever loads saves again and loads the same.
    #[test]
    fn damaged_content_with_a_valid_digest_never_panics(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = v1(&sample());
        for (at, byte) in &edits {
            let i = 10 + at.index(bytes.len() - 42);
            bytes[i] = *byte;
        }
        if let Ok(m) = reload(&redigest(bytes)) {
            let again = reload(&m.save_state()).unwrap();
            assert_same(&m, &again);
        }
    }

    #[test]
    fn random_content_with_a_valid_header_never_panics(
        payload in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        let mut bytes = STATE_MAGIC.to_vec();
        bytes.extend_from_slice(&1u16.to_be_bytes());
        bytes.extend_from_slice(&payload);
        bytes.extend_from_slice(&[0; 32]);
        prop_assert!(reload(&redigest(bytes)).is_err());
    }
}
