//! Encoding of the two snapshot parts (every version: `licensing.rs`, `communication.rs`) and
//! the restore rules of SPEC §12.
//!
//! Layout: fixed order, big-endian integers, length-prefixed strings, a tag byte before each
//! enum ([`crate::codec`]). Each version appends to or replaces parts of the one before; the
//! readers take every version from 1 to [`crate::snapshot::VERSION`], the writers write only
//! the current one. Identity certificate and grant are kept as their verbatim signed bytes and
//! verified again on restore against the anchors configured now.

mod communication;
mod failure;
mod licensing;

use std::collections::VecDeque;

use chrono::{DateTime, Utc};

use super::authorization::{Authorization, GrantRecord};
use super::registration::{Identity, Registration};
use super::reservation::{granted_unverified, verify_code, InstalledCode, InstalledCodes};
use super::state::{AttemptLog, Communication, Kept, Licensing};
use super::write::Guarded;
use super::{Agent, Config, ConfigError, EventKind};
use crate::codec::CodecError;
use crate::codes::AuthorizationCode;
use crate::crypto::{Environment, TrustAnchor};
use crate::snapshot::{SnapshotError, SnapshotParts};
use crate::time::storable;
use crate::udi::Udi;
use crate::wire::{
    parse_grant, parse_identity, parse_identity_located, verify_identity, IdentityCertificate,
    Located,
};

pub(crate) use communication::encode as encode_communication;
pub(crate) use licensing::encode as encode_licensing;

/// Why a snapshot part does not decode.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PartError {
    /// The bytes do not follow the layout.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// A value does not parse or the values contradict each other; the text says which.
    #[error("{0}")]
    Malformed(String),
}

pub(super) fn malformed(what: impl Into<String>) -> PartError {
    PartError::Malformed(what.into())
}

/// Why [`Agent::restore`] refused a snapshot: one variant per layer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RestoreError {
    /// The container: wrong magic, newer version, failed integrity check or seal, protection
    /// mismatch.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// The licensing part does not decode.
    #[error("corrupt snapshot: licensing part: {0}")]
    Licensing(PartError),
    /// The communication part does not decode.
    #[error("corrupt snapshot: communication part: {0}")]
    Communication(PartError),
    /// The configuration given to restore with is unusable.
    #[error("cannot restore with this configuration: {0}")]
    Config(#[from] ConfigError),
}

/// What the anchors configured now make of a kept registration.
struct Activated {
    identity: Identity,
    authorization: Authorization,
    /// The grant did not verify (it is kept, and the agent asks for a new one).
    grant_rejected: Option<String>,
}

/// Verifies a kept registration for `udi` against `trust`: the identity certificate must be
/// signed by a trusted key of this environment and certify this UDI and the kept device key.
/// `untrusted_before` says the grant was already kept untrusted; `parsed` is the certificate
/// and its signature as `parse_identity_located(&kept.raw, None)` read them, if the caller
/// has them.
fn activate(
    kept: &Kept,
    udi: &Udi,
    trust: (&[TrustAnchor], Environment),
    untrusted_before: bool,
    parsed: Option<(IdentityCertificate, Located)>,
) -> Result<Activated, String> {
    let cert = match parsed {
        Some((cert, located)) => verify_identity(&located, &cert, trust).map(|()| cert),
        None => parse_identity(&kept.raw, Some(trust)),
    }
    .map_err(|e| e.to_string())?;
    if cert.udi != *udi || cert.public_key != kept.key.public_key() {
        return Err("the certificate is not this instance's".to_string());
    }
    let mut authorization = Authorization {
        authorized_since_registration: kept.authorized_since_registration,
        ooc_since: kept.ooc_since,
        grant_untrusted: untrusted_before,
        ..Authorization::default()
    };
    let mut grant_rejected = None;
    if let Some((raw, received_at)) = &kept.grant {
        match parse_grant(raw, Some(trust)) {
            Ok(grant) => {
                authorization.grant = Some(GrantRecord {
                    raw: raw.clone(),
                    grant,
                    received_at: *received_at,
                });
                authorization.grant_untrusted = false;
            }
            // Asked again at once (authorization_due): NOT APPLICABLE until then.
            Err(e) => {
                authorization.dormant_grant = Some((raw.clone(), *received_at));
                authorization.grant_untrusted = true;
                if !untrusted_before {
                    grant_rejected = Some(e.to_string());
                }
            }
        }
    }
    Ok(Activated {
        identity: Identity {
            raw: kept.raw.clone(),
            cert,
            key: kept.key.clone(),
            registered_at: kept.registered_at,
            renewed_at: kept.renewed_at,
        },
        authorization,
        grant_rejected,
    })
}

/// Rebuilds an agent from the parts, applying SPEC §12's restore rules.
pub(crate) fn restore(
    parts: &SnapshotParts,
    config: Config,
    now: DateTime<Utc>,
) -> Result<Agent, RestoreError> {
    crate::snapshot::check_version(parts.version)?;
    let stored =
        licensing::decode(&parts.licensing, parts.version).map_err(RestoreError::Licensing)?;
    let mut comm = communication::decode(&parts.communication, parts.version)
        .map_err(RestoreError::Communication)?;
    let mut lic = stored.lic;
    let trust = (&config.trust_anchors[..], config.environment);
    // The snapshot's own last time, and the restore's time (never earlier).
    let seen = comm.highest_seen.unwrap_or_else(|| storable(now));
    let t = storable(now).max(seen);
    let mut events: Vec<EventKind> = Vec::new();
    let other_udi = lic.udi != config.udi;
    let mut changed = other_udi;

    // An identity that lapsed before the restore started the evaluation clock at its not-after
    // (SPEC §12); setting the identity aside must not forgive that time.
    let stored_cert = stored
        .registered
        .as_ref()
        .and_then(|kept| parse_identity_located(&kept.raw, None).ok());
    let lapsed_at = stored_cert
        .as_ref()
        .map(|(cert, _)| cert.not_after)
        .filter(|at| *at <= t);
    let keep_lapse_evaluation = |lic: &mut Licensing| {
        if let Some(at) = lapsed_at {
            if lic.evaluation.counting_since.is_none() && lic.usage.iter().any(|(_, n)| *n > 0) {
                lic.evaluation.counting_since = Some(at);
            }
        }
    };
    let reset_exchanges = |comm: &mut Communication| {
        comm.renew_id = AttemptLog::default();
        comm.authorize = AttemptLog::default();
    };

    if other_udi {
        // Another instance's snapshot: unregistered here (its identity, if any, is kept
        // dormant below: it never verifies for this UDI), but its evaluation use stands.
        keep_lapse_evaluation(&mut lic);
        lic.udi = config.udi.clone();
        lic.job = None;
        lic.export.jobs.clear();
        comm.export = AttemptLog::default();
        lic.authorization = Authorization::default();
        comm.outstanding = None;
        comm.deregistrations.clear();
        comm.register = AttemptLog::default();
        reset_exchanges(&mut comm);
        comm.usage_dirty_since = None;
    }
    let untrusted_before = lic.authorization.grant_untrusted;
    if let Some(kept) = stored.registered {
        match activate(&kept, &lic.udi, trust, untrusted_before, stored_cert) {
            Ok(active) => {
                lic.registration = Registration::Registered(Box::new(active.identity));
                lic.authorization = active.authorization;
                if let Some(reason) = active.grant_rejected {
                    events.push(EventKind::GrantDropped { reason });
                    changed = true;
                }
            }
            Err(reason) => {
                keep_lapse_evaluation(&mut lic);
                lic.authorization = Authorization::default();
                // Export was allowed by this identity until now (SPEC §7).
                let was_allowed = lapsed_at.is_none()
                    && parse_identity(&kept.raw, None).is_ok_and(|c| c.export_controlled);
                lic.dormant = Some(Box::new(kept));
                reset_exchanges(&mut comm);
                if !other_udi {
                    events.push(EventKind::IdentityDropped { reason });
                }
                if was_allowed {
                    events.push(EventKind::ExportControlNotAllowed);
                }
                changed = true;
            }
        }
    } else if lic.job.is_none() {
        // A dormant registration comes back when the anchors (or the UDI) fit again, unless
        // the product has started a new registration meanwhile.
        if let Some(kept) = lic.dormant.take() {
            match activate(&kept, &lic.udi, trust, false, None) {
                Ok(active) => {
                    lic.registration = Registration::Registered(Box::new(active.identity));
                    lic.authorization = active.authorization;
                    reset_exchanges(&mut comm);
                    events.push(EventKind::IdentityReinstated);
                    if let Some(reason) = active.grant_rejected {
                        events.push(EventKind::GrantDropped { reason });
                    }
                    changed = true;
                }
                Err(_) => lic.dormant = Some(kept),
            }
        }
    }
    for held in &mut lic.export.keys {
        let feature = held.key.feature().to_string();
        held.trusted = held
            .key
            .verify_for(
                &config.trust_anchors,
                config.environment,
                &config.udi,
                &feature,
            )
            .is_ok();
    }
    if let Some(stored) = stored.installed {
        let (installed, untrusted) = reinstall(stored, &config)?;
        match untrusted {
            Some(reason) if !comm.notified.reservation_untrusted => {
                comm.notified.reservation_untrusted = true;
                events.push(EventKind::ReservationUntrusted { reason });
            }
            Some(_) => {}
            None => comm.notified.reservation_untrusted = false,
        }
        lic.reservation.installed = Some(installed);
        changed = true;
    }
    let mut agent = Agent {
        config,
        lic: Guarded::new(lic),
        comm,
        events: VecDeque::new(),
        in_flight: None,
        restored_at: Some(t),
    };
    // Restoring only loads: `now` is not recorded (no highest-time update, no clock event),
    // so a caller can replay the deadlines that fell due while it was down, each at its own
    // time. The first call after the restore records the time as usual.
    if changed {
        // Registration state changed under the evaluation clock: start or stop it now.
        agent.write_licensing(t, |_| {});
    }
    for kind in events {
        agent.push(t, kind);
    }
    agent.check_reserved_terms(t);
    // Thresholds only up to the snapshot's own time: what fell due later is for the caller's
    // replay (a renewal may yet prevent a lapse).
    agent.check_thresholds(seen);
    Ok(agent)
}

/// Verifies a stored installation's codes against the configuration now: in force if every
/// code verifies for this UDI, kept unused otherwise (with the first failed check).
fn reinstall(
    stored: licensing::StoredInstallation,
    config: &Config,
) -> Result<(InstalledCodes, Option<String>), RestoreError> {
    let mut untrusted = None;
    let mut codes = Vec::new();
    for (text, installed_at) in stored.codes {
        let granted = match verify_code(&text, &config.trust_anchors, config.environment) {
            Ok((_, granted)) if granted.udi == config.udi => granted,
            verified => {
                let code = AuthorizationCode::parse(&text)
                    .map_err(|e| RestoreError::Licensing(malformed(format!("reservation: {e}"))))?;
                let reason = match verified {
                    Ok(_) => "the code is for another product instance".to_string(),
                    Err(e) => e.to_string(),
                };
                untrusted.get_or_insert(reason);
                granted_unverified(&code)
                    .ok_or_else(|| RestoreError::Licensing(malformed("reservation: unsigned")))?
            }
        };
        codes.push(InstalledCode {
            text,
            installed_at,
            granted,
        });
    }
    let installed = InstalledCodes {
        kind: stored.kind,
        key: stored.key,
        codes,
        trusted: untrusted.is_none(),
    };
    Ok((installed, untrusted))
}
