//! Answering one request, atomically.
//!
//! 1. Outside any transaction, [`prepare`] verifies the request's signature with the key it
//!    must be signed by (the instance's, a retired one, or for `register` the key in the body)
//!    and, for a registration that will probably succeed, signs the new identity certificate:
//!    the slow cryptography happens while other requests hold the write lock.
//! 2. Inside the request's transaction, [`plan`] validates everything against the database
//!    and prepares the signed documents and the change, reusing step 1's work when its inputs
//!    are unchanged; the caller signs the answer, [`apply`]s the change (only the rows it
//!    touches) and commits before the answer leaves. A refused request writes nothing.

use chrono::{DateTime, TimeDelta, Utc};

use super::accounts::{self, VirtualAccount};
use super::catalogue;
use super::codes;
use super::db::{Db, DbError};
use super::export_keys;
use super::instances::{self, Contact, FreshError, Instance};
use super::reservation;
use super::retired::{self, Retirement, Tombstone};
use super::tokens::{self, TokenRecord, TokenRefusal};
use super::{Usage, MAX_HOSTNAME_LEN, MAX_IP_LEN, MAX_TAGS_PER_REPORT};
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

/// Why a request got no plan: refused (answered `FAILED`), or the database failed (no answer).
pub(crate) enum NoPlan {
    Refused(Refusal),
    Db(DbError),
}

impl From<Refusal> for NoPlan {
    fn from(r: Refusal) -> Self {
        NoPlan::Refused(r)
    }
}

impl From<DbError> for NoPlan {
    fn from(e: DbError) -> Self {
        NoPlan::Db(e)
    }
}

/// The state change of an accepted request, applied only once its answer is signed.
pub(crate) enum Change {
    /// A new instance, replacing the old one of the same UDI (force reregistration, whose
    /// device key is retired as superseded); the token's use is counted.
    Register {
        replace: Option<Box<Instance>>,
        instance: Box<Instance>,
        token: String,
    },
    /// A repeated registration, or anything else that only records the contact.
    Touch {
        instance: Box<Instance>,
        contact: Contact,
    },
    /// A new identity certificate.
    RenewId {
        instance: Box<Instance>,
        identity: Vec<u8>,
        not_after: DateTime<Utc>,
        contact: Contact,
    },
    /// A usage report; `report` is `None` for a repeat (SPEC §12).
    Authorize {
        instance: Box<Instance>,
        report: Option<(u64, Usage)>,
        contact: Contact,
    },
    /// The instance goes, and its consumption with it; its device key is retired.
    Deregister {
        instance: Box<Instance>,
        at: DateTime<Utc>,
    },
    /// An export authorization key granted (SPEC §7).
    ExportGrant {
        instance: Box<Instance>,
        feature: String,
        key_id: Uuid,
        contact: Contact,
    },
    /// An export authorization key given back.
    ExportReturn {
        instance: Box<Instance>,
        key_id: Uuid,
        contact: Contact,
    },
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

/// A registration's identity certificate, signed before the transaction for the inputs it
/// names.
pub(crate) struct Presigned {
    piid: Uuid,
    va: i64,
    export_controlled: bool,
    identity: Vec<u8>,
    not_after: DateTime<Utc>,
}

/// What [`prepare`] did outside the transaction.
#[derive(Default)]
pub(crate) struct Prepared {
    /// Signatures checked, by key.
    verified: Vec<([u8; 32], bool)>,
    presigned: Option<Presigned>,
}

/// What the planner may use besides the database.
pub(crate) struct Context<'a> {
    pub key: &'a ManagerSigningKey,
    pub environment: Environment,
    pub rng: &'a mut dyn Random,
    pub now: DateTime<Utc>,
    pub prepared: Prepared,
}

impl Context<'_> {
    /// Whether `parsed` is signed by `key` (checked before the transaction if it could be).
    fn verify(&self, parsed: &ParsedRequest, key: &[u8; 32]) -> bool {
        match self.prepared.verified.iter().find(|(k, _)| k == key) {
            Some((_, ok)) => *ok,
            None => parsed.verify(key),
        }
    }
}

fn internal() -> Refusal {
    refuse(codes::INTERNAL, "the manager could not sign its answer")
}

fn contact(parsed: &ParsedRequest, now: DateTime<Utc>) -> Contact {
    Contact {
        at: now,
        hostname: parsed.request.hostname.clone(),
        ip: parsed.request.ip.clone(),
    }
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

/// Step 1, outside the transaction: verifies the signature with the key the request names
/// and signs a probable registration's identity. Reads only; nothing it concludes is trusted
/// without being checked again in [`plan`].
pub(crate) fn prepare(
    db: &Db,
    key: &ManagerSigningKey,
    environment: Environment,
    rng: &mut dyn Random,
    parsed: &ParsedRequest,
    now: DateTime<Utc>,
) -> Result<Prepared, DbError> {
    let mut prepared = Prepared::default();
    if check_bounds(parsed).is_err() {
        return Ok(prepared);
    }
    let request = &parsed.request;
    let device_key = match request.kind {
        RequestKind::Register => parsed.register_key(),
        _ => match request.piid {
            Some(piid) => match instances::key_of(db, &piid)? {
                Some(key) => Some(key),
                None => retired::by_piid(db, &piid)?.map(|t| t.key),
            },
            None => None,
        },
    };
    let Some(device_key) = device_key else {
        return Ok(prepared);
    };
    let ok = parsed.verify(&device_key);
    prepared.verified.push((device_key, ok));
    if !ok || request.kind != RequestKind::Register {
        return Ok(prepared);
    }
    // A registration that will need a new identity: signed now, used if still right.
    let Some(body) = request.body.as_register() else {
        return Ok(prepared);
    };
    if retired::by_key(db, &device_key)?.is_some() {
        return Ok(prepared);
    }
    let resend = instances::by_udi(db, &request.udi)?
        .is_some_and(|i| i.public_key == device_key && now < i.identity_not_after);
    if resend {
        return Ok(prepared);
    }
    let Ok(token) = tokens::check(tokens::get(db, &body.token)?, now, true) else {
        return Ok(prepared);
    };
    let Some(account) = accounts::va_name(db, token.va)? else {
        return Ok(prepared);
    };
    let piid = match instances::fresh_piid(db, rng) {
        Ok(piid) => piid,
        Err(FreshError::Db(e)) => return Err(e),
        Err(FreshError::Random) => return Ok(prepared),
    };
    let signed = sign_identity(
        key,
        environment,
        piid,
        &request.udi,
        device_key,
        &account,
        token.export_controlled,
        now,
    );
    if let Ok((identity, not_after)) = signed {
        prepared.presigned = Some(Presigned {
            piid,
            va: token.va,
            export_controlled: token.export_controlled,
            identity,
            not_after,
        });
    }
    Ok(prepared)
}

/// Step 2: validates `parsed` against the database and prepares its answer; changes
/// nothing.
pub(crate) fn plan(db: &Db, ctx: &mut Context<'_>, parsed: &ParsedRequest) -> Result<Plan, NoPlan> {
    check_bounds(parsed)?;
    match parsed.request.kind {
        RequestKind::Register => register(db, ctx, parsed),
        RequestKind::RenewId => renew_id(db, ctx, parsed),
        RequestKind::Authorize => authorize(db, ctx, parsed),
        RequestKind::Deregister => deregister(db, ctx, parsed),
        RequestKind::ExportRequest => export_request(db, ctx, parsed),
        RequestKind::ExportReturn => export_return(db, ctx, parsed),
    }
}

/// The instance and feature of an export key request or return, refused where the manager or
/// the instance's account does not deal in export keys (SPEC §7, permanent refusals).
fn export_subject(
    db: &Db,
    ctx: &Context<'_>,
    parsed: &ParsedRequest,
) -> Result<(Instance, String, Option<String>), NoPlan> {
    let instance = unexpired(known_instance(db, ctx, parsed)?, ctx.now)?;
    if !export_keys::supported(db)? {
        return Err(refuse(codes::NOT_SUPPORTED, codes::NOT_SUPPORTED_MESSAGE).into());
    }
    let body = parsed
        .request
        .body
        .as_export()
        .ok_or_else(|| refuse(codes::MALFORMED, "no export key body"))?;
    if !crate::codes::is_feature_name(&body.feature) {
        return Err(refuse(codes::MALFORMED, "the export feature name is not valid").into());
    }
    let restricted = reservation::export_restricted(db, instance.virtual_account.smart_account())
        .map_err(|e| DbError::Failed(e.to_string()))?;
    if !restricted {
        return Err(refuse(
            codes::NOT_RESTRICTED,
            "The Smart Account is not under export restrictions: export-controlled \
             functionality follows the registration token",
        )
        .into());
    }
    Ok((instance, body.feature.clone(), body.key_id.clone()))
}

fn sign_export_key(
    ctx: &Context<'_>,
    instance: &Instance,
    feature: &str,
    key_id: Uuid,
    issued_at: DateTime<Utc>,
) -> Result<Vec<u8>, Refusal> {
    let key = crate::codes::ExportKey::issue(
        key_id,
        feature,
        instance.piid,
        &instance.udi,
        issued_at,
        ctx.environment,
        ctx.key,
    )
    .map_err(|_| internal())?;
    Ok(key.to_string().into_bytes())
}

/// `exportRequest`: one key of the feature's pool, signed for this instance; a key already
/// held is answered again (a resent request is the same request).
fn export_request(db: &Db, ctx: &mut Context<'_>, parsed: &ParsedRequest) -> Result<Plan, NoPlan> {
    let (instance, feature, _) = export_subject(db, ctx, parsed)?;
    if let Some(held) = export_keys::held(db, &instance, &feature)? {
        let document = sign_export_key(ctx, &instance, &feature, held.key_id, held.issued_at)?;
        return Ok(Plan {
            piid: Some(instance.piid),
            document: Some(document),
            change: Change::Touch {
                contact: contact(parsed, ctx.now),
                instance: Box::new(instance),
            },
        });
    }
    if export_keys::available(db, instance.va, &feature)? == 0 {
        return Err(refuse(
            codes::NO_KEYS_AVAILABLE,
            format!("No export authorization key for {feature} is left in the Virtual Account"),
        )
        .into());
    }
    let key_id = export_keys::fresh_id(db, &mut *ctx.rng)?.ok_or_else(internal)?;
    let document = sign_export_key(ctx, &instance, &feature, key_id, ctx.now)?;
    Ok(Plan {
        piid: Some(instance.piid),
        document: Some(document),
        change: Change::ExportGrant {
            contact: contact(parsed, ctx.now),
            instance: Box::new(instance),
            feature,
            key_id,
        },
    })
}

/// `exportReturn`: the key goes back to the pool.
fn export_return(db: &Db, ctx: &mut Context<'_>, parsed: &ParsedRequest) -> Result<Plan, NoPlan> {
    let (instance, feature, key_id) = export_subject(db, ctx, parsed)?;
    let held = export_keys::held(db, &instance, &feature)?
        .filter(|h| key_id.as_deref() == Some(h.key_id.to_string().as_str()));
    let Some(held) = held else {
        return Err(refuse(
            codes::NOT_HELD,
            format!("This product instance holds no export authorization key for {feature}"),
        )
        .into());
    };
    Ok(Plan {
        piid: Some(instance.piid),
        document: None,
        change: Change::ExportReturn {
            contact: contact(parsed, ctx.now),
            instance: Box::new(instance),
            key_id: held.key_id,
        },
    })
}

/// `deregister`: the instance goes. One already gone by a deregistration or replaced by a
/// newer registration is answered OK without a change (SPEC §12: "already done"), when the
/// request is signed by its retired key.
fn deregister(db: &Db, ctx: &Context<'_>, parsed: &ParsedRequest) -> Result<Plan, NoPlan> {
    match known_instance(db, ctx, parsed) {
        Ok(instance) => Ok(Plan {
            piid: Some(instance.piid),
            document: None,
            change: Change::Deregister {
                instance: Box::new(instance),
                at: ctx.now,
            },
        }),
        Err(NoPlan::Refused(refusal)) if refusal.code == codes::KEY_RETIRED => Ok(Plan {
            piid: parsed.request.piid,
            document: None,
            change: Change::Nothing,
        }),
        Err(e) => Err(e),
    }
}

/// The refusal of a request signed by a retired device key (SPEC §9, §12).
fn retired_refusal(tombstone: &Tombstone) -> Refusal {
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

/// Signs an identity certificate for a registration of `piid` at `now`: valid 365 days
/// (clamped to year 9999, the wire's RFC 3339 dates have four-digit years).
#[allow(clippy::too_many_arguments)]
fn sign_identity(
    signer: &ManagerSigningKey,
    environment: Environment,
    piid: Uuid,
    udi: &crate::udi::Udi,
    public_key: [u8; 32],
    account: &super::VirtualAccountId,
    export_controlled: bool,
    now: DateTime<Utc>,
) -> Result<(Vec<u8>, DateTime<Utc>), Refusal> {
    let not_after = crate::time::later(now, IDENTITY_VALIDITY);
    let cert = IdentityCertificate {
        piid,
        udi: udi.clone(),
        public_key,
        not_before: now,
        not_after,
        smart_account: account.smart_account().to_string(),
        virtual_account: account.virtual_account().to_string(),
        export_controlled,
        environment,
    };
    let raw = wire::encode_identity(&cert, signer).map_err(|_| internal())?;
    Ok((raw, not_after))
}

fn identity_for(
    instance: &Instance,
    ctx: &Context<'_>,
) -> Result<(Vec<u8>, DateTime<Utc>), Refusal> {
    sign_identity(
        ctx.key,
        ctx.environment,
        instance.piid,
        &instance.udi,
        instance.public_key,
        &instance.virtual_account,
        instance.export_controlled,
        ctx.now,
    )
}

/// `register`: the body's `force` flag is the agent's business (SPEC §3); the manager treats
/// every registration of a known UDI with a new key as a reregistration that replaces the
/// old instance, possibly into another Virtual Account.
fn register(db: &Db, ctx: &mut Context<'_>, parsed: &ParsedRequest) -> Result<Plan, NoPlan> {
    let request = &parsed.request;
    let (Some(body), Some(key)) = (request.body.as_register(), parsed.register_key()) else {
        return Err(refuse(
            codes::MALFORMED,
            "the register body has no valid public key",
        )
        .into());
    };
    if !ctx.verify(parsed, &key) {
        return Err(refuse(
            codes::BAD_SIGNATURE,
            "the request is not signed by the key it registers",
        )
        .into());
    }
    // Device keys are single-use (SPEC §12): a register with a superseded or retired key is a
    // replay (or an old backup) and changes nothing.
    if let Some(tombstone) = retired::by_key(db, &key)? {
        return Err(retired_refusal(&tombstone).into());
    }
    let existing = instances::by_udi(db, &request.udi)?;
    if instances::by_key(db, &key)?.is_some_and(|other| other.udi != request.udi) {
        return Err(refuse(
            codes::MALFORMED,
            "the device key is registered to another product instance",
        )
        .into());
    }
    // The same UDI and key is the same registration, resent (SPEC §12): answer the identity
    // already issued, without another token use. The signature by that key proves it is the
    // same device, so the token is not checked again: a crash-resend must not be refused
    // because the token expired meanwhile. Only while that identity is valid: a lapsed one is
    // replaced like any other.
    if let Some(same) = existing
        .as_ref()
        .filter(|i| i.public_key == key && ctx.now < i.identity_not_after)
    {
        return Ok(Plan {
            piid: Some(same.piid),
            document: Some(same.identity.clone()),
            change: Change::Touch {
                instance: Box::new(same.clone()),
                contact: contact(parsed, ctx.now),
            },
        });
    }
    let token: TokenRecord = tokens::check(tokens::get(db, &body.token)?, ctx.now, true)
        .map_err(|r: TokenRefusal| refuse(codes::TOKEN_INVALID, r.message()))?;
    let account = accounts::va_name(db, token.va)?
        .ok_or_else(|| DbError::Failed("a token of an unknown Virtual Account".into()))?;
    let presigned = ctx
        .prepared
        .presigned
        .take()
        .filter(|p| p.va == token.va && p.export_controlled == token.export_controlled);
    let mut instance = Instance {
        piid: Uuid([0; 16]),
        udi: request.udi.clone(),
        public_key: key,
        va: token.va,
        virtual_account: account,
        export_controlled: token.export_controlled,
        hostname: request.hostname.clone(),
        ip: request.ip.clone(),
        registered_at: ctx.now,
        identity: Vec::new(),
        identity_not_after: ctx.now,
        last_contact: ctx.now,
        usage: Usage::new(),
        last_sequence: None,
        reports_counted: 0,
        order: 0,
    };
    let still_free = |piid: &Uuid| -> Result<bool, DbError> {
        Ok(instances::key_of(db, piid)?.is_none() && retired::by_piid(db, piid)?.is_none())
    };
    match presigned {
        Some(p) if still_free(&p.piid)? => {
            instance.piid = p.piid;
            instance.identity = p.identity;
            instance.identity_not_after = p.not_after;
        }
        _ => {
            instance.piid = match instances::fresh_piid(db, &mut *ctx.rng) {
                Ok(piid) => piid,
                Err(FreshError::Db(e)) => return Err(e.into()),
                Err(FreshError::Random) => return Err(internal().into()),
            };
            let (identity, not_after) = identity_for(&instance, ctx)?;
            instance.identity = identity;
            instance.identity_not_after = not_after;
        }
    }
    Ok(Plan {
        piid: Some(instance.piid),
        document: Some(instance.identity.clone()),
        change: Change::Register {
            replace: existing.map(Box::new),
            instance: Box::new(instance),
            token: body.token.clone(),
        },
    })
}

/// The instance a non-register request comes from: it must exist, have signed the request,
/// and carry its UDI.
fn known_instance(db: &Db, ctx: &Context<'_>, parsed: &ParsedRequest) -> Result<Instance, NoPlan> {
    let request = &parsed.request;
    let unknown = || refuse(codes::UNKNOWN_INSTANCE, "no such product instance");
    let piid = request.piid.ok_or_else(unknown)?;
    let Some(instance) = instances::get(db, &piid)? else {
        // A piid whose registration was replaced or removed: refused as such only if its
        // retired key signed the request (anyone can name a piid).
        return Err(match retired::by_piid(db, &piid)? {
            Some(tombstone) if ctx.verify(parsed, &tombstone.key) => retired_refusal(&tombstone),
            _ => unknown(),
        }
        .into());
    };
    if !ctx.verify(parsed, &instance.public_key) {
        return Err(refuse(
            codes::BAD_SIGNATURE,
            "the request is not signed by the instance's key",
        )
        .into());
    }
    if request.udi != instance.udi {
        return Err(refuse(
            codes::UDI_MISMATCH,
            "the UDI is not the one the instance registered with",
        )
        .into());
    }
    Ok(instance)
}

fn unexpired(instance: Instance, now: DateTime<Utc>) -> Result<Instance, Refusal> {
    if now >= instance.identity_not_after {
        return Err(refuse(
            codes::IDENTITY_EXPIRED,
            "the registration has expired; register again",
        ));
    }
    Ok(instance)
}

fn renew_id(db: &Db, ctx: &mut Context<'_>, parsed: &ParsedRequest) -> Result<Plan, NoPlan> {
    let instance = unexpired(known_instance(db, ctx, parsed)?, ctx.now)?;
    let (identity, not_after) = identity_for(&instance, ctx)?;
    Ok(Plan {
        piid: Some(instance.piid),
        document: Some(identity.clone()),
        change: Change::RenewId {
            instance: Box::new(instance),
            identity,
            not_after,
            contact: contact(parsed, ctx.now),
        },
    })
}

/// The reported usage without count-0 lines; a tag named twice or a malformed tag makes the
/// report malformed.
fn usage_of(body: &AuthorizeBody) -> Result<Usage, Refusal> {
    let mut usage = Usage::new();
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

/// The allocation of `account` on its demand totals (SPEC §4); `replace` is one instance's
/// (recorded, reported) usage, for an authorization not yet applied. O(tags × tiers): only
/// the tags the account knows (its pools and the catalogue) take part, read in one query.
pub(crate) fn allocation(
    db: &Db,
    account: &VirtualAccount,
    replace: Option<(&Usage, &Usage)>,
) -> Result<super::allocation::Allocation, DbError> {
    let mut demand = instances::known_demand(db, account.id)?;
    if let Some((old, new)) = replace {
        for (tag, n) in old {
            if let Some(total) = demand.get_mut(tag) {
                *total = total.saturating_sub(u64::from(*n));
            }
        }
        for (tag, n) in new {
            if account.knows(tag) {
                let total = demand.entry(tag.clone()).or_insert(0);
                *total = total.saturating_add(u64::from(*n));
            }
        }
        demand.retain(|_, total| *total > 0);
    }
    Ok(super::allocation::allocate(&account.purchased(), &demand))
}

fn authorize(db: &Db, ctx: &mut Context<'_>, parsed: &ParsedRequest) -> Result<Plan, NoPlan> {
    let instance = unexpired(known_instance(db, ctx, parsed)?, ctx.now)?;
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
    let account = accounts::by_row(db, instance.va)?;
    // The account's totals with this instance's contribution replaced: O(tags × tiers).
    let allocation = allocation(db, &account, Some((&instance.usage, usage)))?;
    let mut tags: Vec<(&String, &u32)> = usage.iter().collect();
    tags.sort_by_key(|(tag, _)| (catalogue::rank(tag), tag.as_str()));
    let entries = tags
        .into_iter()
        .map(|(tag, &requested)| {
            let known = account.knows(tag);
            let status = if !known {
                GrantStatus::InvalidTag
            } else if allocation.fully_served(tag) {
                GrantStatus::InCompliance
            } else {
                GrantStatus::OutOfCompliance
            };
            let (display_name, description) = account.names(tag);
            GrantEntry {
                tag: tag.clone(),
                content: Ok(GrantEntryContent {
                    requested,
                    authorized: if known {
                        allocation.authorized(tag, requested)
                    } else {
                        0
                    },
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
            instance: Box::new(instance),
            report: fresh.then_some((body.sequence, reported)),
            contact: contact(parsed, ctx.now),
        },
    })
}

/// Applies an accepted request's change: only the rows it touches.
pub(crate) fn apply(db: &Db, change: Change) -> Result<(), DbError> {
    match change {
        Change::Register {
            replace,
            instance,
            token,
        } => {
            if let Some(old) = replace {
                instances::remove(db, &old)?;
                // A lapsed registration renewed with the same key keeps the key in use.
                if old.public_key != instance.public_key {
                    retired::retire(db, &old, Retirement::Superseded, instance.registered_at)?;
                }
            }
            instances::insert(db, &instance, false)?;
            tokens::count_use(db, &token)?;
        }
        Change::Touch { instance, contact } => instances::touch(db, &instance, &contact)?,
        Change::RenewId {
            instance,
            identity,
            not_after,
            contact,
        } => {
            instances::renew(db, &instance, &identity, not_after)?;
            instances::touch(db, &instance, &contact)?;
        }
        Change::Authorize {
            instance,
            report,
            contact,
        } => match report {
            Some((sequence, usage)) => {
                instances::report(db, &instance, sequence, &usage, &contact)?
            }
            None => instances::touch(db, &instance, &contact)?,
        },
        Change::Deregister { instance, at } => {
            instances::remove(db, &instance)?;
            retired::retire(db, &instance, Retirement::Deregistered, at)?;
        }
        Change::ExportGrant {
            instance,
            feature,
            key_id,
            contact,
        } => {
            export_keys::grant(db, &instance, &feature, key_id, contact.at)?;
            instances::touch(db, &instance, &contact)?;
        }
        Change::ExportReturn {
            instance,
            key_id,
            contact,
        } => {
            export_keys::give_back(db, key_id)?;
            instances::touch(db, &instance, &contact)?;
        }
        Change::Nothing => {}
    }
    Ok(())
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
