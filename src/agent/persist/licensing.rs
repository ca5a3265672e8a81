//! The licensing part's layout, every version.
//!
//! ```text
//! v1  udi | declared tags (tag, count)* | evaluation (remaining, counting since?, expired at?)
//!     | registration (0 unregistered | 1 failed at | 2 identity raw, key seed, registered,
//!       renewed? | 3 expired at) | job? (token, force, key seed)
//!     | authorization (since registration, grant? (raw, received), grant untrusted, ooc since?)
//!     | settings (transport, privacy, host?, subscriber)
//! v2  v1 | dormant registration? (identity raw, key seed, registered, renewed?, since
//!       registration, grant? (raw, received), ooc since?)
//! v3  v2 | reservation (enabled, in progress, request key seed?, kept key seeds*)
//!       | export keys (text)* | export jobs (0 request | 1 return, feature)*
//!       | installed reservation? (kind 0 SLR | 1 PLR, key seed, codes (text, installed at)*)
//! ```
//! Defaults for fields a version lacks: before v3, reservation mode is off with nothing kept;
//! v1 has no dormant registration (v1 dropped an
//! untrusted identity; nothing is left to keep). From v2 on, a grant stored with "untrusted"
//! set is that untrusted grant, kept; in v1 the flag came with no grant.

use std::net::IpAddr;

use super::{malformed, PartError};
use crate::agent::authorization::Authorization;
use crate::agent::evaluation::Evaluation;
use crate::agent::export::{Export, ExportJob, ExportJobKind, HeldKey};
use crate::agent::registration::{RegisterJob, Registration};
use crate::agent::reservation::Reservation;
use crate::agent::state::{Kept, KeptGrant, Licensing, Settings};
use crate::codes::ExportKey;
use crate::codes::ReservationKind;
use chrono::{DateTime, Utc};

use crate::codec::{Reader, Writer};
use crate::crypto::DeviceKey;
use crate::entitlement::Tag;
use crate::settings::{GatewayUrl, HostIdentity, TransportSettings};
use crate::token::Token;
use crate::udi::Udi;

/// The licensing part as stored, before its signed documents are verified.
pub(crate) struct Stored {
    /// With `registration` unregistered in place of a stored identity, and no grant.
    pub lic: Licensing,
    /// The identity of a stored "registered" state, with its authorization.
    pub registered: Option<Kept>,
    /// The installed reservation's codes as stored, verified at restore.
    pub installed: Option<StoredInstallation>,
}

/// An installed reservation as stored: its codes' texts are parsed and verified at restore.
pub(crate) struct StoredInstallation {
    pub kind: ReservationKind,
    pub key: DeviceKey,
    pub codes: Vec<(String, DateTime<Utc>)>,
}

pub(crate) fn encode(lic: &Licensing) -> Vec<u8> {
    let mut w = Writer::default();
    w.str(&lic.udi.long_form());
    w.count(lic.usage.len());
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
    let grant = a
        .grant
        .as_ref()
        .map(|g| (&g.raw[..], g.received_at))
        .or(a.dormant_grant.as_ref().map(|(raw, at)| (&raw[..], *at)));
    w.opt(grant, |w, (raw, at)| {
        w.bytes(raw);
        w.time(at);
    });
    w.bool(a.grant_untrusted);
    w.opt(a.ooc_since, Writer::time);
    encode_settings(&mut w, &lic.settings);
    w.opt(lic.dormant.as_deref(), |w, kept| {
        w.bytes(&kept.raw);
        w.bytes(kept.key.seed());
        w.time(kept.registered_at);
        w.opt(kept.renewed_at, Writer::time);
        w.bool(kept.authorized_since_registration);
        w.opt(kept.grant.as_ref(), |w, (raw, at)| {
            w.bytes(raw);
            w.time(*at);
        });
        w.opt(kept.ooc_since, Writer::time);
    });
    let res = &lic.reservation;
    w.bool(res.enabled);
    w.bool(res.in_progress);
    w.opt(res.request.as_ref(), |w, key| w.bytes(key.seed()));
    w.count(res.kept.len());
    for key in &res.kept {
        w.bytes(key.seed());
    }
    w.count(lic.export.keys.len());
    for held in &lic.export.keys {
        w.str(&held.key.to_string());
    }
    w.count(lic.export.jobs.len());
    for job in &lic.export.jobs {
        w.u8(match job.kind {
            ExportJobKind::Request => 0,
            ExportJobKind::Return => 1,
        });
        w.str(&job.feature);
    }
    w.opt(res.installed.as_ref(), |w, installed| {
        w.u8(match installed.kind {
            ReservationKind::Specific => 0,
            ReservationKind::Universal => 1,
        });
        w.bytes(installed.key.seed());
        w.count(installed.codes.len());
        for code in &installed.codes {
            w.str(&code.text);
            w.time(code.installed_at);
        }
    });
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

pub(super) fn seed(r: &mut Reader<'_>) -> Result<DeviceKey, PartError> {
    let seed: [u8; 32] = r
        .bytes()?
        .try_into()
        .map_err(|_| malformed("key seed is not 32 bytes"))?;
    Ok(DeviceKey::from_seed(seed))
}

fn grant(r: &mut Reader<'_>) -> Result<Option<KeptGrant>, PartError> {
    r.opt(|r| Ok::<_, PartError>((r.bytes()?.to_vec(), r.time()?)))
}

pub(crate) fn decode(bytes: &[u8], version: u16) -> Result<Stored, PartError> {
    let mut r = Reader::new(bytes);
    let udi = Udi::parse_long_form(&r.string()?).map_err(|e| malformed(format!("udi: {e}")))?;
    let mut usage = Vec::new();
    for _ in 0..r.count()? {
        let tag = Tag::parse(&r.string()?).map_err(|_| malformed("bad tag"))?;
        let count = r.u32()?;
        if usage.iter().any(|(t, _)| *t == tag) {
            return Err(malformed("tag declared twice"));
        }
        usage.push((tag, count));
    }
    usage.shrink_to_fit(); // kept for the agent's life
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
            identity = Some((
                r.bytes()?.to_vec(),
                seed(&mut r)?,
                r.time()?,
                r.opt(Reader::time)?,
            ));
            Registration::Unregistered // replaced once the certificate verifies
        }
        3 => Registration::Expired { at: r.time()? },
        _ => return Err(malformed("bad registration state")),
    };
    let job = r.opt(|r| {
        Ok::<_, PartError>(RegisterJob {
            token: Token::parse(&r.string()?).map_err(|_| malformed("bad token"))?,
            force: r.bool()?,
            key: seed(r)?,
        })
    })?;
    let authorized_since_registration = r.bool()?;
    let stored_grant = grant(&mut r)?;
    let grant_untrusted = r.bool()?;
    let ooc_since = r.opt(Reader::time)?;
    let settings = decode_settings(&mut r)?;
    let dormant = if version >= 2 {
        r.opt(|r| {
            Ok::<_, PartError>(Box::new(Kept {
                raw: r.bytes()?.to_vec(),
                key: seed(r)?,
                registered_at: r.time()?,
                renewed_at: r.opt(Reader::time)?,
                authorized_since_registration: r.bool()?,
                grant: grant(r)?,
                ooc_since: r.opt(Reader::time)?,
            }))
        })?
    } else {
        None
    };
    let mut reservation = Reservation::default();
    let mut export = Export::default();
    let mut installed = None;
    if version >= 3 {
        reservation.enabled = r.bool()?;
        reservation.in_progress = r.bool()?;
        reservation.request = r.opt(seed)?;
        for _ in 0..r.count()? {
            reservation.kept.push(seed(&mut r)?);
        }
        for _ in 0..r.count()? {
            let text = r.string()?;
            let key = ExportKey::parse(&text).map_err(|e| malformed(format!("export key: {e}")))?;
            // Trusted or not is decided at restore, against the anchors configured then.
            export.keys.push(HeldKey {
                key,
                trusted: false,
            });
        }
        for _ in 0..r.count()? {
            let kind = match r.u8()? {
                0 => ExportJobKind::Request,
                1 => ExportJobKind::Return,
                _ => return Err(malformed("bad export job")),
            };
            export.jobs.push(ExportJob {
                kind,
                feature: r.string()?,
            });
        }
        installed = r.opt(|r| {
            let kind = match r.u8()? {
                0 => ReservationKind::Specific,
                1 => ReservationKind::Universal,
                _ => return Err(malformed("bad reservation kind")),
            };
            let key = seed(r)?;
            let mut codes = Vec::new();
            for _ in 0..r.count()? {
                codes.push((r.string()?, r.time()?));
            }
            if codes.is_empty() || (kind == ReservationKind::Specific && codes.len() > 1) {
                return Err(malformed("bad installed codes"));
            }
            Ok(StoredInstallation { kind, key, codes })
        })?;
    }
    r.end()?;
    let registered = identity.map(|(raw, key, registered_at, renewed_at)| Kept {
        raw,
        key,
        registered_at,
        renewed_at,
        authorized_since_registration,
        grant: stored_grant.clone(),
        ooc_since,
    });
    if registered.is_some() && dormant.is_some() {
        return Err(malformed("a registration and a dormant one"));
    }
    // A grant belongs to a registration: without one it is only the v1 "untrusted" flag's
    // leftover, and authorization starts over.
    let authorization = Authorization {
        authorized_since_registration,
        grant_untrusted,
        ooc_since,
        ..Authorization::default()
    };
    Ok(Stored {
        lic: Licensing {
            udi,
            usage,
            evaluation,
            registration,
            job,
            authorization,
            settings,
            dormant,
            reservation,
            export,
        },
        registered,
        installed,
    })
}

fn decode_settings(r: &mut Reader<'_>) -> Result<Settings, PartError> {
    let transport = match r.u8()? {
        0 => TransportSettings::Direct,
        1 => TransportSettings::OnPrem(
            GatewayUrl::parse(&r.string()?).map_err(|_| malformed("bad gateway url"))?,
        ),
        2 => {
            let host = r.string()?;
            let port = r.u32()?.to_string();
            let credentials = r.opt(|r| Ok::<_, PartError>((r.string()?, r.string()?)))?;
            let credentials = credentials.as_ref().map(|(u, p)| (u.as_str(), p.as_str()));
            TransportSettings::proxy(&host, &port, credentials)
                .map_err(|_| malformed("bad proxy settings"))?
        }
        _ => return Err(malformed("bad transport mode")),
    };
    let privacy = r.bool()?;
    let host = r.opt(|r| {
        let name = r.string()?;
        let ip: IpAddr = r.string()?.parse().map_err(|_| malformed("bad host ip"))?;
        HostIdentity::new(&name, ip).map_err(|_| malformed("bad host name"))
    })?;
    Ok(Settings {
        transport,
        privacy,
        host,
        subscriber: r.bool()?,
    })
}
