//! Product Instance Registration Tokens: issued for a Virtual Account, with an expiry, an
//! optional use limit, the export-control flag (SPEC §7) and revocation.

use base64::Engine as _;
use chrono::{DateTime, TimeDelta, Utc};

use super::db::{time_at, time_cols, Db, DbResult};
use super::error::ManagerError;
use crate::crypto::{random_array, Random, B64};
use crate::token::Token;

/// How a new registration token behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenOptions {
    /// Valid for this long after creation (default 30 days, CSSM's default).
    pub expires_after: TimeDelta,
    /// How many registrations it allows; `None` for no limit (the default).
    pub max_uses: Option<u32>,
    /// "Allow export-controlled functionality on the products registered with this token"
    /// (SPEC §7); written into every identity certificate it yields. Ticked by default
    /// (004:279); for a Smart Account under export restrictions the option does not exist and
    /// its tokens never allow it (004:281).
    pub export_controlled: bool,
}

impl Default for TokenOptions {
    fn default() -> Self {
        TokenOptions {
            expires_after: TimeDelta::days(30),
            max_uses: None,
            export_controlled: true,
        }
    }
}

/// What the manager keeps about one token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TokenRecord {
    /// The row id of its Virtual Account.
    pub va: i64,
    pub expires_at: DateTime<Utc>,
    pub max_uses: Option<u32>,
    pub uses: u32,
    pub export_controlled: bool,
    pub revoked: bool,
}

/// Why a token does not register anything; every case is answered `TOKEN_INVALID`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenRefusal {
    Unknown,
    Revoked,
    Expired,
    UsedUp,
}

impl TokenRefusal {
    pub fn message(self) -> &'static str {
        match self {
            TokenRefusal::Unknown => "The registration token is not known",
            TokenRefusal::Revoked => "The registration token has been revoked",
            TokenRefusal::Expired => "The registration token has expired",
            TokenRefusal::UsedUp => "The registration token has no uses left",
        }
    }
}

/// Token text like CSSM's: base64 broken into lines, the line breaks URL-encoded as `%0A`.
fn token_text(rng: &mut dyn Random) -> Result<String, ManagerError> {
    let bytes: [u8; 64] = random_array(rng)?;
    let b64 = B64.encode(bytes);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(60)
        .filter_map(|line| std::str::from_utf8(line).ok())
        .collect();
    Ok(lines.join("%0A"))
}

/// Issues a token for the Virtual Account with row id `va`, valid from `now`.
pub(crate) fn create(
    db: &Db,
    va: i64,
    options: TokenOptions,
    now: DateTime<Utc>,
    rng: &mut dyn Random,
) -> Result<Token, ManagerError> {
    if options.expires_after <= TimeDelta::zero() {
        return Err(ManagerError::InvalidTokenOptions(
            "the validity must be positive",
        ));
    }
    if options.max_uses == Some(0) {
        return Err(ManagerError::InvalidTokenOptions(
            "a token must allow at least one use",
        ));
    }
    let expires_at =
        now.checked_add_signed(options.expires_after)
            .ok_or(ManagerError::InvalidTokenOptions(
                "the validity runs past the calendar",
            ))?;
    // 512 random bits never collide in practice; a broken random source might.
    let mut text = token_text(rng)?;
    if get(db, &text)?.is_some() {
        text = token_text(rng)?;
        if get(db, &text)?.is_some() {
            return Err(ManagerError::Random);
        }
    }
    let token = Token::parse(&text).map_err(|_| ManagerError::Random)?;
    insert(
        db,
        &text,
        &TokenRecord {
            va,
            expires_at,
            max_uses: options.max_uses,
            uses: 0,
            export_controlled: options.export_controlled,
            revoked: false,
        },
    )?;
    Ok(token)
}

/// Stores a token record as it is (also the version 1 importer).
pub(crate) fn insert(db: &Db, text: &str, t: &TokenRecord) -> DbResult<()> {
    let (s, ns) = time_cols(t.expires_at);
    db.run(
        "INSERT INTO tokens (text, va, expires_s, expires_ns, max_uses, uses, export_controlled,
             revoked) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        rusqlite::params![
            text,
            t.va,
            s,
            ns,
            t.max_uses,
            t.uses,
            t.export_controlled,
            t.revoked
        ],
    )?;
    Ok(())
}

/// The record of the token `text`, if the manager issued it.
pub(crate) fn get(db: &Db, text: &str) -> DbResult<Option<TokenRecord>> {
    db.optional(
        "SELECT va, expires_s, expires_ns, max_uses, uses, export_controlled, revoked
         FROM tokens WHERE text = ?1",
        [text],
        |r| {
            Ok(TokenRecord {
                va: r.get(0)?,
                expires_at: time_at(r, 1)?,
                max_uses: r.get(3)?,
                uses: r.get(4)?,
                export_controlled: r.get(5)?,
                revoked: r.get(6)?,
            })
        },
    )
}

pub(crate) fn revoke(db: &Db, token: &Token) -> Result<(), ManagerError> {
    let changed = db.run(
        "UPDATE tokens SET revoked = 1 WHERE text = ?1",
        [token.expose()],
    )?;
    if changed == 0 {
        return Err(ManagerError::UnknownToken);
    }
    Ok(())
}

/// The token's record if it may register at `now`. `needs_use`: whether the registration
/// would consume a use (a repeated registration does not, SPEC §12).
pub(crate) fn check(
    record: Option<TokenRecord>,
    now: DateTime<Utc>,
    needs_use: bool,
) -> Result<TokenRecord, TokenRefusal> {
    let record = record.ok_or(TokenRefusal::Unknown)?;
    if record.revoked {
        return Err(TokenRefusal::Revoked);
    }
    if now >= record.expires_at {
        return Err(TokenRefusal::Expired);
    }
    if needs_use && record.max_uses.is_some_and(|max| record.uses >= max) {
        return Err(TokenRefusal::UsedUp);
    }
    Ok(record)
}

/// Counts one registration against the token.
pub(crate) fn count_use(db: &Db, text: &str) -> DbResult<()> {
    db.run(
        "UPDATE tokens SET uses = MIN(uses + 1, 4294967295) WHERE text = ?1",
        [text],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::DeterministicRandom;

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn account(db: &Db) -> i64 {
        super::super::accounts::add_smart_account(db, "S").unwrap();
        let va = super::super::accounts::add_virtual_account(db, "S", "V").unwrap();
        super::super::accounts::va_id(db, &va).unwrap().unwrap()
    }

    #[test]
    fn tokens_look_like_cssm_tokens() {
        let mut rng = DeterministicRandom::new(1);
        let db = Db::memory().unwrap();
        let va = account(&db);
        let token = create(&db, va, TokenOptions::default(), t0(), &mut rng).unwrap();
        let text = token.expose();
        assert!(text.contains("%0A"), "{text}");
        assert!(text.len() <= Token::MAX_LEN);
    }

    #[test]
    fn token_checks_name_each_refusal() {
        let mut rng = DeterministicRandom::new(1);
        let db = Db::memory().unwrap();
        let va = account(&db);
        let options = TokenOptions {
            max_uses: Some(1),
            ..TokenOptions::default()
        };
        let token = create(&db, va, options, t0(), &mut rng).unwrap();
        let text = token.expose();
        let record = || get(&db, text).unwrap();
        assert!(check(record(), t0(), true).is_ok());
        assert_eq!(
            check(record(), t0() + TimeDelta::days(30), true),
            Err(TokenRefusal::Expired)
        );
        count_use(&db, text).unwrap();
        assert_eq!(check(record(), t0(), true), Err(TokenRefusal::UsedUp));
        assert!(check(record(), t0(), false).is_ok());
        revoke(&db, &token).unwrap();
        assert_eq!(check(record(), t0(), false), Err(TokenRefusal::Revoked));
        assert_eq!(
            check(get(&db, "nope").unwrap(), t0(), true),
            Err(TokenRefusal::Unknown)
        );
    }

    #[test]
    fn nonsensical_token_options_are_refused() {
        let mut rng = DeterministicRandom::new(1);
        let db = Db::memory().unwrap();
        let va = account(&db);
        for options in [
            TokenOptions {
                expires_after: TimeDelta::zero(),
                ..TokenOptions::default()
            },
            TokenOptions {
                max_uses: Some(0),
                ..TokenOptions::default()
            },
            TokenOptions {
                expires_after: TimeDelta::MAX,
                ..TokenOptions::default()
            },
        ] {
            assert!(matches!(
                create(&db, va, options, t0(), &mut rng),
                Err(ManagerError::InvalidTokenOptions(_))
            ));
        }
        let count: i64 = db
            .conn()
            .query_row("SELECT COUNT(*) FROM tokens", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, 0);
    }
}
