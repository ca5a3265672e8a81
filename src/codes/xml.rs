//! The element tree the XML codes (SLR authorization code, export authorization key) are read
//! through, once their detached signature has been located byte-exactly: no attributes, no
//! mixed content, every element checked by name.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use quick_xml::events::Event;
use quick_xml::Reader;

use super::Defect;
use crate::xmlsig::DetachedError;

/// An element with its text (references resolved) and children.
pub(super) struct Node {
    pub name: String,
    pub text: String,
    pub children: Vec<Node>,
}

impl Node {
    fn new(name: String) -> Node {
        Node {
            name,
            text: String::new(),
            children: Vec::new(),
        }
    }
}

pub(super) fn not_well_formed(err: impl fmt::Display) -> Defect {
    Defect::Xml(DetachedError::NotWellFormed(err.to_string()))
}

/// The element tree of an already located (well-formed) document.
pub(super) fn tree(text: &str) -> Result<Node, Defect> {
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<Node> = Vec::new();
    loop {
        let event = reader.read_event().map_err(not_well_formed)?;
        match event {
            Event::Start(e) | Event::Empty(e) if e.attributes().next().is_some() => {
                return Err(Defect::UnexpectedAttribute {
                    element: e.name().as_ref().to_string(),
                });
            }
            Event::Start(e) => {
                stack.push(Node::new(e.name().as_ref().to_string()));
            }
            Event::Empty(e) => {
                let node = Node::new(e.name().as_ref().to_string());
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => return Ok(node),
                }
            }
            Event::End(_) => {
                let node = stack
                    .pop()
                    .ok_or_else(|| not_well_formed("unexpected end tag"))?;
                if !node.children.is_empty() && !node.text.chars().all(char::is_whitespace) {
                    return Err(Defect::UnexpectedText { element: node.name });
                }
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => return Ok(node),
                }
            }
            Event::Text(t) => {
                if let Some(node) = stack.last_mut() {
                    node.text.push_str(&t);
                }
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref().map_err(not_well_formed)? {
                    Some(c) => c.to_string(),
                    None => quick_xml::escape::resolve_predefined_entity(&r)
                        .ok_or_else(|| not_well_formed(format!("unknown entity &{};", &*r)))?
                        .to_string(),
                };
                if let Some(node) = stack.last_mut() {
                    node.text.push_str(&resolved);
                }
            }
            Event::Eof => return Err(Defect::Truncated),
            _ => {}
        }
    }
}

/// The children of `node` named `name`.
pub(super) fn named<'a, 'n>(
    node: &'a Node,
    name: &'n str,
) -> impl Iterator<Item = &'a Node> + use<'a, 'n> {
    node.children.iter().filter(move |c| c.name == name)
}

pub(super) fn opt<'a>(
    node: &'a Node,
    parent: &'static str,
    name: &str,
) -> Result<Option<&'a Node>, Defect> {
    let mut it = named(node, name);
    let first = it.next();
    if it.next().is_some() {
        return Err(Defect::DuplicateElement {
            parent,
            element: name.to_string(),
        });
    }
    Ok(first)
}

pub(super) fn one<'a>(
    node: &'a Node,
    parent: &'static str,
    name: &'static str,
) -> Result<&'a Node, Defect> {
    opt(node, parent, name)?.ok_or(Defect::MissingElement {
        parent,
        element: name,
    })
}

/// Refuses children not in `allowed`.
pub(super) fn only(node: &Node, allowed: &[&str]) -> Result<(), Defect> {
    match node
        .children
        .iter()
        .find(|c| !allowed.contains(&c.name.as_str()))
    {
        Some(c) => Err(Defect::UnexpectedElement {
            parent: node.name.clone(),
            element: c.name.clone(),
        }),
        None => Ok(()),
    }
}

/// The text of a leaf element.
pub(super) fn leaf(node: &Node) -> Result<&str, Defect> {
    only(node, &[])?;
    Ok(&node.text)
}

pub(super) fn non_empty<'a>(node: &'a Node, element: &'static str) -> Result<&'a str, Defect> {
    let text = leaf(node)?;
    if text.is_empty() {
        return Err(Defect::EmptyElement(element));
    }
    Ok(text)
}

pub(super) fn digits<T: FromStr>(text: &str, element: &'static str) -> Result<T, Defect> {
    if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Defect::invalid(element, text));
    }
    text.parse().map_err(|_| Defect::invalid(element, text))
}

pub(super) fn timestamp(text: &str) -> Result<DateTime<Utc>, Defect> {
    let ms: u64 = digits(text, "timestamp")?;
    i64::try_from(ms)
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .ok_or_else(|| Defect::invalid("timestamp", text))
}

pub(super) fn layout_defect(err: DetachedError) -> Defect {
    match err {
        DetachedError::Unsigned => Defect::Unsigned,
        DetachedError::Truncated => Defect::Truncated,
        DetachedError::SignatureNotBase64 => Defect::SignatureEncoding,
        other => Defect::Xml(other),
    }
}
