//! Offline reservation codes (SPEC §6): round trips, the completeness of the request-code and
//! return-code checks, confirmation-code spellings, SLR signature tolerance (CR/LF yes, spaces
//! no), trust, and the hand-repaired seed samples.

use chrono::{DateTime, NaiveDate, Utc};
use proptest::prelude::*;
use smart_agent::codes::{
    AuthorizationCode, CodeError, ConfirmationCode, Defect, RequestCode, ReturnCode, ReturnKind,
    SlrCode,
};
use smart_agent::crypto::{DeviceKey, ManagerSigningKey, SignatureError};
use smart_agent::{Environment, TrustAnchor, Udi, Uuid};

const UCM_UDI: &str = "PID:UCM,SN:37624,UUID:6fe83addc80240bc92dc071ac7a37624";
const EXPRESSWAY_UDI: &str = "PExpressway,S08F8FF3C,V1.0,H320aa69d";

fn ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap()
}

/// Printable ASCII except whitespace, and a few characters from further away.
fn substitutes() -> Vec<char> {
    (0x21u8..=0x7e)
        .map(char::from)
        .chain(['é', 'Ω', '０', '\u{0}'])
        .collect()
}

fn arb_value() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._/-]{1,12}"
}

prop_compose! {
    fn arb_udi()(pid in arb_value(), sn in proptest::option::of(arb_value()),
                 vid in proptest::option::of(arb_value()), uuid in proptest::option::of(any::<[u8; 16]>()),
                 hid in proptest::option::of(arb_value()), mac in proptest::option::of(arb_value())) -> Udi {
        let mut udi = Udi::new(&pid).unwrap();
        if let Some(v) = sn { udi = udi.with_serial(&v).unwrap(); }
        if let Some(v) = vid { udi = udi.with_version_id(&v).unwrap(); }
        if let Some(v) = uuid { udi = udi.with_uuid(Uuid(v)); }
        if let Some(v) = hid { udi = udi.with_host_id(&v).unwrap(); }
        if let Some(v) = mac { udi = udi.with_mac(&v).unwrap(); }
        udi
    }
}

/// Inserts the separators `ws` (in turn) before the characters at the given (wrapped) indices.
fn sprinkle(text: &str, at: &[usize], ws: &[char]) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        for (k, &p) in at.iter().enumerate() {
            if p % (text.len() + 1) == i {
                out.push(ws[k % ws.len()]);
            }
        }
        out.push(c);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Request codes
// ---------------------------------------------------------------------------------------------

proptest! {
    #[test]
    fn request_codes_round_trip(udi in arb_udi(), key in any::<[u8; 32]>(),
                                at in proptest::collection::vec(any::<usize>(), 0..6)) {
        let code = RequestCode::new(udi, key);
        let text = code.to_string();
        prop_assert_eq!(RequestCode::parse(&text).unwrap(), code.clone());
        prop_assert_eq!(text.parse::<RequestCode>().unwrap(), code.clone());
        // Pasted into the manager with line breaks, tabs and spaces: the same code.
        let pasted = sprinkle(&text, &at, &[' ', '\n', '\t', '\r']);
        prop_assert_eq!(RequestCode::parse(&pasted).unwrap(), code);
    }
}

/// Every substitution of one character by another and every swap of unequal neighbours is
/// refused; where only the checksum can tell (the result is otherwise a well-formed code) it is
/// the checksum that refuses.
fn assert_request_code_is_complete(code: &RequestCode) {
    let text = code.to_string();
    let chars: Vec<char> = text.chars().collect();
    let last_dash = text.rfind('-').unwrap();
    let key_dash = text[..last_dash].rfind('-').unwrap();
    let mut checked = 0;
    for i in 0..chars.len() {
        for c in substitutes() {
            if c == chars[i] {
                continue;
            }
            let mut v = chars.clone();
            v[i] = c;
            let variant: String = v.iter().collect();
            let result = RequestCode::parse(&variant);
            assert!(result.is_err(), "{variant} was accepted");
            // Inside the key, a base58 character leaves a well-formed code: the checksum refuses.
            if i > key_dash
                && i < last_dash
                && smart_agent::codes::base58::decode(&c.to_string()).is_ok()
            {
                assert_eq!(
                    result,
                    Err(CodeError::InvalidRequest(Defect::BadChecksum)),
                    "{variant}"
                );
            }
            checked += 1;
        }
    }
    for i in 0..chars.len() - 1 {
        if chars[i] == chars[i + 1] {
            continue;
        }
        let mut v = chars.clone();
        v.swap(i, i + 1);
        let variant: String = v.iter().collect();
        let result = RequestCode::parse(&variant);
        assert!(result.is_err(), "{variant} was accepted");
        if i > 2 && i + 1 < last_dash && chars[i] != '-' && chars[i + 1] != '-' {
            assert_eq!(
                result,
                Err(CodeError::InvalidRequest(Defect::BadChecksum)),
                "{variant}"
            );
        }
        checked += 1;
    }
    assert!(checked > 90 * chars.len());
}

#[test]
fn every_substitution_and_swap_of_a_request_code_is_refused() {
    for (udi, key) in [
        (UCM_UDI.parse::<Udi>().unwrap(), [0x42; 32]),
        (Udi::parse_request_form(EXPRESSWAY_UDI).unwrap(), [0xff; 32]),
        // A PID with dashes, and a key with leading zero bytes (leading '1's).
        (
            Udi::new("CUCM-VM-2").unwrap().with_serial("A-1").unwrap(),
            {
                let mut k = [0x11; 32];
                k[0] = 0;
                k[1] = 0;
                k
            },
        ),
    ] {
        assert_request_code_is_complete(&RequestCode::new(udi, key));
    }
}

#[test]
fn request_code_errors_say_what_is_wrong() {
    let code = RequestCode::new(UCM_UDI.parse().unwrap(), [7; 32]);
    let text = code.to_string();
    assert_eq!(code.udi().to_string(), UCM_UDI);
    assert_eq!(
        RequestCode::parse(&text.replacen('2', "0", 1))
            .unwrap_err()
            .to_string(),
        "The Reservation Request Code is not valid: the check digits do not match (a character is mistyped or missing)"
    );
    // Case-exact: lowercase check digits are named.
    assert_eq!(
        RequestCode::parse("CB-PUCM-2-0a").unwrap_err().to_string(),
        "The Reservation Request Code is not valid: 'a' at position 12 is not an uppercase hexadecimal digit"
    );
    // The key starts after `CB-`, the 45-character UDI and a dash; leading spaces count.
    let mut chars: Vec<char> = text.chars().collect();
    chars[50] = '0';
    let with_zero: String = chars.into_iter().collect();
    let err = RequestCode::parse(&format!("  {with_zero}")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "The Reservation Request Code is not valid: '0' at position 53 is not a base58 character"
    );
    // A long-form UDI is not the request-code form.
    let head = format!("CB-{UCM_UDI}-2-");
    let long_form = format!("{head}{:02X}", weighted(head.as_bytes()));
    assert!(RequestCode::parse(&long_form)
        .unwrap_err()
        .to_string()
        .starts_with(
            "The Reservation Request Code is not valid: the UDI is not in the P…,S…,U… form"
        ));
}

/// The documented checksum, written again from its description.
fn weighted(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .enumerate()
        .map(|(i, &b)| ((i % 250) as u32 + 1) * u32::from(b))
        .sum::<u32>()
        % 251
}

#[test]
fn the_request_checksum_is_the_documented_one() {
    let code = RequestCode::new(UCM_UDI.parse().unwrap(), [9; 32]);
    let text = code.to_string();
    let (head, check) = text.split_at(text.len() - 2);
    assert_eq!(format!("{:02X}", weighted(head.as_bytes())), check);
}

// ---------------------------------------------------------------------------------------------
// Return codes
// ---------------------------------------------------------------------------------------------

prop_compose! {
    fn arb_return()(installed in any::<bool>(), piid in any::<[u8; 16]>(),
                    t in 0i64..4_102_444_800_000, seed in any::<[u8; 32]>()) -> (ReturnCode, DeviceKey) {
        let kind = if installed { ReturnKind::Installed } else { ReturnKind::Authorization };
        let key = DeviceKey::from_seed(seed);
        (ReturnCode::sign(kind, Uuid(piid), ms(t), &key), key)
    }
}

proptest! {
    #[test]
    fn return_codes_round_trip((code, key) in arb_return(),
                               at in proptest::collection::vec(any::<usize>(), 0..6)) {
        let text = code.to_string();
        prop_assert!(text.starts_with('C'));
        prop_assert_eq!(ReturnCode::parse(&text).unwrap(), code.clone());
        let pasted = sprinkle(&text, &at, &[' ', '\n', '-']);
        let parsed = ReturnCode::parse(&pasted).unwrap();
        prop_assert_eq!(&parsed, &code);
        prop_assert_eq!(parsed.verify(&key.public_key()), Ok(()));
    }
}

fn assert_return_code_is_complete(code: &ReturnCode, key: &DeviceKey) {
    let public = key.public_key();
    let refused = |text: &str| {
        ReturnCode::parse(text)
            .and_then(|c| c.verify(&public))
            .is_err()
    };
    let text = code.to_string();
    let chars: Vec<char> = text.chars().collect();
    for i in 0..chars.len() {
        for c in substitutes() {
            if c == chars[i] {
                continue;
            }
            let mut v = chars.clone();
            v[i] = c;
            let variant: String = v.iter().collect();
            assert!(refused(&variant), "{variant} was accepted");
            // One base58 character for another: the check characters alone refuse it.
            if i > 0
                && chars[i] != '-'
                && smart_agent::codes::base58::decode(&c.to_string()).is_ok()
            {
                assert_eq!(
                    ReturnCode::parse(&variant),
                    Err(CodeError::InvalidReturn(Defect::BadChecksum)),
                    "{variant}"
                );
            }
        }
    }
    // Swaps of neighbouring characters of the code (dashes only group it: moving one changes
    // nothing, which the last assertion shows).
    let significant: Vec<char> = chars.iter().copied().filter(|&c| c != '-').collect();
    for i in 0..significant.len() - 1 {
        if significant[i] == significant[i + 1] {
            continue;
        }
        let mut v = significant.clone();
        v.swap(i, i + 1);
        let variant: String = v.iter().collect();
        assert!(refused(&variant), "{variant} was accepted");
        let want = if i == 0 {
            Defect::WrongPrefix { expected: "C" }
        } else {
            Defect::BadChecksum
        };
        assert_eq!(
            ReturnCode::parse(&variant),
            Err(CodeError::InvalidReturn(want))
        );
    }
    let moved_dash = format!("{}-{}", &text[..5], &text[5..].replacen('-', "", 1));
    assert_eq!(ReturnCode::parse(&moved_dash).as_ref(), Ok(code));
}

#[test]
fn every_substitution_and_swap_of_a_return_code_is_refused() {
    for (seed, kind, t) in [
        ([1u8; 32], ReturnKind::Installed, 1_634_998_815_362),
        ([2u8; 32], ReturnKind::Authorization, 0),
        ([3u8; 32], ReturnKind::Installed, 4_102_444_799_999),
    ] {
        let key = DeviceKey::from_seed(seed);
        let code = ReturnCode::sign(kind, Uuid([seed[0]; 16]), ms(t), &key);
        assert_return_code_is_complete(&code, &key);
    }
}

#[test]
fn a_forged_return_code_is_refused() {
    let key = DeviceKey::from_seed([5; 32]);
    let other = DeviceKey::from_seed([6; 32]);
    let forged = ReturnCode::sign(ReturnKind::Installed, Uuid([1; 16]), ms(7), &other);
    assert_eq!(
        forged.verify(&key.public_key()),
        Err(CodeError::ForgedReturn)
    );
    assert_eq!(
        CodeError::ForgedReturn.to_string(),
        "The Reservation Return Code is not signed by the reservation key of this product instance"
    );
}

// ---------------------------------------------------------------------------------------------
// Confirmation codes
// ---------------------------------------------------------------------------------------------

proptest! {
    #[test]
    fn confirmation_codes_round_trip_in_every_spelling(value in any::<u32>(), drop in 0usize..8,
                                                       upper in any::<u8>()) {
        let code = ConfirmationCode::new(value);
        let text = code.to_string();
        prop_assert_eq!(text.len(), 8);
        prop_assert_eq!(ConfirmationCode::parse(&text).unwrap(), code);
        // Leading zeros dropped (as many as there are, at most `drop`), in any case.
        let zeros = text.chars().take_while(|&c| c == '0').count().min(drop).min(7);
        let spelled: String = text[zeros..].chars().enumerate()
            .map(|(i, c)| if upper >> (i % 8) & 1 == 1 { c.to_ascii_uppercase() } else { c })
            .collect();
        prop_assert_eq!(code.check(&spelled), Ok(()));
    }

    #[test]
    fn any_other_confirmation_value_is_refused(value in any::<u32>(), other in any::<u32>()) {
        prop_assume!(value != other);
        let code = ConfirmationCode::new(value);
        prop_assert_eq!(code.check(&ConfirmationCode::new(other).to_string()), Err(CodeError::ConfirmationMismatch));
        prop_assert_eq!(code.check(&format!("{other:x}")), Err(CodeError::ConfirmationMismatch));
    }

    #[test]
    fn anything_but_1_to_8_hex_digits_is_refused(s in "\\PC{0,12}") {
        let ok = (1..=8).contains(&s.chars().count()) && s.chars().all(|c| c.is_ascii_hexdigit());
        prop_assert_eq!(ConfirmationCode::parse(&s).is_ok(), ok);
    }
}

#[test]
fn confirmation_seed_spellings() {
    let code = ConfirmationCode::new(0x04ef_63f1);
    for ok in ["4ef63f1", "04ef63f1", "4EF63F1", "04Ef63F1"] {
        assert_eq!(code.check(ok), Ok(()), "{ok}");
    }
    for bad in [
        "004ef63f1",
        "4ef63f",
        "4ef63f10",
        " 4ef63f1",
        "4ef63f1\n",
        "4ef6-3f1",
        "",
    ] {
        assert!(code.check(bad).is_err(), "{bad:?}");
    }
    assert_eq!(
        ConfirmationCode::parse("08715c93").unwrap().to_string(),
        "08715c93"
    );
}

// ---------------------------------------------------------------------------------------------
// The seed samples (tests/fixtures/codes/README.md)
// ---------------------------------------------------------------------------------------------

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/codes/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn our_anchors() -> Vec<TrustAnchor> {
    let key = ManagerSigningKey::generate().unwrap();
    vec![
        TrustAnchor::new(key.public_key().clone(), Environment::Production),
        TrustAnchor::new(
            ManagerSigningKey::generate().unwrap().public_key().clone(),
            Environment::Development,
        ),
    ]
}

#[test]
fn repaired_seed_samples_parse_and_fail_trust() {
    let anchors = our_anchors();
    let mut signed = Vec::new();
    for name in [
        "slr_003_638.xml",
        "slr_003_662.xml",
        "slr_003_696.xml",
        "slr_004_1217.xml",
    ] {
        let text = fixture(name);
        let code = SlrCode::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(code.signed_udi(), None, "{name}");
        assert_eq!(code.reservation_key(), None, "{name}");
        assert_eq!(code.environment(), None, "{name}");
        assert_eq!(code.signature().len(), 70, "{name}");
        for env in [Environment::Production, Environment::Development] {
            let err = code.verify(&anchors, env).unwrap_err();
            assert_eq!(
                err,
                CodeError::UntrustedAuthorization(SignatureError::Untrusted),
                "{name}"
            );
            assert_eq!(
                err.to_string(),
                "The Reservation Authorization Code is not signed by a trusted Smart Software Manager"
            );
        }
        assert_eq!(SlrCode::parse(&code.to_string()).unwrap(), code, "{name}");
        assert!(matches!(
            AuthorizationCode::parse(&text),
            Ok(AuthorizationCode::Slr(_))
        ));
        signed.push(code);
    }
    // The three copies of the 003 code are one code once line breaks are gone.
    assert_eq!(signed[0], signed[1]);
    assert_eq!(signed[0], signed[2]);
    let ucm = &signed[0];
    assert_eq!(
        ucm.piid().to_string(),
        "6191f5e5-319e-41ff-abba-be220ea4b2e1"
    );
    assert_eq!(ucm.timestamp(), ms(1_585_405_336_190));
    assert_eq!(
        ucm.informational_udi(),
        Some("P:UCM,S:edb16,U:d9a2c661-8fe1-4ce7-9e6f-bbc68a3edb16")
    );
    let e = ucm.entitlements();
    assert_eq!(e.len(), 2);
    assert_eq!(e[0].tag.name(), "UCM_CUWL");
    assert_eq!(e[0].end_date, NaiveDate::from_ymd_opt(2020, 8, 31));
    assert_eq!(e[1].display_name, "UC Manager Enhanced License (12.X)");
    assert_eq!(e[1].tag_description, "UC Manager Enhanced License");
    // 004:1217 spells the instance id <productId> and has no outer <udi>.
    let expressway = &signed[3];
    assert_eq!(
        expressway.piid().to_string(),
        "1b38f301-43e2-449a-9030-02f6e1d042d9"
    );
    assert_eq!(expressway.informational_udi(), None);
    assert_ne!(ucm.confirmation_code(), expressway.confirmation_code());
}

#[test]
fn the_unsigned_seed_sample_fails_as_unsigned() {
    let err = SlrCode::parse(&fixture("slr_004_1176_unsigned.xml")).unwrap_err();
    assert_eq!(err, CodeError::InvalidAuthorization(Defect::Unsigned));
    assert_eq!(
        err.to_string(),
        "The Reservation Authorization Code is not valid: it is not signed"
    );
    // Nothing else is wrong with it.
    let signed = fixture("slr_004_1176_unsigned.xml").replace(
        "</authorizationCode>",
        "</authorizationCode><signature>MEQCIA==</signature>",
    );
    let code = SlrCode::parse(&signed).unwrap();
    assert_eq!(code.entitlements().len(), 2);
    assert_eq!(code.entitlements()[0].subscription_id, None);
}

#[test]
fn the_damage_the_repairs_fixed_is_refused_with_what_is_wrong() {
    // 003:638's OCR'd tag `UCM_CUWL_12_0_…` is not a tag.
    let bad_tag = fixture("slr_003_638.xml").replace("UCM_CUWL,12.0_", "UCM_CUWL_12_0_");
    assert!(matches!(
        SlrCode::parse(&bad_tag),
        Err(CodeError::InvalidAuthorization(Defect::InvalidTag(_)))
    ));
    // 004:1217's empty <count>.
    let empty_count = fixture("slr_004_1217.xml").replace("<count>1</count>", "<count></count>");
    assert_eq!(
        SlrCode::parse(&empty_count).unwrap_err().to_string(),
        "The Reservation Authorization Code is not valid: <count> is empty"
    );
    // 003:696's lost `/` in `</entitlement>`.
    let unclosed = fixture("slr_003_696.xml").replacen("</entitlement>", "<entitlement>", 1);
    assert!(SlrCode::parse(&unclosed).is_err());
}

// ---------------------------------------------------------------------------------------------
// Codes our manager issues (feature "manager")
// ---------------------------------------------------------------------------------------------

#[cfg(feature = "manager")]
mod issued {
    use super::*;
    use smart_agent::codes::{
        LicenseType, PlrClaims, PlrCode, PlrEntitlement, ReservationKeyHash, SlrClaims,
        SlrEntitlement,
    };
    use smart_agent::Tag;
    use std::sync::OnceLock;

    const CUWL: &str = "regid.2017-02.com.cisco.UCM_CUWL,12.0_cc59375a-1cd8-4b36-8366-6f4d2abba965";
    const ENHANCED: &str =
        "regid.2016-07.com.cisco.UCM_Enhanced,12.0_66d0d1cf-4863-4761-91d0-d01d3eb1949a";
    const TP_ROOM: &str =
        "regid.2016-07.com.cisco.UCM_TelePresenceRoom,12.0_d9a71418-29e9-4c9a-9d3a-1366ebe38e7c";
    const RMS: &str = "regid.2018-09.com.cisco.EXPY_RMS,1.0_3585abe5-bf6a-49ed-a8d6-a17463d0e734";

    fn key() -> &'static ManagerSigningKey {
        static KEY: OnceLock<ManagerSigningKey> = OnceLock::new();
        KEY.get_or_init(|| ManagerSigningKey::generate().unwrap())
    }

    fn anchors(env: Environment) -> Vec<TrustAnchor> {
        vec![TrustAnchor::new(key().public_key().clone(), env)]
    }

    fn entitlement(tag: &str, count: u32, term: bool) -> SlrEntitlement {
        SlrEntitlement {
            tag: Tag::parse(tag).unwrap(),
            count,
            start_date: term.then(|| NaiveDate::from_ymd_opt(2027, 3, 4).unwrap()),
            end_date: term.then(|| NaiveDate::from_ymd_opt(2028, 3, 3).unwrap()),
            license_type: if term {
                LicenseType::Term
            } else {
                LicenseType::Perpetual
            },
            display_name: "UC Manager Enhanced License (12.X)".into(),
            tag_description: "UC Manager Enhanced License".into(),
            subscription_id: term.then(|| "Sub123456".into()),
        }
    }

    fn typical_slr(export: bool) -> SlrClaims {
        SlrClaims {
            piid: Uuid([0x61; 16]),
            timestamp: ms(1_806_314_400_123),
            udi: UCM_UDI.parse().unwrap(),
            reservation_key: ReservationKeyHash::of(&DeviceKey::from_seed([8; 32]).public_key()),
            environment: Environment::Production,
            export_controlled: export,
            entitlements: vec![
                entitlement(ENHANCED, 25, false),
                entitlement(CUWL, 10, true),
                entitlement(TP_ROOM, 2, false),
            ],
        }
    }

    fn typical_plr() -> PlrClaims {
        PlrClaims {
            piid: Uuid([0x33; 16]),
            timestamp: ms(1_806_314_400_123),
            udi: Udi::parse_request_form(EXPRESSWAY_UDI).unwrap(),
            reservation_key: ReservationKeyHash::of(&[4; 32]),
            environment: Environment::Production,
            export_controlled: false,
            entitlements: vec![
                PlrEntitlement {
                    tag: Tag::parse(RMS).unwrap(),
                    count: 500,
                },
                PlrEntitlement {
                    tag: Tag::parse(ENHANCED).unwrap(),
                    count: 20,
                },
            ],
        }
    }

    /// The lengths the module docs state, measured.
    #[test]
    fn lengths_of_typical_codes() {
        let request = RequestCode::new(
            UCM_UDI.parse().unwrap(),
            DeviceKey::from_seed([8; 32]).public_key(),
        )
        .to_string();
        let slr_len = |n: usize| {
            let mut claims = typical_slr(false);
            claims.entitlements.truncate(n);
            SlrCode::issue(&claims, key()).unwrap().to_string().len()
        };
        let plr_len = |n: usize| {
            let mut claims = typical_plr();
            claims.entitlements.push(PlrEntitlement {
                tag: Tag::parse(CUWL).unwrap(),
                count: 1,
            });
            claims.entitlements.truncate(n);
            PlrCode::issue(&claims, key()).unwrap().to_string().len()
        };
        let (slr0, slr2, slr3) = (slr_len(0), slr_len(2), slr_len(3));
        let (plr0, plr2, plr3) = (plr_len(0), plr_len(2), plr_len(3));
        let ret = ReturnCode::sign(
            ReturnKind::Installed,
            Uuid([1; 16]),
            ms(1),
            &DeviceKey::from_seed([8; 32]),
        )
        .to_string();
        eprintln!(
            "request {} | SLR {slr0} / {slr2} / {slr3} | PLR {plr0} / {plr2} / {plr3} | return {}",
            request.len(),
            ret.len()
        );
        // ECDSA DER signatures are 70-72 bytes: a few characters either way.
        assert_eq!(request.len(), 96);
        for (len, want) in [(slr0, 573), (slr2, 1333), (slr3, 1705)] {
            assert!(len.abs_diff(want) <= 4, "SLR {len}, documented {want}");
        }
        for (len, want) in [(plr0, 272), (plr2, 400), (plr3, 460)] {
            assert!(len.abs_diff(want) <= 4, "PLR {len}, documented {want}");
        }
        assert_eq!(ret.len(), 144);
    }

    fn arb_date() -> impl Strategy<Value = Option<NaiveDate>> {
        proptest::option::of(
            (1970i32..2200, 1u32..13, 1u32..29)
                .prop_map(|(y, m, d)| NaiveDate::from_ymd_opt(y, m, d).unwrap()),
        )
    }

    fn arb_tag() -> impl Strategy<Value = Tag> {
        (
            1990u32..2100,
            1u32..13,
            "[A-Za-z][A-Za-z0-9_]{0,20}",
            0u32..100,
            0u32..100,
            any::<[u8; 16]>(),
            any::<bool>(),
        )
            .prop_map(|(y, m, name, major, minor, uuid, upper)| {
                let uuid = Uuid(uuid).to_string();
                // An uppercase UUID cannot be written compact in a PLR code: it goes verbatim.
                let uuid = if upper { uuid.to_uppercase() } else { uuid };
                Tag::parse(&format!(
                    "regid.{y:04}-{m:02}.com.cisco.{name},{major}.{minor}_{uuid}"
                ))
                .unwrap()
            })
    }

    prop_compose! {
        fn arb_slr_entitlement()(tag in arb_tag(), count in any::<u32>(), start_date in arb_date(),
                                 end_date in arb_date(), term in any::<bool>(),
                                 display_name in "[ -~]{0,30}", tag_description in "[ -~]{0,30}",
                                 subscription_id in proptest::option::of("[ -~]{1,12}")) -> SlrEntitlement {
            SlrEntitlement {
                tag, count, start_date, end_date,
                license_type: if term { LicenseType::Term } else { LicenseType::Perpetual },
                display_name, tag_description, subscription_id,
            }
        }
    }

    prop_compose! {
        fn arb_slr()(piid in any::<[u8; 16]>(), t in 0i64..4_102_444_800_000, udi in arb_udi(),
                     rk in any::<[u8; 32]>(), dev in any::<bool>(), export_controlled in any::<bool>(),
                     entitlements in proptest::collection::vec(arb_slr_entitlement(), 0..4)) -> SlrClaims {
            SlrClaims {
                piid: Uuid(piid), timestamp: ms(t), udi, reservation_key: ReservationKeyHash(rk),
                environment: if dev { Environment::Development } else { Environment::Production },
                export_controlled, entitlements,
            }
        }
    }

    prop_compose! {
        fn arb_plr()(piid in any::<[u8; 16]>(), t in any::<i64>().prop_map(|t| t / 1_000_000), udi in arb_udi(),
                     rk in any::<[u8; 32]>(), dev in any::<bool>(), export_controlled in any::<bool>(),
                     entitlements in proptest::collection::vec((arb_tag(), any::<u32>()), 0..5)) -> PlrClaims {
            PlrClaims {
                piid: Uuid(piid), timestamp: ms(t), udi, reservation_key: ReservationKeyHash(rk),
                environment: if dev { Environment::Development } else { Environment::Production },
                export_controlled,
                entitlements: entitlements.into_iter().map(|(tag, count)| PlrEntitlement { tag, count }).collect(),
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn slr_codes_round_trip(claims in arb_slr()) {
            let code = SlrCode::issue(&claims, key()).unwrap();
            let text = code.to_string();
            let parsed = SlrCode::parse(&text).unwrap();
            prop_assert_eq!(&parsed, &code);
            prop_assert_eq!(parsed.verify(&anchors(claims.environment), claims.environment).unwrap(), claims);
            prop_assert_eq!(parsed.confirmation_code(), code.confirmation_code());
            prop_assert!(matches!(AuthorizationCode::parse(&text), Ok(AuthorizationCode::Slr(c)) if c == code));
        }

        #[test]
        fn plr_codes_round_trip(claims in arb_plr(), at in proptest::collection::vec(any::<usize>(), 0..6)) {
            let code = PlrCode::issue(&claims, key()).unwrap();
            let text = code.to_string();
            prop_assert!(text.starts_with('C'));
            prop_assert!(text.split('-').all(|g| (1..=6).contains(&g.len())));
            let parsed = PlrCode::parse(&sprinkle(&text, &at, &[' ', '\n', '-', '\t'])).unwrap();
            prop_assert_eq!(&parsed, &code);
            prop_assert_eq!(parsed.verify(&anchors(claims.environment), claims.environment).unwrap(), claims);
            prop_assert!(matches!(AuthorizationCode::parse(&text), Ok(AuthorizationCode::Plr(c)) if c == code));
        }
    }

    #[test]
    fn line_breaks_anywhere_keep_an_slr_code_valid() {
        let claims = typical_slr(true);
        let code = SlrCode::issue(&claims, key()).unwrap();
        let text = code.to_string();
        let anchors = anchors(Environment::Production);
        let breaks = ["\n", "\r\n", "\r", "\n\n"];
        // One break at every position (kinds in turn), then breaks at every position at once.
        for at in 0..=text.len() {
            let brk = breaks[at % breaks.len()];
            let variant = format!("{}{brk}{}", &text[..at], &text[at..]);
            let parsed = SlrCode::parse(&variant).unwrap_or_else(|e| panic!("break at {at}: {e}"));
            assert_eq!(parsed, code, "break at {at}");
            assert_eq!(
                parsed.verify(&anchors, Environment::Production).unwrap(),
                claims,
                "break at {at}"
            );
        }
        for brk in breaks {
            let everywhere: String = text.chars().map(|c| format!("{brk}{c}")).collect();
            let parsed = SlrCode::parse(&everywhere).unwrap();
            assert_eq!(
                parsed.verify(&anchors, Environment::Production).unwrap(),
                claims
            );
        }
    }

    #[test]
    fn a_space_inside_the_signed_element_breaks_an_slr_code() {
        let code = SlrCode::issue(&typical_slr(false), key()).unwrap();
        let text = code.to_string();
        let start = text.find("<authorizationCode>").unwrap();
        let end = text.find("</authorizationCode>").unwrap() + "</authorizationCode>".len();
        let anchors = anchors(Environment::Production);
        let mut untrusted = 0;
        for at in start + 1..end {
            let variant = format!("{} {}", &text[..at], &text[at..]);
            match SlrCode::parse(&variant) {
                Err(CodeError::InvalidAuthorization(_)) => {}
                Err(other) => panic!("space at {at}: {other}"),
                Ok(c) => {
                    assert_eq!(
                        c.verify(&anchors, Environment::Production).unwrap_err(),
                        CodeError::UntrustedAuthorization(SignatureError::Untrusted),
                        "space at {at}"
                    );
                    untrusted += 1;
                }
            }
        }
        // Inside free text (names, descriptions) and between elements the XML stays valid and
        // only the signature tells; elsewhere a typed field refuses first.
        assert!(untrusted > 250, "{untrusted}");
        // Spaces outside the signed element are harmless.
        let outside = text.replacen("<signature>", " <signature>", 1);
        assert!(SlrCode::parse(&outside)
            .unwrap()
            .verify(&anchors, Environment::Production)
            .is_ok());
    }

    #[test]
    fn a_flipped_byte_in_the_signed_span_fails_trust() {
        let text = SlrCode::issue(&typical_slr(true), key())
            .unwrap()
            .to_string();
        let start = text.find("<authorizationCode>").unwrap();
        let end = text.find("</authorizationCode>").unwrap() + "</authorizationCode>".len();
        let anchors = anchors(Environment::Production);
        let mut untrusted = 0;
        for at in start..end {
            let mut bytes = text.clone().into_bytes();
            bytes[at] ^= 0x01;
            let Ok(variant) = String::from_utf8(bytes) else {
                continue;
            };
            match SlrCode::parse(&variant) {
                Err(CodeError::InvalidAuthorization(_)) => {}
                Err(other) => panic!("flip at {at}: {other}"),
                Ok(c) => {
                    assert_eq!(
                        c.verify(&anchors, Environment::Production),
                        Err(CodeError::UntrustedAuthorization(SignatureError::Untrusted)),
                        "flip at {at}"
                    );
                    untrusted += 1;
                }
            }
        }
        // Where the bytes still read as a code, only the signature tells.
        assert!(untrusted > 400, "{untrusted}");
    }

    #[test]
    fn the_outer_udi_decides_nothing() {
        let claims = typical_slr(false);
        let code = SlrCode::issue(&claims, key()).unwrap();
        let text = code.to_string();
        let outer = format!("<udi>{}</udi></specificPLR>", claims.udi.code_form());
        assert!(text.ends_with(&outer));
        let anchors = anchors(Environment::Production);
        for replacement in [
            "<udi>P:OTHER,S:1</udi></specificPLR>".to_string(),
            "<udi></udi></specificPLR>".to_string(),
            "</specificPLR>".to_string(),
            "<udi>not even a UDI &amp; more</udi></specificPLR>".to_string(),
        ] {
            let rewritten = text.replace(&outer, &replacement);
            let other = SlrCode::parse(&rewritten).unwrap();
            assert_eq!(
                other.verify(&anchors, Environment::Production).unwrap(),
                claims
            );
            assert_eq!(other.signed_bytes(), code.signed_bytes());
            assert_eq!(other.confirmation_code(), code.confirmation_code());
            assert_eq!(other.signed_udi(), Some(&claims.udi));
            assert_ne!(other.informational_udi(), code.informational_udi());
        }
    }

    #[test]
    fn a_development_key_never_verifies_as_production() {
        let dev = anchors(Environment::Development);
        let wrong = CodeError::UntrustedAuthorization(SignatureError::WrongEnvironment {
            signed: Environment::Development,
            expected: Environment::Production,
        });
        // Signed by a development key, whether the code names production or development.
        for named in [Environment::Production, Environment::Development] {
            let mut claims = typical_slr(false);
            claims.environment = named;
            let slr = SlrCode::issue(&claims, key()).unwrap();
            assert_eq!(
                slr.verify(&dev, Environment::Production),
                Err(wrong.clone())
            );
            let mut plr = typical_plr();
            plr.environment = named;
            let plr = PlrCode::issue(&plr, key()).unwrap();
            assert_eq!(
                plr.verify(&dev, Environment::Production),
                Err(wrong.clone())
            );
        }
        // A production key signing a code that names development is refused too.
        let mut claims = typical_slr(false);
        claims.environment = Environment::Development;
        let slr = SlrCode::issue(&claims, key()).unwrap();
        assert_eq!(
            slr.verify(&anchors(Environment::Production), Environment::Production),
            Err(CodeError::UntrustedAuthorization(
                SignatureError::WrongEnvironment {
                    signed: Environment::Development,
                    expected: Environment::Production,
                }
            ))
        );
        assert_eq!(
            wrong.to_string(),
            "The Reservation Authorization Code is not signed by a trusted Smart Software Manager"
        );
    }

    #[test]
    fn an_slr_code_without_our_signed_fields_is_refused_after_its_signature() {
        // Our key signing a Cisco-shaped code: trusted signature, but no signed UDI.
        let fixture = fixture("slr_004_1217.xml").replace('\n', "");
        let start = fixture.find("<authorizationCode>").unwrap();
        let end = fixture.find("</authorizationCode>").unwrap() + "</authorizationCode>".len();
        let element = &fixture[start..end];
        let sig = key().sign(element.as_bytes()).unwrap();
        use base64::Engine as _;
        let text = format!(
            "<specificPLR>{element}<signature>{}</signature></specificPLR>",
            base64::engine::general_purpose::STANDARD.encode(sig)
        );
        let err = SlrCode::parse(&text)
            .unwrap()
            .verify(&anchors(Environment::Production), Environment::Production)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "The Reservation Authorization Code is not valid: <authorizationCode> has no <udi>"
        );
    }

    #[test]
    fn issuing_refuses_what_would_not_read_back() {
        // More entitlements than a count byte holds, or more text than a reader accepts.
        let mut plr = typical_plr();
        plr.entitlements = vec![plr.entitlements[0].clone(); 256];
        assert!(PlrCode::issue(&plr, key()).is_err());
        let verbatim = Tag::parse(&RMS.replace("3585abe5", "3585ABE5")).unwrap();
        plr.entitlements = vec![
            PlrEntitlement {
                tag: verbatim,
                count: 1
            };
            255
        ];
        assert_eq!(
            PlrCode::issue(&plr, key()).unwrap_err().to_string(),
            "entitlements cannot be put in the code: make the code longer than a reader accepts"
        );
        plr.entitlements.truncate(60);
        let code = PlrCode::issue(&plr, key()).unwrap();
        assert_eq!(PlrCode::parse(&code.to_string()).unwrap(), code);
        let mut claims = typical_slr(false);
        claims.entitlements[0].display_name = "two\nlines".into();
        assert!(SlrCode::issue(&claims, key()).is_err());
        let mut claims = typical_slr(false);
        claims.entitlements[0].subscription_id = Some(String::new());
        assert!(SlrCode::issue(&claims, key()).is_err());
        let mut claims = typical_slr(false);
        claims.timestamp = ms(-1);
        assert!(SlrCode::issue(&claims, key()).is_err());
        // Sub-millisecond parts are cut, in both kinds.
        let mut claims = typical_slr(false);
        claims.timestamp += chrono::TimeDelta::microseconds(1);
        let slr = SlrCode::issue(&claims, key()).unwrap();
        assert_eq!(slr.timestamp(), typical_slr(false).timestamp);
        let mut plr = typical_plr();
        plr.timestamp += chrono::TimeDelta::nanoseconds(999);
        assert_eq!(
            PlrCode::issue(&plr, key())
                .unwrap()
                .unverified_claims()
                .timestamp,
            typical_plr().timestamp
        );
    }

    #[test]
    fn a_return_code_is_not_an_authorization_code() {
        let ret = ReturnCode::sign(
            ReturnKind::Installed,
            Uuid([1; 16]),
            ms(1),
            &DeviceKey::from_seed([1; 32]),
        );
        assert_eq!(
            AuthorizationCode::parse(&ret.to_string()).unwrap_err().to_string(),
            "The Reservation Authorization Code is not valid: it is a Reservation Return Code, not a Permanent License Reservation Authorization Code"
        );
        let plr = PlrCode::issue(&typical_plr(), key()).unwrap();
        assert!(matches!(
            ReturnCode::parse(&plr.to_string()),
            Err(CodeError::InvalidReturn(Defect::WrongKind { .. }))
        ));
    }
}
