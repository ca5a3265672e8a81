//! Answering one request, atomically: [`plan`] validates everything and prepares the signed
//! documents and the state change without touching the state; the caller signs the answer and
//! only then [`apply`]s the change, which cannot fail.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};

use super::catalogue;
use super::codes;
use super::instances::{Contact, Instance};
use super::retired::{Retirement, Tombstone};
use super::tokens::TokenRefusal;
use super::{State, MAX_HOSTNAME_LEN, MAX_IP_LEN, MAX_TAGS_PER_REPORT};
use crate::crypto::{Environment, ManagerSigningKey, Random};
use crate::udi::Uuid;
use crate::wire::{
    self, AuthorizeBody, Grant, GrantEntry, GrantEntryContent, GrantStatus, IdentityCertificate,
    ParsedRequest, RequestKind,
};

/// Identity certificates are valid exactly this long (SPEC §2).
pub(crate) const IDENTITY_VALIDITY: TimeDelta = TimeDelta::days(365);
/// Grants are signed valid this long (the agent also caps at success + 90 days, SPEC §4).
pub(crate) const GRANT_VALIDITY: TimeDelta = TimeDelta::days(90);

/// A request the manager refuses: the `FAILED` answer's code and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub code: &'static str,
    pub message: String,
}

fn refuse(code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
    }
}

/// The state change of an accepted request, applied only once its answer is signed.
pub(crate) enum Change {
    /// A new instance, replacing the old one of the same UDI (force reregistration, whose
    /// device key is retired as superseded); the token's use is counted.
    Register {
        replace: Option<Uuid>,
        instance: Box<Instance>,
        token: String,
    },
    /// A repeated registration, or anything else that only records the contact.
    Touch { piid: Uuid, contact: Contact },
    /// A new identity certificate.
    RenewId {
        piid: Uuid,
        identity: Vec<u8>,
        not_after: DateTime<Utc>,
        contact: Contact,
    },
    /// A usage report; `report` is `None` for a repeat (SPEC §12).
    Authorize {
        piid: Uuid,
        report: Option<(u64, BTreeMap<String, u32>)>,
        contact: Contact,
    },
    /// The instance goes, and its consumption with it; its device key is retired.
    Deregister { piid: Uuid, at: DateTime<Utc> },
    /// Nothing changes (a replayed deregister, answered OK).
    Nothing,
}

/// An accepted request: the piid the answer names, the signed document for its body, and the
/// change to apply once the answer is signed.
pub(crate) struct Plan {
    pub piid: Option<Uuid>,
    pub document: Option<Vec<u8>>,
    pub change: Change,
}

/// What the planner may use besides the state.
pub(crate) struct Context<'a> {
    pub key: &'a ManagerSigningKey,
    pub environment: Environment,
    pub rng: &'a mut dyn Random,
    pub now: DateTime<Utc>,
}

fn internal() -> Refusal {
    refuse(codes::INTERNAL, "the manager could not sign its answer")
}

/// Refuses a request whose stored fields would be oversized (SPEC §12: bound every stored
/// field), or that carries control characters in them.
fn check_bounds(parsed: &ParsedRequest) -> Result<(), Refusal> {
    let request = &parsed.request;
    let fields = [
        ("host name", request.hostname.as_deref(), MAX_HOSTNAME_LEN),
        ("IP address", request.ip.as_deref(), MAX_IP_LEN),
    ];
    for (what, value, max) in fields {
        let Some(value) = value else { continue };
        if value.len() > max {
            return Err(refuse(
                codes::MALFORMED,
                format!(
                    "the {what} is {} bytes long; at most {max} are accepted",
                    value.len()
                ),
            ));
        }
        if value.chars().any(char::is_control) {
            return Err(refuse(
                codes::MALFORMED,
                format!("the {what} contains control characters"),
            ));
        }
    }
    if let Some(body) = request.body.as_authorize() {
        if body.usage.len() > MAX_TAGS_PER_REPORT {
            return Err(refuse(
                codes::MALFORMED,
                format!(
                    "the usage report names {} entitlement tags; at most {MAX_TAGS_PER_REPORT} are accepted",
                    body.usage.len()
                ),
            ));
        }
    }
    Ok(())
}

fn contact(parsed: &ParsedRequest, now: DateTime<Utc>) -> Contact {
    Contact {
        at: now,
        hostname: parsed.request.hostname.clone(),
        ip: parsed.request.ip.clone(),
    }
}

/// Validates `parsed` against `state` and prepares its answer; changes nothing.
pub(crate) fn plan(
    state: &State,
    ctx: &mut Context<'_>,
    parsed: &ParsedRequest,
) -> Result<Plan, Refusal> {
    check_bounds(parsed)?;
    match parsed.request.kind {
        RequestKind::Register => register(state, ctx, parsed),
        RequestKind::RenewId => renew_id(state, ctx, parsed),
        RequestKind::Authorize => authorize(state, ctx, parsed),
        RequestKind::Deregister => deregister(state, ctx, parsed),
        RequestKind::ExportRequest | RequestKind::ExportReturn => {
            known_instance(state, parsed)?;
            Err(refuse(codes::NOT_SUPPORTED, codes::NOT_SUPPORTED_MESSAGE))
        }
    }
}

/// `deregister`: the instance goes. One already gone by a deregistration or replaced by a
/// newer registration is answered OK without a change (SPEC §12: "already done"), when the
/// request is signed by its retired key.
fn deregister(state: &State, ctx: &Context<'_>, parsed: &ParsedRequest) -> Result<Plan, Refusal> {
    match known_instance(state, parsed) {
        Ok(instance) => Ok(Plan {
            piid: Some(instance.piid),
            document: None,
            change: Change::Deregister {
                piid: instance.piid,
                at: ctx.now,
            },
        }),
        Err(refusal) if refusal.code == codes::KEY_RETIRED => Ok(Plan {
            piid: parsed.request.piid,
            document: None,
            change: Change::Nothing,
        }),
        Err(refusal) => Err(refusal),
    }
}

/// The refusal of a request signed by a retired device key (SPEC §9, §12).
fn retired(tombstone: &Tombstone) -> Refusal {
    let why = match tombstone.retirement {
        Retirement::Superseded => "was replaced by a newer registration of this product instance",
        Retirement::Deregistered => "was removed by a deregistration",
    };
    refuse(
        codes::KEY_RETIRED,
        format!(
            "the device key that signed this request is no longer valid: its registration {why}"
        ),
    )
}

fn identity_for(
    instance: &Instance,
    ctx: &Context<'_>,
) -> Result<(Vec<u8>, DateTime<Utc>), Refusal> {
    // Clamped to year 9999: the wire's RFC 3339 dates have four-digit years.
    let not_after = crate::time::later(ctx.now, IDENTITY_VALIDITY);
    let cert = IdentityCertificate {
        piid: instance.piid,
        udi: instance.udi.clone(),
        public_key: instance.public_key,
        not_before: ctx.now,
        not_after,
        smart_account: instance.virtual_account.smart_account().to_string(),
        virtual_account: instance.virtual_account.virtual_account().to_string(),
        export_controlled: instance.export_controlled,
        environment: ctx.environment,
    };
    let raw = wire::encode_identity(&cert, ctx.key).map_err(|_| internal())?;
    Ok((raw, not_after))
}

/// `register`: the body's `force` flag is the agent's business (SPEC §3); the manager treats
/// every registration of a known UDI with a new key as a reregistration that replaces the
/// old instance, possibly into another Virtual Account.
fn register(state: &State, ctx: &mut Context<'_>, parsed: &ParsedRequest) -> Result<Plan, Refusal> {
    let request = &parsed.request;
    let (Some(body), Some(key)) = (request.body.as_register(), parsed.register_key()) else {
        return Err(refuse(
            codes::MALFORMED,
            "the register body has no valid public key",
        ));
    };
    if !parsed.verify(&key) {
        return Err(refuse(
            codes::BAD_SIGNATURE,
            "the request is not signed by the key it registers",
        ));
    }
    // Device keys are single-use (SPEC §12): a register with a superseded or retired key is a
    // replay (or an old backup) and changes nothing.
    if let Some(tombstone) = state.retired.by_key(&key) {
        return Err(retired(tombstone));
    }
    let token_refused = |r: TokenRefusal| refuse(codes::TOKEN_INVALID, r.message());
    let existing = state.instances.by_udi(&request.udi);
    if state
        .instances
        .by_key(&key)
        .is_some_and(|other| other.udi != request.udi)
    {
        return Err(refuse(
            codes::MALFORMED,
            "the device key is registered to another product instance",
        ));
    }
    // The same UDI and key is the same registration, resent (SPEC §12): answer the identity
    // already issued, without another token use. The signature by that key proves it is the
    // same device, so the token is not checked again: a crash-resend must not be refused
    // because the token expired meanwhile. Only while that identity is valid: a lapsed one is
    // replaced like any other.
    if let Some(same) = existing.filter(|i| i.public_key == key && ctx.now < i.identity_not_after) {
        return Ok(Plan {
            piid: Some(same.piid),
            document: Some(same.identity.clone()),
            change: Change::Touch {
                piid: same.piid,
                contact: contact(parsed, ctx.now),
            },
        });
    }
    let token = state
        .tokens
        .check(&body.token, ctx.now, true)
        .map_err(token_refused)?;
    let piid = state
        .instances
        .fresh_piid(&mut *ctx.rng)
        .map_err(|_| internal())?;
    let mut instance = Instance {
        piid,
        udi: request.udi.clone(),
        public_key: key,
        virtual_account: token.virtual_account.clone(),
        export_controlled: token.export_controlled,
        hostname: request.hostname.clone(),
        ip: request.ip.clone(),
        registered_at: ctx.now,
        identity: Vec::new(),
        identity_not_after: ctx.now,
        last_contact: ctx.now,
        usage: BTreeMap::new(),
        last_sequence: None,
        reports_counted: 0,
        order: 0,
    };
    let (identity, not_after) = identity_for(&instance, ctx)?;
    instance.identity = identity.clone();
    instance.identity_not_after = not_after;
    Ok(Plan {
        piid: Some(piid),
        document: Some(identity),
        change: Change::Register {
            replace: existing.map(|i| i.piid),
            instance: Box::new(instance),
            token: body.token.clone(),
        },
    })
}

/// The instance a non-register request comes from: it must exist, have signed the request,
/// and carry its UDI.
fn known_instance<'s>(state: &'s State, parsed: &ParsedRequest) -> Result<&'s Instance, Refusal> {
    let request = &parsed.request;
    let unknown = || refuse(codes::UNKNOWN_INSTANCE, "no such product instance");
    let piid = request.piid.ok_or_else(unknown)?;
    let Some(instance) = state.instances.get(&piid) else {
        // A piid whose registration was replaced or removed: refused as such only if its
        // retired key signed the request (anyone can name a piid).
        return Err(match state.retired.by_piid(&piid) {
            Some(tombstone) if parsed.verify(&tombstone.key) => retired(tombstone),
            _ => unknown(),
        });
    };
    if !parsed.verify(&instance.public_key) {
        return Err(refuse(
            codes::BAD_SIGNATURE,
            "the request is not signed by the instance's key",
        ));
    }
    if request.udi != instance.udi {
        return Err(refuse(
            codes::UDI_MISMATCH,
            "the UDI is not the one the instance registered with",
        ));
    }
    Ok(instance)
}

fn unexpired(instance: &Instance, now: DateTime<Utc>) -> Result<&Instance, Refusal> {
    if now >= instance.identity_not_after {
        return Err(refuse(
            codes::IDENTITY_EXPIRED,
            "the registration has expired; register again",
        ));
    }
    Ok(instance)
}

fn renew_id(state: &State, ctx: &mut Context<'_>, parsed: &ParsedRequest) -> Result<Plan, Refusal> {
    let instance = unexpired(known_instance(state, parsed)?, ctx.now)?;
    let (identity, not_after) = identity_for(instance, ctx)?;
    Ok(Plan {
        piid: Some(instance.piid),
        document: Some(identity.clone()),
        change: Change::RenewId {
            piid: instance.piid,
            identity,
            not_after,
            contact: contact(parsed, ctx.now),
        },
    })
}

/// The reported usage without count-0 lines; a tag named twice or a malformed tag makes the
/// report malformed.
fn usage_of(body: &AuthorizeBody) -> Result<BTreeMap<String, u32>, Refusal> {
    let mut usage = BTreeMap::new();
    for line in &body.usage {
        if crate::entitlement::Tag::parse(&line.tag).is_err() {
            return Err(refuse(
                codes::MALFORMED,
                "the usage report has an invalid entitlement tag",
            ));
        }
        if usage.insert(line.tag.clone(), line.count).is_some() {
            return Err(refuse(
                codes::MALFORMED,
                format!("the usage report names {} twice", line.tag),
            ));
        }
    }
    usage.retain(|_, n| *n > 0);
    Ok(usage)
}

fn authorize(
    state: &State,
    ctx: &mut Context<'_>,
    parsed: &ParsedRequest,
) -> Result<Plan, Refusal> {
    let instance = unexpired(known_instance(state, parsed)?, ctx.now)?;
    let body = parsed
        .request
        .body
        .as_authorize()
        .ok_or_else(|| refuse(codes::MALFORMED, "no usage report"))?;
    let reported = usage_of(body)?;
    // A report is new when its sequence number is above the last counted one; anything else
    // is a repeat and is answered from the usage already recorded (SPEC §12).
    let fresh = instance
        .last_sequence
        .is_none_or(|last| body.sequence > last);
    let usage = if fresh { &reported } else { &instance.usage };
    // The account's totals with this instance's contribution replaced: O(tags × tiers).
    let allocation = state.allocation(&instance.virtual_account, Some((&instance.usage, usage)));
    let account = state.accounts.get(&instance.virtual_account);
    let mut tags: Vec<(&String, &u32)> = usage.iter().collect();
    tags.sort_by_key(|(tag, _)| (catalogue::rank(tag), tag.as_str()));
    let entries = tags
        .into_iter()
        .map(|(tag, &requested)| {
            let known = account.is_some_and(|a| a.knows(tag));
            let authorized = allocation.authorized(tag, requested);
            let status = if !known {
                GrantStatus::InvalidTag
            } else if allocation.fully_served(tag) {
                GrantStatus::InCompliance
            } else {
                GrantStatus::OutOfCompliance
            };
            let (display_name, description) = account.map(|a| a.names(tag)).unwrap_or((None, None));
            GrantEntry {
                tag: tag.clone(),
                content: Ok(GrantEntryContent {
                    requested,
                    authorized: if known { authorized } else { 0 },
                    status,
                    display_name,
                    description,
                }),
            }
        })
        .collect();
    let grant = Grant {
        piid: instance.piid,
        udi: instance.udi.clone(),
        sequence: body.sequence,
        issued_at: ctx.now,
        not_after: crate::time::later(ctx.now, GRANT_VALIDITY),
        environment: ctx.environment,
        entries,
    };
    let raw = wire::encode_grant(&grant, ctx.key).map_err(|_| internal())?;
    Ok(Plan {
        piid: Some(instance.piid),
        document: Some(raw),
        change: Change::Authorize {
            piid: instance.piid,
            report: fresh.then_some((body.sequence, reported)),
            contact: contact(parsed, ctx.now),
        },
    })
}

/// Applies an accepted request's change; cannot fail.
pub(crate) fn apply(state: &mut State, change: Change) {
    match change {
        Change::Register {
            replace,
            instance,
            token,
        } => {
            if let Some(old) = replace.and_then(|old| state.instances.remove(&old)) {
                // A lapsed registration renewed with the same key keeps the key in use.
                if old.public_key != instance.public_key {
                    state
                        .retired
                        .retire(&old, Retirement::Superseded, instance.registered_at);
                }
            }
            state.instances.insert(*instance);
            state.tokens.count_use(&token);
        }
        Change::Touch { piid, contact } => {
            state.instances.update(&piid, |i| i.touch(contact));
        }
        Change::RenewId {
            piid,
            identity,
            not_after,
            contact,
        } => {
            state.instances.update(&piid, |instance| {
                instance.identity = identity;
                instance.identity_not_after = not_after;
                instance.touch(contact);
            });
        }
        Change::Authorize {
            piid,
            report,
            contact,
        } => {
            state.instances.update(&piid, |instance| {
                if let Some((sequence, usage)) = report {
                    instance.usage = usage;
                    instance.last_sequence = Some(sequence);
                    instance.reports_counted = instance.reports_counted.saturating_add(1);
                }
                instance.touch(contact);
            });
        }
        Change::Deregister { piid, at } => {
            if let Some(old) = state.instances.remove(&piid) {
                state.retired.retire(&old, Retirement::Deregistered, at);
            }
        }
        Change::Nothing => {}
    }
}

/// The text of the first `<name>…</name>` in the first 64 KiB of `raw`, if short and plain:
/// what a `MALFORMED` answer can still echo.
fn recover<'a>(raw: &'a [u8], name: &str) -> Option<&'a str> {
    let head = &raw[..raw.len().min(64 * 1024)];
    let text = match std::str::from_utf8(head) {
        Ok(t) => t,
        Err(e) => std::str::from_utf8(&head[..e.valid_up_to()]).ok()?,
    };
    let open = format!("<{name}>");
    let start = text.find(&open)? + open.len();
    let len = text[start..].find(&format!("</{name}>"))?;
    let value = &text[start..start + len];
    let plain = value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_'));
    (value.len() <= 128 && plain).then_some(value)
}

/// What a request that did not parse still tells: its type (default `register`), nonce
/// (default empty) and piid.
pub(crate) fn recover_envelope(raw: &[u8]) -> (RequestKind, String, Option<Uuid>) {
    let kind = recover(raw, "type")
        .and_then(RequestKind::parse)
        .unwrap_or(RequestKind::Register);
    let nonce = recover(raw, "nonce").unwrap_or_default().to_string();
    let piid = recover(raw, "piid").and_then(|p| p.parse().ok());
    (kind, nonce, piid)
}

/// Whether a parsed nonce can be echoed as is.
pub(crate) fn echoable(nonce: &str) -> bool {
    nonce.len() <= 256 && !nonce.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_fields_are_recovered_from_broken_requests() {
        let raw = b"<request><type>authorize</type><nonce>00ff</nonce>\
            <piid>6fe83add-c802-40bc-92dc-071ac7a37624</piid><udi>";
        let (kind, nonce, piid) = recover_envelope(raw);
        assert_eq!(kind, RequestKind::Authorize);
        assert_eq!(nonce, "00ff");
        assert_eq!(
            piid.map(|p| p.to_string()).as_deref(),
            Some("6fe83add-c802-40bc-92dc-071ac7a37624")
        );
        let (kind, nonce, piid) = recover_envelope(b"\xff\xfe garbage <nonce>a<b</nonce>");
        assert_eq!(
            (kind, nonce.as_str(), piid),
            (RequestKind::Register, "", None)
        );
    }
}
