//! The enveloped rule (the wire protocol's documents, DESIGN "Signed bytes, exactly"):
//! `<signature>B64</signature>` is the root element's last child with no whitespace around it.
//! The signed bytes are the raw document with exactly that element's bytes removed. Senders
//! serialize without it, sign, then insert it before the root's end tag; receivers locate it
//! with `quick_xml::Reader` positions and verify over the raw input. serde never re-creates
//! signed bytes.

use std::ops::Range;

use base64::Engine as _;
use quick_xml::events::Event;
use quick_xml::Reader;

use crate::crypto::B64;

/// Why a document does not have the enveloped shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum EnvelopedError {
    /// It ends before its root element is closed.
    Truncated,
    /// Not well formed, or the signature is missing, misplaced or not base64.
    Malformed(String),
}

/// Where a document's root-level signature sits.
#[derive(Debug, Clone)]
pub(crate) struct Signed<'a> {
    pub raw: &'a [u8],
    pub root: String,
    /// Byte range of `<signature>…</signature>` in `raw`.
    pub signature_span: Range<usize>,
    /// The decoded signature.
    pub signature: Vec<u8>,
}

impl Signed<'_> {
    /// The bytes the signer signed: everything but the signature element.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.raw.len());
        out.extend_from_slice(&self.raw[..self.signature_span.start]);
        out.extend_from_slice(&self.raw[self.signature_span.end..]);
        out
    }
}

fn classify(err: quick_xml::Error) -> EnvelopedError {
    if super::is_truncation(&err) {
        EnvelopedError::Truncated
    } else {
        EnvelopedError::Malformed(format!("not well-formed XML: {err}"))
    }
}

fn name_of(name: &str) -> String {
    name.to_string()
}

/// Checks that `raw` is one well-formed element and finds its root-level `<signature>`.
pub(crate) fn locate(raw: &[u8]) -> Result<Signed<'_>, EnvelopedError> {
    if std::str::from_utf8(raw).is_err() {
        return Err(EnvelopedError::Malformed("not UTF-8".into()));
    }
    let mut reader = Reader::from_reader(raw);
    let mut depth = 0usize;
    let mut root: Option<String> = None;
    let mut root_closed = false;
    let mut sig_start: Option<usize> = None;
    let mut sig_span: Option<Range<usize>> = None;
    let mut sig_text = String::new();
    let mut root_end_start = 0usize;
    loop {
        let before = reader.buffer_position() as usize;
        let event = reader.read_event().map_err(classify)?;
        match event {
            Event::Start(e) => {
                if root_closed {
                    return Err(EnvelopedError::Malformed(
                        "content after the root element".into(),
                    ));
                }
                depth += 1;
                let name = name_of(e.name().as_ref());
                if depth == 1 {
                    root = Some(name);
                } else if depth == 2 && name == "signature" {
                    if sig_start.is_some() {
                        return Err(EnvelopedError::Malformed("more than one signature".into()));
                    }
                    sig_start = Some(before);
                } else if sig_start.is_some() && sig_span.is_none() && depth == 3 {
                    return Err(EnvelopedError::Malformed(
                        "markup inside the signature".into(),
                    ));
                } else if sig_span.is_some() && depth == 2 {
                    return Err(EnvelopedError::Malformed(
                        "signature is not the last element".into(),
                    ));
                }
            }
            Event::Empty(e) => {
                if root_closed {
                    return Err(EnvelopedError::Malformed(
                        "content after the root element".into(),
                    ));
                }
                let name = name_of(e.name().as_ref());
                if depth == 0 {
                    return Err(EnvelopedError::Malformed(format!(
                        "<{name}/> has no signature"
                    )));
                }
                if depth == 1 && (name == "signature" || sig_span.is_some()) {
                    return Err(EnvelopedError::Malformed(
                        "signature is not the last element".into(),
                    ));
                }
                if depth == 2 && sig_start.is_some() && sig_span.is_none() {
                    return Err(EnvelopedError::Malformed(
                        "markup inside the signature".into(),
                    ));
                }
            }
            Event::End(e) => {
                let name = name_of(e.name().as_ref());
                if depth == 2 && name == "signature" && sig_span.is_none() {
                    if let Some(start) = sig_start {
                        sig_span = Some(start..reader.buffer_position() as usize);
                    }
                }
                if depth == 1 {
                    root_end_start = before;
                    root_closed = true;
                }
                depth = depth.saturating_sub(1);
            }
            Event::Text(t) => {
                if depth == 0 {
                    if !t.chars().all(|c| c.is_ascii_whitespace()) {
                        return Err(EnvelopedError::Malformed(
                            "text outside the root element".into(),
                        ));
                    }
                } else if depth == 1 && sig_span.is_some() {
                    return Err(EnvelopedError::Malformed(
                        "signature is not the last element".into(),
                    ));
                } else if depth == 2 && sig_start.is_some() && sig_span.is_none() {
                    sig_text.push_str(&t);
                }
            }
            Event::GeneralRef(_) | Event::CData(_)
                if depth == 2 && sig_start.is_some() && sig_span.is_none() =>
            {
                return Err(EnvelopedError::Malformed(
                    "markup inside the signature".into(),
                ));
            }
            Event::DocType(_) => {
                return Err(EnvelopedError::Malformed(
                    "document type declarations are not accepted".into(),
                ))
            }
            Event::Decl(_) if before == 0 => {}
            Event::Decl(_) | Event::PI(_) => {
                return Err(EnvelopedError::Malformed(
                    "processing instructions are not accepted".into(),
                ))
            }
            Event::Eof => break,
            Event::GeneralRef(_) | Event::CData(_) | Event::Comment(_) => {
                if depth == 0 {
                    return Err(EnvelopedError::Malformed(
                        "content outside the root element".into(),
                    ));
                }
            }
        }
    }
    let Some(root) = root else {
        return Err(EnvelopedError::Truncated);
    };
    if depth != 0 || !root_closed {
        return Err(EnvelopedError::Truncated);
    }
    let span =
        sig_span.ok_or_else(|| EnvelopedError::Malformed(format!("<{root}> has no signature")))?;
    if span.end != root_end_start || span.start == 0 || raw[span.start - 1] != b'>' {
        return Err(EnvelopedError::Malformed(
            "signature is not the last child or has whitespace around it".into(),
        ));
    }
    let signature = B64
        .decode(sig_text.as_bytes())
        .map_err(|_| EnvelopedError::Malformed("signature is not base64".into()))?;
    Ok(Signed {
        raw,
        root,
        signature_span: span,
        signature,
    })
}

/// Finds the byte range of the first element reached by `path` below the root (e.g.
/// `["body", "grant"]`), including its start and end tags.
pub(crate) fn element_span(raw: &[u8], path: &[&str]) -> Option<Range<usize>> {
    let mut reader = Reader::from_reader(raw);
    let mut stack: Vec<String> = Vec::new();
    let mut start: Option<usize> = None;
    loop {
        let before = reader.buffer_position() as usize;
        match reader.read_event().ok()? {
            Event::Start(e) => {
                stack.push(name_of(e.name().as_ref()));
                if start.is_none() && stack.len() == path.len() + 1 && stack[1..] == *path {
                    start = Some(before);
                }
            }
            Event::Empty(e) => {
                stack.push(name_of(e.name().as_ref()));
                if start.is_none() && stack.len() == path.len() + 1 && stack[1..] == *path {
                    return Some(before..reader.buffer_position() as usize);
                }
                stack.pop();
            }
            Event::End(_) => {
                if let Some(s) = start {
                    if stack.len() == path.len() + 1 {
                        return Some(s..reader.buffer_position() as usize);
                    }
                }
                stack.pop();
            }
            Event::Eof => return None,
            _ => {}
        }
    }
}

/// Inserts `insert` just before the root's end tag of `doc` (which must end with `</root>`).
pub(crate) fn insert_before_end(doc: &str, root: &str, insert: &str) -> String {
    let end_tag = format!("</{root}>");
    match doc.strip_suffix(&end_tag) {
        Some(head) => format!("{head}{insert}{end_tag}"),
        // serde wrote `<root/>`: open it.
        None => match doc.strip_suffix("/>") {
            Some(head) => format!("{head}>{insert}{end_tag}"),
            None => format!("{doc}{insert}"),
        },
    }
}

/// Signs an unsigned document and inserts `<signature>` as the root's last child.
pub(crate) fn sign_document(doc: &str, root: &str, signature: &[u8]) -> Vec<u8> {
    let element = format!("<signature>{}</signature>", B64.encode(signature));
    insert_before_end(doc, root, &element).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_span_is_exactly_the_element() {
        let doc = b"<r><a>1</a><signature>AAEC</signature></r>";
        let s = locate(doc).unwrap();
        assert_eq!(s.root, "r");
        assert_eq!(
            &doc[s.signature_span.clone()],
            b"<signature>AAEC</signature>"
        );
        assert_eq!(s.signed_bytes(), b"<r><a>1</a></r>");
        assert_eq!(s.signature, vec![0, 1, 2]);
    }

    #[test]
    fn signature_must_be_last_without_whitespace() {
        for doc in [
            &b"<r><signature>AAEC</signature><a/></r>"[..],
            b"<r><a/> <signature>AAEC</signature></r>",
            b"<r><a/><signature>AAEC</signature> </r>",
            b"<r><a/><signature>AAEC</signature><signature>AAEC</signature></r>",
            b"<r><a/></r>",
            b"<r><a/><signature><x/></signature></r>",
            b"<r><a/><signature>%%%</signature></r>",
            b"<!DOCTYPE r><r><a/><signature>AAEC</signature></r>",
            b"<r><a/><signature>AAEC</signature></r><r/>",
        ] {
            assert!(
                matches!(locate(doc), Err(EnvelopedError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(doc)
            );
        }
    }

    #[test]
    fn cut_documents_are_truncated() {
        let doc = b"<r><a>1</a><signature>AAEC</signature></r>";
        for cut in 1..doc.len() {
            let r = locate(&doc[..cut]);
            assert!(
                matches!(r, Err(EnvelopedError::Truncated)),
                "cut at {cut}: {r:?}"
            );
        }
        assert!(matches!(locate(b""), Err(EnvelopedError::Truncated)));
    }

    #[test]
    fn nested_signed_elements_are_found_by_path() {
        let doc = b"<r><body><grant><x/><signature>AA==</signature></grant></body><signature>AAEC</signature></r>";
        let span = element_span(doc, &["body", "grant"]).unwrap();
        assert_eq!(
            &doc[span],
            b"<grant><x/><signature>AA==</signature></grant>"
        );
        assert!(element_span(doc, &["body", "identity"]).is_none());
        let signed = sign_document("<r><a/></r>", "r", &[1, 2]);
        assert_eq!(signed, b"<r><a/><signature>AQI=</signature></r>");
    }
}
