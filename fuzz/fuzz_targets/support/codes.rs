//! The text decoders: UDI, entitlement tag, registration token and the reservation and export
//! codes. Each must refuse anything with a typed error, and print back losslessly whatever it
//! accepts: `parse(display(x)) == x`, and the printed form is a fixed point.

use smart_agent::codes::{
    AuthorizationCode, ConfirmationCode, ExportKey, PlrCode, RequestCode, ReturnCode, SlrCode,
};
use smart_agent::crypto::DeviceKey;
use smart_agent::{Environment, Tag, Token, Udi};

use super::{anchors, text, UDI};

/// The reservation key of the `real_*` return-code seeds (`tests/fuzz_corpus.rs`).
pub const RETURN_KEY_SEED: [u8; 32] = [0x52; 32];

/// Every UDI spelling: each parser's result prints back, in all three forms, to itself.
pub fn udi(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let parsed = [
        Udi::parse_long_form(text),
        Udi::parse_code_form(text),
        Udi::parse_request_form(text),
        text.parse::<Udi>(),
    ];
    for udi in parsed.into_iter().flatten() {
        assert_eq!(udi.to_string(), udi.long_form());
        assert_eq!(Udi::parse_long_form(&udi.long_form()).as_ref(), Ok(&udi));
        assert_eq!(Udi::parse_code_form(&udi.code_form()).as_ref(), Ok(&udi));
        assert_eq!(
            Udi::parse_request_form(&udi.request_form()).as_ref(),
            Ok(&udi)
        );
        assert_eq!(udi.to_string().parse::<Udi>().as_ref(), Ok(&udi));
    }
}

/// An entitlement tag is kept exactly as written; its parts are slices of it.
pub fn entitlement_tag(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let Ok(tag) = Tag::parse(text) else { return };
    assert_eq!(tag.as_str(), text);
    assert_eq!(tag.to_string(), text);
    assert_eq!(text.parse::<Tag>().as_ref(), Ok(&tag));
    assert!(text.contains(tag.name()) && text.contains(tag.version()));
    assert!(text.contains(tag.date()));
}

/// A registration token is kept exactly as written and never shown by `Debug`.
pub fn registration_token(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let Ok(token) = Token::parse(text) else {
        return;
    };
    assert_eq!(token.expose(), text);
    assert_eq!(Token::parse(token.expose()).as_ref(), Ok(&token));
    assert_eq!(format!("{token:?}"), "Token(<redacted>)");
}

/// A reservation request code, as pasted into the manager.
pub fn request_code(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let Ok(code) = RequestCode::parse(text) else {
        return;
    };
    let printed = code.to_string();
    assert_eq!(RequestCode::parse(&printed).as_ref(), Ok(&code));
    assert_eq!(
        RequestCode::parse(&printed).map(|c| c.to_string()),
        Ok(printed)
    );
    assert_eq!(
        code.reservation_key_hash(),
        smart_agent::codes::ReservationKeyHash::of(code.reservation_key())
    );
    let _ = code.udi().request_form();
}

/// An SLR authorization code, as pasted into the product; the seeds' are signed by the
/// fixture key, so verification runs to its end on them.
pub fn slr_code(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let either = AuthorizationCode::parse(text);
    let Ok(code) = SlrCode::parse(text) else {
        if text.trim_start().starts_with('<') {
            assert!(either.is_err());
        }
        return;
    };
    assert_eq!(either.as_ref(), Ok(&AuthorizationCode::Slr(code.clone())));
    let printed = code.to_string();
    let again = SlrCode::parse(&printed);
    assert_eq!(again.as_ref(), Ok(&code));
    assert_eq!(again.map(|c| c.to_string()), Ok(printed));
    let _ = code.verify(&anchors(), Environment::Production);
    let _ = code.confirmation_code().to_string();
}

/// A PLR authorization code (grouped base58), as typed into the product.
pub fn plr_code(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let Ok(code) = PlrCode::parse(text) else {
        return;
    };
    let printed = code.to_string();
    let again = PlrCode::parse(&printed);
    assert_eq!(again.as_ref(), Ok(&code));
    assert_eq!(again.map(|c| c.to_string()), Ok(printed.clone()));
    assert_eq!(
        AuthorizationCode::parse(&printed),
        Ok(AuthorizationCode::Plr(code.clone()))
    );
    let _ = code.verify(&anchors(), Environment::Production);
}

/// A confirmation code, as typed into the manager.
pub fn confirmation_code(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let Ok(code) = ConfirmationCode::parse(text) else {
        assert!(ConfirmationCode::new(0).check(text).is_err());
        return;
    };
    let printed = code.to_string();
    assert_eq!(ConfirmationCode::parse(&printed), Ok(code));
    assert_eq!(code.check(&printed), Ok(()));
    assert_eq!(code.check(text), Ok(()));
    assert_eq!(ConfirmationCode::new(code.value()), code);
}

/// A reservation return code, as pasted into the manager; the seeds' are signed by
/// [`RETURN_KEY_SEED`], so the signature check runs to its end on them.
pub fn return_code(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let Ok(code) = ReturnCode::parse(text) else {
        return;
    };
    let printed = code.to_string();
    let again = ReturnCode::parse(&printed);
    assert_eq!(again.as_ref(), Ok(&code));
    assert_eq!(again.map(|c| c.to_string()), Ok(printed));
    let _ = code.verify(&DeviceKey::from_seed(RETURN_KEY_SEED).public_key());
}

/// An export authorization key, as stored by a product or carried in an answer.
pub fn export_key(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let Ok(key) = ExportKey::parse(text) else {
        return;
    };
    let printed = key.to_string();
    let again = ExportKey::parse(&printed);
    assert_eq!(again.as_ref(), Ok(&key));
    assert_eq!(again.map(|k| k.to_string()), Ok(printed));
    let udi: Udi = UDI.parse().expect("the seed UDI parses");
    let _ = key.verify_for(&anchors(), Environment::Production, &udi, key.feature());
}
