//! The communication part's layout, every version.
//!
//! ```text
//! v1  highest seen? | next transmit id | usage sequence
//!     | outstanding? (id, one of four tagged request layouts, nonce)
//!     | deregistrations (piid, key seed)* | register, renewId, authorize attempt logs
//!       (last? (at, failure?), failures, next retry?, requested) | usage dirty since?
//!     | notified (eval warnings, eval expired, identity expired?, auth expired?,
//!       clock back?, skew, failing)
//! v2  as v1, but the outstanding request is one layout for every operation (its wire kind,
//!     key seed?, piid?, sequence, usage lines), and failures name the operation by its wire
//!     kind and keep identity and grant rejections as variants (see `failure.rs`)
//! v3  v2, with the export keys a deregistration returns (ids)* after its key seed, the
//!     export key jobs' attempt log after authorize's, the outstanding request's subjects
//!     (strings)* at its end, then: reservation reported untrusted | reserved TERM entitlements whose expiry was reported (tag, end date as days from
//!     the common era)*
//! ```

use super::failure::{decode_failure, encode_failure};
use super::licensing::seed;
use super::{malformed, PartError};
use crate::agent::operation::{Operation, Pending};
use crate::agent::state::{AttemptLog, Communication, Deregistration, Notified, Outstanding};
use crate::codec::{Reader, Writer};
use crate::udi::Uuid;
use crate::wire::{RequestKind, UsageLine};

pub(crate) fn encode(c: &Communication) -> Vec<u8> {
    let mut w = Writer::default();
    w.opt(c.highest_seen, Writer::time);
    w.u64(c.next_transmit_id);
    w.u64(c.usage_sequence);
    w.opt(c.outstanding.as_ref(), |w, o| {
        w.u64(o.id);
        encode_pending(w, &o.pending);
        w.str(&o.nonce);
    });
    w.count(c.deregistrations.len());
    for d in &c.deregistrations {
        w.bytes(&d.piid.0);
        w.bytes(d.key.seed());
        strings(&mut w, &d.export_keys);
    }
    for log in [&c.register, &c.renew_id, &c.authorize, &c.export] {
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
    w.bool(n.reservation_untrusted);
    w.count(n.reserved_expired.len());
    for (tag, end) in &n.reserved_expired {
        w.str(tag);
        w.i32(chrono::Datelike::num_days_from_ce(end));
    }
    w.finish()
}

fn strings(w: &mut Writer, items: &[String]) {
    w.count(items.len());
    for item in items {
        w.str(item);
    }
}

fn read_strings(r: &mut Reader<'_>) -> Result<Vec<String>, PartError> {
    let mut items = Vec::new();
    for _ in 0..r.count()? {
        items.push(r.string()?);
    }
    Ok(items)
}

fn encode_pending(w: &mut Writer, p: &Pending) {
    w.str(p.operation.kind().as_str());
    w.opt(p.key.as_ref(), |w, key| w.bytes(key.seed()));
    w.opt(p.piid, |w, piid| w.bytes(&piid.0));
    w.u64(p.sequence);
    w.count(p.usage.len());
    for line in &p.usage {
        w.str(&line.tag);
        w.u32(line.count);
    }
    strings(w, &p.subjects);
}

fn usage_lines(r: &mut Reader<'_>) -> Result<Vec<UsageLine>, PartError> {
    let mut usage = Vec::new();
    for _ in 0..r.count()? {
        usage.push(UsageLine {
            tag: r.string()?,
            count: r.u32()?,
        });
    }
    Ok(usage)
}

fn decode_pending(r: &mut Reader<'_>, version: u16) -> Result<Pending, PartError> {
    let operation = RequestKind::parse(&r.string()?)
        .and_then(Operation::of_kind)
        .ok_or_else(|| malformed("bad outstanding request"))?;
    Ok(Pending {
        operation,
        key: r.opt(seed)?,
        piid: r.opt(piid)?,
        sequence: r.u64()?,
        usage: usage_lines(r)?,
        subjects: if version >= 3 {
            read_strings(r)?
        } else {
            Vec::new()
        },
    })
}

/// Version 1 stored the outstanding request as one of four tagged layouts.
fn decode_pending_v1(r: &mut Reader<'_>) -> Result<Pending, PartError> {
    Ok(match r.u8()? {
        0 => Pending {
            key: Some(seed(r)?),
            ..Pending::new(Operation::Register)
        },
        1 => Pending::new(Operation::RenewId),
        2 => Pending {
            sequence: r.u64()?,
            usage: usage_lines(r)?,
            ..Pending::new(Operation::RenewAuth)
        },
        3 => Pending {
            piid: Some(piid(r)?),
            key: Some(seed(r)?),
            ..Pending::new(Operation::Deregister)
        },
        _ => return Err(malformed("bad outstanding request")),
    })
}

fn piid(r: &mut Reader<'_>) -> Result<Uuid, PartError> {
    Ok(Uuid(
        r.bytes()?.try_into().map_err(|_| malformed("bad piid"))?,
    ))
}

fn read_log(r: &mut Reader<'_>, version: u16) -> Result<AttemptLog, PartError> {
    Ok(AttemptLog {
        last: r.opt(|r| Ok::<_, PartError>((r.time()?, r.opt(|r| decode_failure(r, version))?)))?,
        failures: r.u32()?,
        next_retry: r.opt(Reader::time)?,
        requested: r.bool()?,
    })
}

pub(crate) fn decode(bytes: &[u8], version: u16) -> Result<Communication, PartError> {
    let mut r = Reader::new(bytes);
    let highest_seen = r.opt(Reader::time)?;
    let next_transmit_id = r.u64()?;
    let usage_sequence = r.u64()?;
    let outstanding = r.opt(|r| {
        let id = r.u64()?;
        let pending = if version == 1 {
            decode_pending_v1(r)?
        } else {
            decode_pending(r, version)?
        };
        Ok::<_, PartError>(Outstanding {
            id,
            pending,
            nonce: r.string()?,
        })
    })?;
    let mut deregistrations = Vec::new();
    for _ in 0..r.count()? {
        deregistrations.push(Deregistration {
            piid: piid(&mut r)?,
            key: seed(&mut r)?,
            export_keys: if version >= 3 {
                read_strings(&mut r)?
            } else {
                Vec::new()
            },
        });
    }
    let register = read_log(&mut r, version)?;
    let renew_id = read_log(&mut r, version)?;
    let authorize = read_log(&mut r, version)?;
    let export = if version >= 3 {
        read_log(&mut r, version)?
    } else {
        AttemptLog::default()
    };
    let usage_dirty_since = r.opt(Reader::time)?;
    let notified = Notified {
        eval_warnings: r.u32()?,
        eval_expired: r.bool()?,
        identity_expired: r.opt(Reader::time)?,
        auth_expired: r.opt(Reader::time)?,
        clock_back: r.opt(Reader::time)?,
        skew: r.bool()?,
        failing: r.bool()?,
        reservation_untrusted: version >= 3 && r.bool()?,
        reserved_expired: if version >= 3 {
            let mut expired = Vec::new();
            for _ in 0..r.count()? {
                let tag = r.string()?;
                let end = chrono::NaiveDate::from_num_days_from_ce_opt(r.i32()?)
                    .ok_or_else(|| malformed("bad end date"))?;
                expired.push((tag, end));
            }
            expired
        } else {
            Vec::new()
        },
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
        export,
        usage_dirty_since,
        notified,
    })
}
