//! Detached signatures: a named child of the root element is signed, and its next sibling
//! element is `<signature>B64</signature>`.
//!
//! Rules (SPEC §6, DESIGN "Signed bytes, exactly"):
//! - Every CR and LF of the input is removed first, wherever it is (inside text, between
//!   elements, even inside a tag name), because a person pasting a code may wrap it anywhere and
//!   the signer emits none inside the signed element. Nothing else is normalized: a space is a
//!   byte like any other.
//! - The signed element is a direct child of the root, exactly once. Its bytes, from its `<` to
//!   the `>` of its end tag in the CR/LF-free text, are the signed bytes.
//! - `<signature>` is its next sibling element (only whitespace between them), exactly once,
//!   holding text only; whitespace inside it is ignored before base64 decoding.
//! - Document type declarations, processing instructions, comments and CDATA sections are
//!   refused; an XML declaration is accepted at the very start.

use std::ops::Range;

use base64::Engine as _;
use quick_xml::events::Event;
use quick_xml::Reader;

use crate::crypto::{self, Environment, SignatureError, TrustAnchor, B64};

/// Why a document does not have the detached-signature layout.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DetachedError {
    /// The input is not UTF-8.
    #[error("it is not UTF-8 text")]
    NotUtf8,
    /// The document ends before its root element does.
    #[error("it is truncated")]
    Truncated,
    /// Not well-formed XML.
    #[error("it is not well-formed XML: {0}")]
    NotWellFormed(String),
    /// A construct signed codes never contain (DTD, processing instruction, comment, CDATA).
    #[error("{0} are not accepted")]
    NotAccepted(&'static str),
    /// Something other than whitespace outside the root element.
    #[error("there is content outside the root element")]
    ContentOutsideRoot,
    /// The named element is not a child of the root.
    #[error("<{0}> is missing")]
    MissingElement(String),
    /// The named element appears more than once below the root.
    #[error("<{0}> appears more than once")]
    DuplicateElement(String),
    /// No `<signature>`, or an empty one.
    #[error("it is not signed")]
    Unsigned,
    /// `<signature>` is not the next sibling element of the signed element.
    #[error("<signature> does not directly follow the signed element")]
    SignatureMisplaced,
    /// More than one `<signature>` below the root.
    #[error("<signature> appears more than once")]
    DuplicateSignature,
    /// Elements or entity references inside `<signature>`.
    #[error("<signature> contains markup")]
    MarkupInSignature,
    /// The signature text is not base64.
    #[error("the signature is not base64")]
    SignatureNotBase64,
}

/// A located detached signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Detached {
    text: String,
    root: String,
    element: Range<usize>,
    signature: Vec<u8>,
}

impl Detached {
    /// The whole document with every CR and LF removed; spans refer to it.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The root element's name.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// Where the signed element sits in [`Detached::text`], start tag to end tag.
    pub fn element_span(&self) -> Range<usize> {
        self.element.clone()
    }

    /// The signed bytes: the element's exact bytes with CR and LF removed.
    pub fn signed_bytes(&self) -> &[u8] {
        &self.text.as_bytes()[self.element.clone()]
    }

    /// The decoded signature.
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// Verifies the signature over the signed bytes: it must come from an anchor of
    /// `expected`, and `document` (the environment the signed element names) must be it too.
    pub fn verify(
        &self,
        anchors: &[TrustAnchor],
        expected: Environment,
        document: Environment,
    ) -> Result<(), SignatureError> {
        verify_detached(
            self.signed_bytes(),
            &self.signature,
            anchors,
            expected,
            document,
        )
    }
}

/// Verifies a detached ECDSA P-256 signature over signed bytes kept from
/// [`Detached::signed_bytes`]: it must come from a trust anchor of `expected`, and `document`
/// (the environment the signed element names) must be `expected` too (SPEC §2).
pub fn verify_detached(
    signed: &[u8],
    signature: &[u8],
    anchors: &[TrustAnchor],
    expected: Environment,
    document: Environment,
) -> Result<(), SignatureError> {
    crypto::verify_manager_signature(anchors, expected, document, signed, signature)
}

/// `raw` without its CR and LF bytes.
pub fn strip_line_breaks(raw: &[u8]) -> Vec<u8> {
    raw.iter()
        .copied()
        .filter(|&b| b != b'\r' && b != b'\n')
        .collect()
}

fn classify(err: quick_xml::Error) -> DetachedError {
    if super::is_truncation(&err) {
        DetachedError::Truncated
    } else {
        DetachedError::NotWellFormed(err.to_string())
    }
}

/// The signature element while it is read.
#[derive(Default)]
struct SignatureState {
    open: bool,
    seen: bool,
    /// It did not directly follow the signed element (reported once the element is known
    /// to exist at all).
    misplaced: bool,
    text: String,
}

/// Locates `element` (a direct child of the root) and its sibling `<signature>` in `raw`.
pub fn locate_detached(raw: &[u8], element: &str) -> Result<Detached, DetachedError> {
    let mut text = String::from_utf8(strip_line_breaks(raw)).map_err(|_| DetachedError::NotUtf8)?;
    // A leading byte order mark is not part of the document: quick-xml skips it without
    // counting it in `buffer_position`, so left in, every span below would be 3 bytes off
    // (the signed element would start inside its parent).
    if let Some(rest) = text.strip_prefix('\u{feff}') {
        text = rest.to_string();
    }
    // A second mark is a character before the root. It must be refused here: quick-xml would
    // skip it as a mark, uncounted, and every span would again be 3 bytes off.
    if text.starts_with('\u{feff}') {
        return Err(DetachedError::ContentOutsideRoot);
    }
    let mut reader = Reader::from_str(&text);
    let mut depth = 0usize;
    let mut root: Option<String> = None;
    let mut root_closed = false;
    let mut element_start: Option<usize> = None;
    let mut span: Option<Range<usize>> = None;
    // The name of the last root child that ended, for the signature's placement.
    let mut previous: Option<String> = None;
    let mut sig = SignatureState::default();
    loop {
        let before = reader.buffer_position() as usize;
        let event = reader.read_event().map_err(classify)?;
        let after = reader.buffer_position() as usize;
        match event {
            Event::Start(_) | Event::Empty(_) if root_closed => {
                return Err(DetachedError::ContentOutsideRoot);
            }
            Event::Start(e) => {
                depth += 1;
                let qname = e.name();
                let name: &str = qname.as_ref();
                match depth {
                    1 => root = Some(name.to_string()),
                    2 => child_starts(
                        name,
                        element,
                        before,
                        &previous,
                        &mut element_start,
                        &span,
                        &mut sig,
                    )?,
                    3 if sig.open => return Err(DetachedError::MarkupInSignature),
                    _ => {}
                }
            }
            Event::Empty(e) => {
                let qname = e.name();
                let name: &str = qname.as_ref();
                match depth {
                    0 => {
                        root = Some(name.to_string());
                        root_closed = true;
                    }
                    1 => {
                        child_starts(
                            name,
                            element,
                            before,
                            &previous,
                            &mut element_start,
                            &span,
                            &mut sig,
                        )?;
                        if name == element {
                            span = Some(before..after);
                        }
                        sig.open = false;
                        previous = Some(name.to_string());
                    }
                    2 if sig.open => return Err(DetachedError::MarkupInSignature),
                    _ => {}
                }
            }
            Event::End(e) => {
                if depth == 2 {
                    let name = e.name().as_ref().to_string();
                    if name == element && span.is_none() {
                        if let Some(start) = element_start {
                            span = Some(start..after);
                        }
                    }
                    sig.open = false;
                    previous = Some(name);
                }
                if depth == 1 {
                    root_closed = true;
                }
                depth = depth.saturating_sub(1);
            }
            Event::Text(t) => {
                let blank = t.chars().all(char::is_whitespace);
                if depth == 0 && !blank {
                    return Err(DetachedError::ContentOutsideRoot);
                }
                if sig.open {
                    sig.text.push_str(&t);
                } else if depth == 1 && !blank && previous.as_deref() == Some(element) && !sig.seen
                {
                    return Err(DetachedError::SignatureMisplaced);
                }
            }
            Event::GeneralRef(_) if sig.open => return Err(DetachedError::MarkupInSignature),
            Event::GeneralRef(_) if depth == 0 => return Err(DetachedError::ContentOutsideRoot),
            Event::GeneralRef(_) => {}
            Event::Decl(_) if before == 0 => {}
            Event::Decl(_) | Event::PI(_) => {
                return Err(DetachedError::NotAccepted("processing instructions"))
            }
            Event::DocType(_) => {
                return Err(DetachedError::NotAccepted("document type declarations"))
            }
            Event::Comment(_) => return Err(DetachedError::NotAccepted("comments")),
            Event::CData(_) => return Err(DetachedError::NotAccepted("CDATA sections")),
            Event::Eof => break,
        }
    }
    let Some(root) = root else {
        return Err(DetachedError::Truncated);
    };
    if depth != 0 || !root_closed {
        return Err(DetachedError::Truncated);
    }
    let element = span.ok_or_else(|| DetachedError::MissingElement(element.to_string()))?;
    if sig.misplaced {
        return Err(DetachedError::SignatureMisplaced);
    }
    let b64: String = sig.text.chars().filter(|c| !c.is_whitespace()).collect();
    if b64.is_empty() {
        return Err(DetachedError::Unsigned);
    }
    let signature = B64
        .decode(b64.as_bytes())
        .map_err(|_| DetachedError::SignatureNotBase64)?;
    Ok(Detached {
        text,
        root,
        element,
        signature,
    })
}

/// A child of the root begins: the signed element or the signature.
fn child_starts(
    name: &str,
    element: &str,
    at: usize,
    previous: &Option<String>,
    element_start: &mut Option<usize>,
    span: &Option<Range<usize>>,
    sig: &mut SignatureState,
) -> Result<(), DetachedError> {
    if name == element {
        if element_start.is_some() || span.is_some() {
            return Err(DetachedError::DuplicateElement(name.to_string()));
        }
        *element_start = Some(at);
    } else if name == "signature" {
        if sig.seen {
            return Err(DetachedError::DuplicateSignature);
        }
        sig.misplaced = previous.as_deref() != Some(element);
        sig.seen = true;
        sig.open = true;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_bytes_are_the_element_without_line_breaks() {
        let doc = b"<r>\r\n<a>\n<x>1\r 2</x></a> <signature>\n AAEC \n</signature></r>\n";
        let d = locate_detached(doc, "a").unwrap();
        assert_eq!(d.root(), "r");
        assert_eq!(d.signed_bytes(), b"<a><x>1 2</x></a>");
        assert_eq!(d.signature(), &[0, 1, 2]);
        assert_eq!(&d.text()[d.element_span()], "<a><x>1 2</x></a>");
        // A line break inside a tag name is removed before parsing.
        let wrapped = b"<r><a><x>1</x></a\n><sig\r\nnature>AAEC</signature></r>";
        assert_eq!(
            locate_detached(wrapped, "a").unwrap().signed_bytes(),
            b"<a><x>1</x></a>"
        );
        // A self-closing element is its own span.
        let empty = b"<r><a/><signature>AAEC</signature></r>";
        assert_eq!(locate_detached(empty, "a").unwrap().signed_bytes(), b"<a/>");
    }

    #[test]
    fn layout_errors_are_typed() {
        use DetachedError::*;
        let cases: [(&[u8], DetachedError); 16] = [
            (b"<r><a/></r>", Unsigned),
            (b"<r><a/><signature></signature></r>", Unsigned),
            (b"<r><a/><signature> </signature></r>", Unsigned),
            (
                b"<r><a/><b/><signature>AAEC</signature></r>",
                SignatureMisplaced,
            ),
            (
                b"<r><signature>AAEC</signature><a/></r>",
                SignatureMisplaced,
            ),
            (
                b"<r><a/>x<signature>AAEC</signature></r>",
                SignatureMisplaced,
            ),
            (
                b"<r><a/><signature>AAEC</signature><signature>AAEC</signature></r>",
                DuplicateSignature,
            ),
            (b"<r><a/><signature><b/></signature></r>", MarkupInSignature),
            (
                b"<r><a/><signature>A&amp;</signature></r>",
                MarkupInSignature,
            ),
            (
                b"<r><a/><signature>%%%%</signature></r>",
                SignatureNotBase64,
            ),
            (
                b"<r><b/><signature>AAEC</signature></r>",
                MissingElement("a".into()),
            ),
            (
                b"<r><b><a/></b><signature>AAEC</signature></r>",
                MissingElement("a".into()),
            ),
            (
                b"<r><a/><a/><signature>AAEC</signature></r>",
                DuplicateElement("a".into()),
            ),
            (
                b"<r><a/><signature>AAEC</signature></r><r/>",
                ContentOutsideRoot,
            ),
            (
                b"<!DOCTYPE r><r><a/><signature>AAEC</signature></r>",
                NotAccepted("document type declarations"),
            ),
            (
                b"<r><a><!-- c --></a><signature>AAEC</signature></r>",
                NotAccepted("comments"),
            ),
        ];
        for (doc, want) in cases {
            assert_eq!(
                locate_detached(doc, "a"),
                Err(want),
                "{}",
                String::from_utf8_lossy(doc)
            );
        }
        assert_eq!(locate_detached(&[0xff, b'<'], "a"), Err(NotUtf8));
        assert!(matches!(
            locate_detached(b"<r><a></b></r>", "a"),
            Err(NotWellFormed(_))
        ));
    }

    #[test]
    fn cut_documents_are_truncated() {
        let doc = b"<r><a><x>1</x></a><signature>AAEC</signature></r>";
        for cut in 0..doc.len() {
            assert_eq!(
                locate_detached(&doc[..cut], "a"),
                Err(DetachedError::Truncated),
                "cut {cut}"
            );
        }
    }
}
