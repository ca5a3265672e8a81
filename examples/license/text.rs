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

/// Whitespace a person may paste inside a code (SPEC §6: CR/LF in the SLR code, any
/// whitespace in the base58 codes): allowed on the command line.
fn is_pasted_whitespace(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r')
}

/// clap's rendered usage error, shown by the rule. clap drops BEL, ESC and DEL from the
/// arguments it quotes, so when an argument holds a control character other than pasted
/// whitespace the error names that argument instead (shown by the rule); otherwise the
/// arguments clap quotes are shown by the rule (a pasted line break stays on its line as
/// `\x0A`), then every line.
pub fn usage_error(rendered: &str, args: &[String]) -> String {
    if let Some(arg) = args
        .iter()
        .find(|a| a.chars().any(|c| is_control(c) && !is_pasted_whitespace(c)))
    {
        return format!(
            "error: argument '{}' holds a control character and is not a valid command \
             line here\n\nFor more information, try '--help'.\n",
            shown(arg)
        );
    }
    let mut text = rendered.trim_end().to_string();
    for arg in args.iter().filter(|a| a.chars().any(is_control)) {
        text = text.replace(arg.as_str(), &shown(arg));
    }
    shown_lines(&text) + "\n"
}
