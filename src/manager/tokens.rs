//! Product Instance Registration Tokens: issued for a Virtual Account, with an expiry, an
//! optional use limit, the export-control flag (SPEC §7) and revocation.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use chrono::{DateTime, TimeDelta, Utc};

use super::accounts::VirtualAccountId;
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
    /// (SPEC §7); written into every identity certificate it yields. Default off.
    pub export_controlled: bool,
}

impl Default for TokenOptions {
    fn default() -> Self {
        TokenOptions {
            expires_after: TimeDelta::days(30),
            max_uses: None,
            export_controlled: false,
        }
    }
}

/// What the manager keeps about one token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TokenRecord {
    pub virtual_account: VirtualAccountId,
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

/// Every token the manager issued, by its text. `Debug` never shows the text.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Tokens {
    by_text: BTreeMap<String, TokenRecord>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(
                self.by_text
                    .values()
                    .map(|r| (&r.virtual_account, r.uses, r.revoked)),
            )
            .finish()
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

impl Tokens {
    pub fn create(
        &mut self,
        virtual_account: VirtualAccountId,
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
        let expires_at = now.checked_add_signed(options.expires_after).ok_or(
            ManagerError::InvalidTokenOptions("the validity runs past the calendar"),
        )?;
        // 512 random bits never collide in practice; a broken random source might.
        let mut text = token_text(rng)?;
        while self.by_text.contains_key(&text) {
            text = token_text(rng)?;
            if self.by_text.contains_key(&text) {
                return Err(ManagerError::Random);
            }
        }
        let token = Token::parse(&text).map_err(|_| ManagerError::Random)?;
        self.by_text.insert(
            text,
            TokenRecord {
                virtual_account,
                expires_at,
                max_uses: options.max_uses,
                uses: 0,
                export_controlled: options.export_controlled,
                revoked: false,
            },
        );
        Ok(token)
    }

    /// Every token by its text: what the state file stores.
    pub fn records(&self) -> &BTreeMap<String, TokenRecord> {
        &self.by_text
    }

    /// Puts a token back as it was stored (the state file's decoder).
    pub fn insert_record(&mut self, text: String, record: TokenRecord) {
        self.by_text.insert(text, record);
    }

    pub fn revoke(&mut self, token: &Token) -> Result<(), ManagerError> {
        let record = self
            .by_text
            .get_mut(token.expose())
            .ok_or(ManagerError::UnknownToken)?;
        record.revoked = true;
        Ok(())
    }

    /// The token's record if it may register at `now`. `needs_use`: whether the registration
    /// would consume a use (a repeated registration does not, SPEC §12).
    pub fn check(
        &self,
        text: &str,
        now: DateTime<Utc>,
        needs_use: bool,
    ) -> Result<&TokenRecord, TokenRefusal> {
        let record = self.by_text.get(text).ok_or(TokenRefusal::Unknown)?;
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
    pub fn count_use(&mut self, text: &str) {
        if let Some(record) = self.by_text.get_mut(text) {
            record.uses = record.uses.saturating_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::DeterministicRandom;

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    #[test]
    fn tokens_look_like_cssm_tokens() {
        let mut rng = DeterministicRandom::new(1);
        let mut tokens = Tokens::default();
        let va = VirtualAccountId::new("S", "V");
        let token = tokens
            .create(va, TokenOptions::default(), t0(), &mut rng)
            .unwrap();
        let text = token.expose();
        assert!(text.contains("%0A"), "{text}");
        assert!(text.len() <= Token::MAX_LEN);
        assert!(!format!("{tokens:?}").contains(text));
    }

    #[test]
    fn token_checks_name_each_refusal() {
        let mut rng = DeterministicRandom::new(1);
        let mut tokens = Tokens::default();
        let va = VirtualAccountId::new("S", "V");
        let options = TokenOptions {
            max_uses: Some(1),
            ..TokenOptions::default()
        };
        let token = tokens.create(va, options, t0(), &mut rng).unwrap();
        let text = token.expose();
        assert!(tokens.check(text, t0(), true).is_ok());
        assert_eq!(
            tokens.check(text, t0() + TimeDelta::days(30), true),
            Err(TokenRefusal::Expired)
        );
        tokens.count_use(text);
        assert_eq!(tokens.check(text, t0(), true), Err(TokenRefusal::UsedUp));
        assert!(tokens.check(text, t0(), false).is_ok());
        tokens.revoke(&token).unwrap();
        assert_eq!(tokens.check(text, t0(), false), Err(TokenRefusal::Revoked));
        assert_eq!(tokens.check("nope", t0(), true), Err(TokenRefusal::Unknown));
    }

    #[test]
    fn nonsensical_token_options_are_refused() {
        let mut rng = DeterministicRandom::new(1);
        let mut tokens = Tokens::default();
        let va = VirtualAccountId::new("S", "V");
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
                tokens.create(va.clone(), options, t0(), &mut rng),
                Err(ManagerError::InvalidTokenOptions(_))
            ));
        }
        assert_eq!(tokens, Tokens::default());
    }
}
