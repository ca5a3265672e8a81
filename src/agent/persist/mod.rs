//! Encoding of the two snapshot parts and the restore rules of SPEC §12.
//!
//! Layout: fixed order, big-endian integers, length-prefixed strings, a tag byte before each
//! enum. Identity certificate and grant are kept as their verbatim signed bytes and verified
//! again on restore against the anchors configured now.

use std::collections::VecDeque;
use std::net::IpAddr;

use chrono::{DateTime, Utc};

mod failure;

use super::authorization::{Authorization, GrantRecord};
use super::evaluation::Evaluation;
use super::operation::{Operation, Pending};
use super::registration::{Identity, RegisterJob, Registration};
use super::state::{AttemptLog, Communication, Licensing, Notified, Outstanding, Settings};
use super::write::Guarded;
use super::{Agent, Config, EventKind};
use crate::codec::{Reader, Writer};
use crate::crypto::DeviceKey;
use crate::entitlement::Tag;
use crate::settings::{GatewayUrl, HostIdentity, TransportSettings};
use crate::snapshot::{SnapshotError, SnapshotParts};
use crate::time::storable;
use crate::token::Token;
use crate::udi::{Udi, Uuid};
use crate::wire::{parse_grant, parse_identity, UsageLine};
use failure::{decode_failure, encode_failure};

fn corrupt(what: impl Into<String>) -> SnapshotError {
    SnapshotError::Corrupt(what.into())
}

// ---------- licensing part ----------

pub(crate) fn encode_licensing(lic: &Licensing) -> Vec<u8> {
    let mut w = Writer::default();
    w.str(&lic.udi.long_form());
    w.u32(lic.usage.len() as u32);
    for (tag, count) in &lic.usage {
        w.str(tag.as_str());
        w.u32(*count);
    }
    let e = &lic.evaluation;
    w.delta(e.remaining);
    w.opt(e.counting_since, Writer::time);
    w.opt(e.expired_at, Writer::time);
    match &lic.registration {
        Registration::Unregistered => w.u8(0),
        Registration::Failed { at } => {
            w.u8(1);
            w.time(*at);
        }
        Registration::Registered(id) => {
            w.u8(2);
            w.bytes(&id.raw);
            w.bytes(id.key.seed());
            w.time(id.registered_at);
            w.opt(id.renewed_at, Writer::time);
        }
        Registration::Expired { at } => {
            w.u8(3);
            w.time(*at);
        }
    }
    w.opt(lic.job.as_ref(), |w, job| {
        w.str(job.token.expose());
        w.bool(job.force);
        w.bytes(job.key.seed());
    });
    let a = &lic.authorization;
    w.bool(a.authorized_since_registration);
    w.opt(a.grant.as_ref(), |w, g| {
        w.bytes(&g.raw);
        w.time(g.received_at);
    });
    w.bool(a.grant_untrusted);
    w.opt(a.ooc_since, Writer::time);
    encode_settings(&mut w, &lic.settings);
    w.finish()
}

fn encode_settings(w: &mut Writer, s: &Settings) {
    match &s.transport {
        TransportSettings::Direct => w.u8(0),
        TransportSettings::OnPrem(url) => {
            w.u8(1);
            w.str(&url.url());
        }
        TransportSettings::Proxy(proxy) => {
            w.u8(2);
            w.str(&proxy.host().to_string());
            w.u32(u32::from(proxy.port()));
            w.opt(proxy.credentials(), |w, c| {
                w.str(&c.username);
                w.str(&c.password);
            });
        }
    }
    w.bool(s.privacy);
    w.opt(s.host.as_ref(), |w, h| {
        w.str(h.name());
        w.str(&h.ip().to_string());
    });
    w.bool(s.subscriber);
}

/// The licensing part as stored, before the signed documents are verified.
struct StoredLicensing {
    lic: Licensing,
    identity: Option<StoredIdentity>,
    grant: Option<(Vec<u8>, DateTime<Utc>)>,
}

struct StoredIdentity {
    raw: Vec<u8>,
    seed: [u8; 32],
    registered_at: DateTime<Utc>,
    renewed_at: Option<DateTime<Utc>>,
}

fn seed(r: &mut Reader<'_>) -> Result<[u8; 32], SnapshotError> {
    r.bytes()?
        .try_into()
        .map_err(|_| corrupt("key seed is not 32 bytes"))
}

fn decode_licensing(bytes: &[u8]) -> Result<StoredLicensing, SnapshotError> {
    let mut r = Reader::new(bytes);
    let udi = Udi::parse_long_form(&r.string()?).map_err(|e| corrupt(format!("udi: {e}")))?;
    let mut usage = Vec::new();
    for _ in 0..r.count()? {
        let tag = Tag::parse(&r.string()?).map_err(|_| corrupt("bad tag"))?;
        let count = r.u32()?;
        if usage.iter().any(|(t, _)| *t == tag) {
            return Err(corrupt("tag declared twice"));
        }
        usage.push((tag, count));
    }
    let evaluation = Evaluation {
        remaining: r.delta()?,
        counting_since: r.opt(Reader::time)?,
        expired_at: r.opt(Reader::time)?,
    };
    let mut identity = None;
    let registration = match r.u8()? {
        0 => Registration::Unregistered,
        1 => Registration::Failed { at: r.time()? },
        2 => {
            identity = Some(StoredIdentity {
                raw: r.bytes()?.to_vec(),
                seed: seed(&mut r)?,
                registered_at: r.time()?,
                renewed_at: r.opt(Reader::time)?,
            });
            Registration::Unregistered // replaced once the certificate verifies
        }
        3 => Registration::Expired { at: r.time()? },
        _ => return Err(corrupt("bad registration state")),
    };
    let job = r.opt(|r| {
        Ok::<_, SnapshotError>(RegisterJob {
            token: Token::parse(&r.string()?).map_err(|_| corrupt("bad token"))?,
            force: r.bool()?,
            key: DeviceKey::from_seed(seed(r)?),
        })
    })?;
    let authorized_since_registration = r.bool()?;
    let grant = r.opt(|r| Ok::<_, SnapshotError>((r.bytes()?.to_vec(), r.time()?)))?;
    let authorization = Authorization {
        authorized_since_registration,
        grant: None, // replaced once the grant verifies
        grant_untrusted: r.bool()?,
        ooc_since: r.opt(Reader::time)?,
    };
    let settings = decode_settings(&mut r)?;
    r.end()?;
    Ok(StoredLicensing {
        lic: Licensing {
            udi,
            usage,
            evaluation,
            registration,
            job,
            authorization,
            settings,
        },
        identity,
        grant,
    })
}

fn decode_settings(r: &mut Reader<'_>) -> Result<Settings, SnapshotError> {
    let transport = match r.u8()? {
        0 => TransportSettings::Direct,
        1 => TransportSettings::OnPrem(
            GatewayUrl::parse(&r.string()?).map_err(|_| corrupt("bad gateway url"))?,
        ),
        2 => {
            let host = r.string()?;
            let port = r.u32()?.to_string();
            let credentials = r.opt(|r| Ok::<_, SnapshotError>((r.string()?, r.string()?)))?;
            let credentials = credentials.as_ref().map(|(u, p)| (u.as_str(), p.as_str()));
            TransportSettings::proxy(&host, &port, credentials)
                .map_err(|_| corrupt("bad proxy settings"))?
        }
        _ => return Err(corrupt("bad transport mode")),
    };
    let privacy = r.bool()?;
    let host = r.opt(|r| {
        let name = r.string()?;
        let ip: IpAddr = r.string()?.parse().map_err(|_| corrupt("bad host ip"))?;
        HostIdentity::new(&name, ip).map_err(|_| corrupt("bad host name"))
    })?;
    Ok(Settings {
        transport,
        privacy,
        host,
        subscriber: r.bool()?,
    })
}

// ---------- communication part ----------

pub(crate) fn encode_communication(c: &Communication) -> Vec<u8> {
    let mut w = Writer::default();
    w.opt(c.highest_seen, Writer::time);
    w.u64(c.next_transmit_id);
    w.u64(c.usage_sequence);
    w.opt(c.outstanding.as_ref(), |w, o| {
        w.u64(o.id);
        encode_pending_v1(w, &o.pending);
        w.str(&o.nonce);
    });
    w.u32(c.deregistrations.len() as u32);
    for (piid, key) in &c.deregistrations {
        w.bytes(&piid.0);
        w.bytes(key.seed());
    }
    for log in [&c.register, &c.renew_id, &c.authorize] {
        w.opt(log.last.as_ref(), |w, (at, failure)| {
            w.time(*at);
            w.opt(failure.as_ref(), encode_failure);
        });
        w.u32(log.failures);
        w.opt(log.next_retry, Writer::time);
        w.bool(log.requested);
    }
    w.opt(c.usage_dirty_since, Writer::time);
    let n = &c.notified;
    w.u32(n.eval_warnings);
    w.bool(n.eval_expired);
    w.opt(n.identity_expired, Writer::time);
    w.opt(n.auth_expired, Writer::time);
    w.opt(n.clock_back, Writer::time);
    w.bool(n.skew);
    w.bool(n.failing);
    w.finish()
}

fn decode_communication(bytes: &[u8]) -> Result<Communication, SnapshotError> {
    let mut r = Reader::new(bytes);
    let highest_seen = r.opt(Reader::time)?;
    let next_transmit_id = r.u64()?;
    let usage_sequence = r.u64()?;
    let outstanding = r.opt(|r| {
        let id = r.u64()?;
        let pending = decode_pending_v1(r)?;
        Ok::<_, SnapshotError>(Outstanding {
            id,
            pending,
            nonce: r.string()?,
        })
    })?;
    let mut deregistrations = Vec::new();
    for _ in 0..r.count()? {
        deregistrations.push((piid(&mut r)?, DeviceKey::from_seed(seed(&mut r)?)));
    }
    let register = read_log(&mut r)?;
    let renew_id = read_log(&mut r)?;
    let authorize = read_log(&mut r)?;
    let usage_dirty_since = r.opt(Reader::time)?;
    let notified = Notified {
        eval_warnings: r.u32()?,
        eval_expired: r.bool()?,
        identity_expired: r.opt(Reader::time)?,
        auth_expired: r.opt(Reader::time)?,
        clock_back: r.opt(Reader::time)?,
        skew: r.bool()?,
        failing: r.bool()?,
    };
    r.end()?;
    Ok(Communication {
        highest_seen,
        next_transmit_id,
        usage_sequence,
        outstanding,
        deregistrations,
        register,
        renew_id,
        authorize,
        usage_dirty_since,
        notified,
    })
}

/// Version 1 stores the outstanding request as one of four tagged layouts.
fn encode_pending_v1(w: &mut Writer, p: &Pending) {
    let seed = |w: &mut Writer, key: &Option<DeviceKey>| {
        w.bytes(key.as_ref().map_or(&[0u8; 32][..], |k| &k.seed()[..]))
    };
    match p.operation {
        Operation::Register => {
            w.u8(0);
            seed(w, &p.key);
        }
        Operation::RenewId => w.u8(1),
        Operation::RenewAuth => {
            w.u8(2);
            w.u64(p.sequence);
            w.count(p.usage.len());
            for line in &p.usage {
                w.str(&line.tag);
                w.u32(line.count);
            }
        }
        Operation::Deregister => {
            w.u8(3);
            w.bytes(&p.piid.map_or([0u8; 16], |p| p.0));
            seed(w, &p.key);
        }
    }
}

fn decode_pending_v1(r: &mut Reader<'_>) -> Result<Pending, SnapshotError> {
    Ok(match r.u8()? {
        0 => Pending {
            key: Some(DeviceKey::from_seed(seed(r)?)),
            ..Pending::new(Operation::Register)
        },
        1 => Pending::new(Operation::RenewId),
        2 => {
            let sequence = r.u64()?;
            let mut usage = Vec::new();
            for _ in 0..r.count()? {
                usage.push(UsageLine {
                    tag: r.string()?,
                    count: r.u32()?,
                });
            }
            Pending {
                sequence,
                usage,
                ..Pending::new(Operation::RenewAuth)
            }
        }
        3 => Pending {
            piid: Some(piid(r)?),
            key: Some(DeviceKey::from_seed(seed(r)?)),
            ..Pending::new(Operation::Deregister)
        },
        _ => return Err(corrupt("bad outstanding request")),
    })
}

fn piid(r: &mut Reader<'_>) -> Result<Uuid, SnapshotError> {
    Ok(Uuid(
        r.bytes()?.try_into().map_err(|_| corrupt("bad piid"))?,
    ))
}

fn read_log(r: &mut Reader<'_>) -> Result<AttemptLog, SnapshotError> {
    Ok(AttemptLog {
        last: r.opt(|r| Ok::<_, SnapshotError>((r.time()?, r.opt(decode_failure)?)))?,
        failures: r.u32()?,
        next_retry: r.opt(Reader::time)?,
        requested: r.bool()?,
    })
}

// ---------- restore ----------

/// Rebuilds an agent from the parts, applying SPEC §12's restore rules.
pub(crate) fn restore(
    parts: &SnapshotParts,
    config: Config,
    now: DateTime<Utc>,
) -> Result<Agent, SnapshotError> {
    let stored = decode_licensing(&parts.licensing)?;
    let mut comm = decode_communication(&parts.communication)?;
    let mut lic = stored.lic;
    let trust = Some((&config.trust_anchors[..], config.environment));
    // The snapshot's own last time, and the restore's time (never earlier).
    let seen = comm.highest_seen.unwrap_or_else(|| storable(now));
    let t = storable(now).max(seen);
    let mut dropped: Vec<EventKind> = Vec::new();
    let other_udi = lic.udi != config.udi;

    // An identity that lapsed before the restore started the evaluation clock at its not-after
    // (SPEC §12); dropping the identity must not forgive that time.
    let lapsed_at = stored
        .identity
        .as_ref()
        .and_then(|id| parse_identity(&id.raw, None).ok())
        .map(|cert| cert.not_after)
        .filter(|at| *at <= t);
    let keep_lapse_evaluation = |lic: &mut Licensing| {
        if let Some(at) = lapsed_at {
            if lic.evaluation.counting_since.is_none() && lic.usage.iter().any(|(_, n)| *n > 0) {
                lic.evaluation.counting_since = Some(at);
            }
        }
    };

    if other_udi {
        // Another instance's snapshot: unregistered here, but its evaluation use stands.
        keep_lapse_evaluation(&mut lic);
        lic.udi = config.udi.clone();
        lic.registration = Registration::Unregistered;
        lic.job = None;
        lic.authorization = Authorization::default();
        comm.outstanding = None;
        comm.deregistrations.clear();
        comm.register = AttemptLog::default();
        comm.renew_id = AttemptLog::default();
        comm.authorize = AttemptLog::default();
        comm.usage_dirty_since = None;
    } else if let Some(id) = stored.identity {
        let key = DeviceKey::from_seed(id.seed);
        let verified = parse_identity(&id.raw, trust)
            .map_err(|e| e.to_string())
            .and_then(|cert| {
                if cert.udi != lic.udi || cert.public_key != key.public_key() {
                    Err("the certificate is not this instance's".to_string())
                } else {
                    Ok(cert)
                }
            });
        match verified {
            Ok(cert) => {
                lic.registration = Registration::Registered(Box::new(Identity {
                    raw: id.raw,
                    cert,
                    key,
                    registered_at: id.registered_at,
                    renewed_at: id.renewed_at,
                }));
                if let Some((raw, received_at)) = stored.grant {
                    match parse_grant(&raw, trust) {
                        Ok(grant) => {
                            lic.authorization.grant = Some(GrantRecord {
                                raw,
                                grant,
                                received_at,
                            })
                        }
                        // Asked again at once (authorization_due): NOT APPLICABLE until then.
                        Err(e) => {
                            lic.authorization.grant_untrusted = true;
                            dropped.push(EventKind::GrantDropped {
                                reason: e.to_string(),
                            });
                        }
                    }
                }
            }
            Err(reason) => {
                keep_lapse_evaluation(&mut lic);
                lic.authorization = Authorization::default();
                comm.renew_id = AttemptLog::default();
                comm.authorize = AttemptLog::default();
                dropped.push(EventKind::IdentityDropped { reason });
            }
        }
    }
    let mut agent = Agent {
        config,
        lic: Guarded::new(lic),
        comm,
        events: VecDeque::new(),
        in_flight: None,
    };
    // Restoring only loads: `now` is not recorded (no highest-time update, no clock event),
    // so a caller can replay the deadlines that fell due while it was down, each at its own
    // time. The first call after the restore records the time as usual.
    if other_udi || !dropped.is_empty() {
        // Registration state changed under the evaluation clock: start or stop it now.
        agent.write_licensing(t, |_| {});
    }
    for kind in dropped {
        agent.push(t, kind);
    }
    // Thresholds only up to the snapshot's own time: what fell due later is for the caller's
    // replay (a renewal may yet prevent a lapse).
    agent.check_thresholds(seen);
    Ok(agent)
}
