//! Writing the wire's XML directly, byte for byte what `quick_xml::se::to_string` writes for
//! the `…Xml` structs of this module (the tests compare both): no declaration, no
//! indentation, text escaped as quick-xml's default (`&`, `<`, `>` and CR), an empty string
//! or an element with no content as `<name/>`, a `None` field left out. Serde built a tree
//! of small strings and looked each name up again for every document the manager signs.

use std::fmt::Display;
use std::fmt::Write as _;

use quick_xml::escape::partial_escape;

/// A document being written.
pub(crate) struct XmlOut {
    buf: String,
}

impl XmlOut {
    /// An empty document, with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> XmlOut {
        XmlOut {
            buf: String::with_capacity(capacity),
        }
    }

    /// `<name>…</name>` around what `content` writes, or `<name/>` if it writes nothing.
    pub fn element(&mut self, name: &str, content: impl FnOnce(&mut XmlOut)) {
        self.buf.push('<');
        self.buf.push_str(name);
        let open = self.buf.len();
        self.buf.push('>');
        content(self);
        if self.buf.len() == open + 1 {
            self.buf.truncate(open);
            self.buf.push_str("/>");
        } else {
            self.buf.push_str("</");
            self.buf.push_str(name);
            self.buf.push('>');
        }
    }

    /// `<name>value</name>`, escaped; `<name/>` for an empty value.
    pub fn text(&mut self, name: &str, value: &str) {
        self.element(name, |w| w.buf.push_str(&partial_escape(value)));
    }

    /// [`XmlOut::text`], or nothing for `None`.
    pub fn opt_text(&mut self, name: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.text(name, value);
        }
    }

    /// `<name>value</name>` for a number or a boolean (nothing to escape).
    pub fn value(&mut self, name: &str, value: impl Display) {
        self.element(name, |w| {
            // Writing to a String cannot fail.
            let _ = write!(w.buf, "{value}");
        });
    }

    /// `text` as it is (markup already written).
    #[cfg_attr(not(feature = "manager"), allow(dead_code))]
    pub fn raw(&mut self, text: &str) {
        self.buf.push_str(text);
    }

    /// The document.
    pub fn finish(self) -> String {
        self.buf
    }
}
