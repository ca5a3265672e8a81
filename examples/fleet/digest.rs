//! The final digest: every agent's licensing part and the manager's records, without the
//! manager's ECDSA signatures (ring's P-256 signatures are randomized, SPEC §2 / DESIGN).
//!
//! The licensing part stores signed documents verbatim as length-prefixed byte strings
//! (`codec`: u32 big-endian length, then the bytes). A signature's length varies too (DER), so
//! the signature text cannot simply be cut out: the scan below recognises each stored string
//! that is an XML document (`<` … `>`) or a PLR code (base58, whose bytes carry the signature)
//! and hashes it normalized — XML without its `<signature>…</signature>` elements, a PLR code
//! as its decoded claims — with no length prefix; every other byte is hashed as it is.

use smart_agent::codes::PlrCode;

use crate::rng::Fnv;

/// Removes every `<signature>…</signature>` element.
pub fn strip_signatures(xml: &[u8]) -> Vec<u8> {
    const OPEN: &[u8] = b"<signature>";
    const CLOSE: &[u8] = b"</signature>";
    let mut out = Vec::with_capacity(xml.len());
    let mut i = 0;
    while i < xml.len() {
        if xml[i..].starts_with(OPEN) {
            if let Some(end) = find(&xml[i..], CLOSE) {
                i += end + CLOSE.len();
                continue;
            }
        }
        out.push(xml[i]);
        i += 1;
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn is_plr_code(s: &[u8]) -> bool {
    s.first() == Some(&b'C')
        && s.len() > 40
        && s.iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || b.is_ascii_whitespace())
}

/// Hashes a licensing part with the signatures left out.
pub fn licensing(h: &mut Fnv, part: &[u8]) {
    let mut i = 0;
    let mut plain_from = 0;
    while i + 4 <= part.len() {
        let len = u32::from_be_bytes([part[i], part[i + 1], part[i + 2], part[i + 3]]) as usize;
        let start = i + 4;
        let Some(end) = start
            .checked_add(len)
            .filter(|e| *e <= part.len() && len >= 2)
        else {
            i += 1;
            continue;
        };
        let s = &part[start..end];
        let normalized = if s[0] == b'<' && s[len - 1] == b'>' {
            Some(strip_signatures(s))
        } else if is_plr_code(s) {
            std::str::from_utf8(s)
                .ok()
                .and_then(|t| PlrCode::parse(t).ok())
                .map(|c| format!("{:?}", c.unverified_claims()).into_bytes())
        } else {
            None
        };
        match normalized {
            Some(n) => {
                h.write(&part[plain_from..i]);
                h.write(b"\x00doc\x00");
                h.write(&n);
                i = end;
                plain_from = end;
            }
            None => i += 1,
        }
    }
    h.write(&part[plain_from..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_of_any_length_hash_alike() {
        let doc = |body: &str, sig: &str| {
            let xml = format!("<a><b>{body}</b><signature>{sig}</signature></a>");
            let mut part = vec![7u8, 7];
            part.extend_from_slice(&(xml.len() as u32).to_be_bytes());
            part.extend_from_slice(xml.as_bytes());
            part.extend_from_slice(&[9, 9]);
            let mut h = Fnv::new();
            licensing(&mut h, &part);
            h.finish()
        };
        assert_eq!(doc("1", "AAAA"), doc("1", "BBBBBBBB"));
        assert_ne!(doc("1", "AAAA"), doc("2", "AAAA"));
    }
}
