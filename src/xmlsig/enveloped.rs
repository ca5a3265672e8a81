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

/// Checks that `raw` is one well-formed element and finds its root-level `<signature>`.
pub(crate) fn locate(raw: &[u8]) -> Result<Signed<'_>, EnvelopedError> {
    locate_with_spans(raw, "", []).map(|(signed, [])| signed)
}

/// The spans of the elements looked for, in the order of their names (`None`: not found).
pub(crate) type Found<const N: usize> = [Option<Range<usize>>; N];

/// [`locate`], also finding in the same pass what `element_spans(raw, parent, names)` finds
/// (the same spans: a document `locate` accepts is read to its end).
pub(crate) fn locate_with_spans<'a, const N: usize>(
    raw: &'a [u8],
    parent: &str,
    names: [&str; N],
) -> Result<(Signed<'a>, Found<N>), EnvelopedError> {
    let mut spans = Spans::new(parent, names);
    if std::str::from_utf8(raw).is_err() {
        return Err(EnvelopedError::Malformed("not UTF-8".into()));
    }
    // quick-xml skips a leading mark without counting it in `buffer_position`, which would
    // put every span 3 bytes off; no manager or agent writes one.
    if raw.starts_with("\u{feff}".as_bytes()) {
        return Err(EnvelopedError::Malformed(
            "it starts with a byte order mark".into(),
        ));
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
                let qname = e.name();
                let name: &str = qname.as_ref();
                spans.start(depth, name, before);
                if depth == 1 {
                    root = Some(name.to_string());
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
                let qname = e.name();
                let name: &str = qname.as_ref();
                spans.empty(depth, name, before..reader.buffer_position() as usize);
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
                let qname = e.name();
                let name: &str = qname.as_ref();
                spans.end(depth, reader.buffer_position() as usize);
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
    let signed = Signed {
        raw,
        root,
        signature_span: span,
        signature,
    };
    Ok((signed, spans.found))
}

/// The byte ranges, start and end tags included, of the first element named each of `names`
/// among the children of the root's children named `parent` (e.g. `"body"` and `["identity",
/// "grant"]`), in one pass and without allocating. The search ends where the document stops
/// being well formed; what was found before stays found.
#[cfg(test)]
pub(crate) fn element_spans<const N: usize>(
    raw: &[u8],
    parent: &str,
    names: [&str; N],
) -> [Option<Range<usize>>; N] {
    let mut spans = Spans::new(parent, names);
    let mut reader = Reader::from_reader(raw);
    let mut depth = 0usize;
    loop {
        let before = reader.buffer_position() as usize;
        let Ok(event) = reader.read_event() else {
            return spans.found;
        };
        match event {
            Event::Start(e) => {
                depth += 1;
                spans.start(depth, e.name().as_ref(), before);
            }
            Event::Empty(e) => {
                spans.empty(
                    depth,
                    e.name().as_ref(),
                    before..reader.buffer_position() as usize,
                );
            }
            Event::End(_) => {
                spans.end(depth, reader.buffer_position() as usize);
                depth = depth.saturating_sub(1);
            }
            Event::Eof => return spans.found,
            _ => {}
        }
    }
}

/// What [`element_spans`] looks for and has found, fed the reader's tags with their depth
/// (a start tag's and an end tag's own, an empty tag's parent's).
struct Spans<'n, const N: usize> {
    parent: &'n str,
    names: [&'n str; N],
    found: [Option<Range<usize>>; N],
    /// Whether the open child of the root is a `parent`.
    in_parent: bool,
    /// The element being spanned: its index in `names` and where it starts.
    open: Option<(usize, usize)>,
}

impl<'n, const N: usize> Spans<'n, N> {
    fn new(parent: &'n str, names: [&'n str; N]) -> Self {
        Spans {
            parent,
            names,
            found: std::array::from_fn(|_| None),
            in_parent: false,
            open: None,
        }
    }

    /// The index of `name` in `names` if it is still to be found.
    fn wanted(&self, name: &str) -> Option<usize> {
        self.names
            .iter()
            .position(|n| *n == name)
            .filter(|&i| self.found[i].is_none())
    }

    fn start(&mut self, depth: usize, name: &str, at: usize) {
        if N == 0 {
            return;
        }
        if depth == 2 {
            self.in_parent = name == self.parent;
        } else if depth == 3 && self.in_parent {
            self.open = self.wanted(name).map(|i| (i, at));
        }
    }

    fn empty(&mut self, depth: usize, name: &str, span: Range<usize>) {
        if depth == 2 && self.in_parent {
            if let Some(i) = self.wanted(name) {
                self.found[i] = Some(span);
            }
        }
    }

    fn end(&mut self, depth: usize, at: usize) {
        if depth == 3 {
            if let Some((i, start)) = self.open.take() {
                self.found[i] = Some(start..at);
            }
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
    // The usual case, `…</root>`, in one copy: what `insert_before_end` writes for it.
    let head = doc
        .strip_suffix('>')
        .and_then(|d| d.strip_suffix(root))
        .and_then(|d| d.strip_suffix("</"));
    if let Some(head) = head {
        let b64_len = signature.len().div_ceil(3) * 4;
        let mut out = String::with_capacity(doc.len() + b64_len + "<signature></signature>".len());
        out.push_str(head);
        out.push_str("<signature>");
        B64.encode_string(signature, &mut out);
        out.push_str("</signature>");
        out.push_str(&doc[head.len()..]);
        return out.into_bytes();
    }
    let element = format!("<signature>{}</signature>", B64.encode(signature));
    insert_before_end(doc, root, &element).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_goes_before_the_root_end_tag() {
        let slow = |doc: &str, root: &str, sig: &[u8]| {
            let element = format!("<signature>{}</signature>", B64.encode(sig));
            insert_before_end(doc, root, &element).into_bytes()
        };
        for (doc, root) in [
            ("<r><a>1</a></r>", "r"),
            ("<r/>", "r"),
            ("<r></r>", "r"),
            ("<grant><x/></grant>", "grant"),
            ("<rr><x/></r>", "r"),
            ("<r><x/></rr>", "r"),
            ("<r><x/>/r>", "r"),
            ("", "r"),
        ] {
            for sig in [
                &[][..],
                &[1][..],
                &[1, 2][..],
                &[1, 2, 3][..],
                &[0xff; 71][..],
            ] {
                assert_eq!(sign_document(doc, root, sig), slow(doc, root, sig), "{doc}");
            }
        }
    }

    #[test]
    fn located_spans_are_element_spans() {
        for doc in [
            &b"<r><body><grant><x/><signature>AA==</signature></grant><identity/></body><signature>AAEC</signature></r>"[..],
            b"<r><a/><body><b>1</b><grant>2</grant><grant>3</grant></body><body><identity/></body><signature>AAEC</signature></r>",
            b"<r><x><body><grant/></body></x><body/><signature>AAEC</signature></r>",
            b"<r><body><q><grant/></q><exportAuthorization>k</exportAuthorization></body><signature>AAEC</signature></r>",
            b"<r><signature>AAEC</signature></r>",
        ] {
            let names = ["identity", "grant", "exportAuthorization"];
            let (signed, spans) = locate_with_spans(doc, "body", names).unwrap();
            assert_eq!(spans, element_spans(doc, "body", names));
            assert_eq!(signed.signature_span, locate(doc).unwrap().signature_span);
        }
    }

    #[test]
    fn a_byte_order_mark_before_a_signed_document_is_refused_by_name() {
        // quick-xml skips a leading mark without counting it, so every span would be 3 bytes
        // off; no manager writes one, so it is refused rather than read at a shifted offset.
        let doc = b"\xef\xbb\xbf<r><a>1</a><signature>AAEC</signature></r>";
        match locate(doc) {
            Err(EnvelopedError::Malformed(m)) => assert!(m.contains("byte order mark"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

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
        let [grant, identity] = element_spans(doc, "body", ["grant", "identity"]);
        assert_eq!(
            &doc[grant.unwrap()],
            b"<grant><x/><signature>AA==</signature></grant>"
        );
        assert!(identity.is_none());
        // The first of each name, under any <body> child of the root, empty or not; nothing
        // deeper, nothing under another parent, nothing past a break in the document.
        let doc = b"<r><x><a>0</a></x><body><b><a>1</a></b><a>2</a><a>3</a></body>\
            <body><c/></body><a>4</a><body><d>5</d><e>";
        let spans =
            element_spans(doc, "body", ["a", "b", "c", "d", "e"]).map(|s| s.map(|r| &doc[r]));
        assert_eq!(
            spans,
            [
                Some(&b"<a>2</a>"[..]),
                Some(&b"<b><a>1</a></b>"[..]),
                Some(&b"<c/>"[..]),
                Some(&b"<d>5</d>"[..]),
                None
            ]
        );
        let signed = sign_document("<r><a/></r>", "r", &[1, 2]);
        assert_eq!(signed, b"<r><a/><signature>AQI=</signature></r>");
    }
}
