//! The one rule for showing text that came from outside (the manager, a file, the command
//! line) on a terminal, shared by both CLIs: C0 controls (U+0000–U+001F), DEL (U+007F) and C1
//! controls (U+0080–U+009F) are shown as `\xNN`; everything else as it is (no quoting, no
//! Rust `Debug` escapes). A name from the manager can then neither move the cursor, ring the
//! bell, clear the screen nor start a line of its own.

use std::borrow::Cow;

/// `text` with every control character shown as `\xNN`.
pub fn shown(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_control(c) {
            out.push_str(&format!("\\x{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn is_control(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}')
}

/// Each line of a message shown by the rule, the line breaks kept: for messages the CLI
/// composes itself around values that were already shown.
pub fn shown_lines(text: &str) -> String {
    text.split('\n')
        .map(|line| shown(line).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}
