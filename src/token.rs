//! Product Instance Registration Tokens (SPEC §3).

use std::fmt;

use crate::error::Error;

/// A registration token: 1–256 characters of `[A-Za-z0-9+/%=-]`.
///
/// The token is a secret: `Debug` never shows it, and it has no `Display`; use
/// [`Token::expose`] where the text is really needed (sending it, printing a new one).
///
/// ```
/// use smart_agent::Token;
/// let t = Token::parse("NjEwN2ZjZjEtZmI1Zi00%0AOTQ3ODV8").unwrap();
/// assert_eq!(format!("{t:?}"), "Token(<redacted>)");
/// assert!(Token::parse("has space").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Token(String);

impl Token {
    /// The longest token accepted.
    pub const MAX_LEN: usize = 256;

    /// Checks the syntax; anything else is the 400 token message, before any request.
    pub fn parse(s: &str) -> Result<Token, Error> {
        let ok = !s.is_empty()
            && s.len() <= Self::MAX_LEN
            && s.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'%' | b'=' | b'-')
            });
        if ok {
            Ok(Token(s.to_string()))
        } else {
            Err(Error::InvalidToken)
        }
    }

    /// The token text.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn token_length_limits() {
        assert_eq!(Token::parse(""), Err(Error::InvalidToken));
        assert!(Token::parse(&"a".repeat(256)).is_ok());
        assert_eq!(Token::parse(&"a".repeat(257)), Err(Error::InvalidToken));
        assert_eq!(Token::parse("abc\n"), Err(Error::InvalidToken));
    }

    proptest! {
        #[test]
        fn valid_tokens_round_trip(s in "[A-Za-z0-9+/%=-]{1,256}") {
            let token = Token::parse(&s).unwrap();
            prop_assert_eq!(token.expose(), s.as_str());
        }
    }
}
