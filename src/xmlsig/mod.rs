//! Byte-exact XML signatures (DESIGN "Signed bytes, exactly"): signed XML is verified over the
//! raw input bytes, located with `quick_xml::Reader` positions, never over anything serde
//! re-creates. Two rules:
//!
//! - **enveloped** (the wire protocol's requests, answers, identity certificates and grants):
//!   `<signature>` is the root's last child; the signed bytes are the document without it.
//! - **detached** (SLR authorization codes, SPEC §6): a named child of the root is signed, and
//!   its next sibling `<signature>` carries the base64 signature; the signed bytes are the
//!   exact bytes of the named element with every CR and LF removed, so line breaks a person
//!   adds when pasting never break the signature, while spaces do.
//!
//! ```
//! use smart_agent::xmlsig::locate_detached;
//! let doc = b"<r><a><x>1 2</x></a>\r\n<signature>AA\nEC</signature><udi>P:X</udi></r>";
//! let located = locate_detached(doc, "a").unwrap();
//! assert_eq!(located.signed_bytes(), b"<a><x>1 2</x></a>");
//! assert_eq!(located.signature(), &[0, 1, 2]);
//! ```

mod detached;
pub(crate) mod enveloped;

pub use detached::{locate_detached, strip_line_breaks, verify_detached, Detached, DetachedError};

/// Whether quick-xml's error means the input ended early (a cut document), as opposed to
/// being ill-formed: both rules report truncation as such (SPEC §9 names it).
fn is_truncation(err: &quick_xml::Error) -> bool {
    use quick_xml::errors::{IllFormedError, SyntaxError};
    matches!(
        err,
        quick_xml::Error::Syntax(
            SyntaxError::UnclosedTag
                | SyntaxError::UnclosedComment
                | SyntaxError::UnclosedCData
                | SyntaxError::UnclosedDoctype
                | SyntaxError::UnclosedPI
                | SyntaxError::UnclosedXmlDecl
                | SyntaxError::UnclosedSingleQuotedAttributeValue
                | SyntaxError::UnclosedDoubleQuotedAttributeValue,
        ) | quick_xml::Error::IllFormed(IllFormedError::MissingEndTag(_))
    )
}
