//! License Reservation on the manager's side (SPEC §6): a Smart Account entitled to it turns a
//! product's request code and the licenses chosen into a signed SLR or PLR authorization code,
//! taking those licenses out of the Virtual Account's pools; an SLR update issues a newer code
//! and keeps the change "in transit" (holding the larger of the old and new counts) until its
//! confirmation code arrives; a return code signed by the reservation key puts the licenses
//! back, once.
//!
//! ```
//! use chrono::{DateTime, Utc};
//! use smart_agent::manager::{catalogue, Manager, ReservedLicense, DEFAULT_SMART_ACCOUNT};
//! use smart_agent::{Agent, Config, DeterministicRandom, Environment, Tag};
//!
//! let now: DateTime<Utc> = "2027-03-01T09:00:00Z".parse().unwrap();
//! let mut manager = Manager::new(Environment::Production, Box::new(DeterministicRandom::new(1)))?;
//! manager.set_reservation_allowed(DEFAULT_SMART_ACCOUNT, true)?;
//! let va = manager.default_virtual_account();
//! let enhanced = Tag::parse(catalogue::UCM_ENHANCED).unwrap();
//! manager.add_licenses(&va, &enhanced, 10, None, None)?;
//!
//! let udi = "PID:UCM,SN:37624".parse().unwrap();
//! let config = Config::new(udi, Environment::Production, manager.trust_anchors());
//! let mut agent = Agent::new(config, now).unwrap();
//! agent.reservation_enable(now).unwrap();
//! let request = agent.reservation_request(now).unwrap().to_string();
//!
//! let licenses = [ReservedLicense::perpetual(enhanced, 4)];
//! let issued = manager.authorize_reservation(&va, &request, &licenses, None, false, now)?;
//! let installed = agent.reservation_install(&issued.code, now).unwrap();
//! manager.confirm_reservation(&issued.piid.to_string(), &installed.confirmation.unwrap().to_string())?;
//! assert_eq!(manager.licenses(&va)[0].reserved, 4);
//!
//! let returned = agent.reservation_return(now).unwrap().to_string();
//! manager.return_reservation(&returned, now)?;
//! assert_eq!(manager.licenses(&va)[0].balance, 10);
//! # Ok::<(), smart_agent::manager::ManagerError>(())
//! ```

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};

use super::accounts::{self, VirtualAccountId};
use super::db::{array_at, time_cols, Db, DbError};
use super::error::ManagerError;
use super::Manager;
use crate::codes::{
    ConfirmationCode, LicenseType, PlrClaims, PlrCode, PlrEntitlement, RequestCode,
    ReservationKeyHash, ReservationKind, ReturnCode, SlrClaims, SlrCode, SlrEntitlement,
};
use crate::entitlement::{is_export_controlled_reservation, Tag};
use crate::udi::{Udi, Uuid};

/// The message of a reservation the Virtual Account cannot spare (003:570).
pub const NO_SURPLUS_MESSAGE: &str = "In order to continue, ensure that you have a surplus of the licenses you want to reserve in the Virtual Account.";

/// One license to reserve: a tag, a count and, for a TERM license, its start and end dates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReservedLicense {
    /// The entitlement.
    pub tag: Tag,
    /// How many (at least one).
    pub count: u32,
    /// TERM license dates (start, end); `None` for PERPETUAL.
    pub term: Option<(NaiveDate, NaiveDate)>,
}

impl ReservedLicense {
    /// A PERPETUAL license.
    pub fn perpetual(tag: Tag, count: u32) -> ReservedLicense {
        ReservedLicense {
            tag,
            count,
            term: None,
        }
    }
}

/// A code the manager issued: what the product installs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedReservation {
    /// The product instance id of the reservation.
    pub piid: Uuid,
    /// The product instance the code is for.
    pub udi: Udi,
    /// SLR or PLR.
    pub kind: ReservationKind,
    /// The authorization code, as the product pastes it.
    pub code: String,
}

/// A reservation the manager holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReservationInfo {
    /// Its product instance id.
    pub piid: Uuid,
    /// The product instance's UDI.
    pub udi: Udi,
    /// Where its licenses come from.
    pub virtual_account: VirtualAccountId,
    /// SLR or PLR.
    pub kind: ReservationKind,
    /// Licenses held per tag (while an update is in transit: the larger of old and new).
    pub held: Vec<(Tag, u32)>,
    /// An update was issued and its confirmation code has not arrived yet.
    pub in_transit: bool,
    /// When the latest code was issued.
    pub issued_at: DateTime<Utc>,
    /// The latest code allows export-controlled functionality.
    pub export_controlled: bool,
}

/// What a return code gave back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReturnedReservation {
    /// The reservation's product instance id.
    pub piid: Uuid,
    /// The product instance.
    pub udi: Udi,
    /// The licenses put back into the pools.
    pub freed: Vec<(Tag, u32)>,
}

fn kind_code(kind: ReservationKind) -> i64 {
    match kind {
        ReservationKind::Specific => 0,
        ReservationKind::Universal => 1,
    }
}

/// One stored reservation with its reserved rows.
struct Row {
    piid: Uuid,
    udi: Udi,
    va: i64,
    kind: ReservationKind,
    key: [u8; 32],
    issued_ms: i64,
    confirmation: Option<u32>,
    in_transit: bool,
    export_controlled: bool,
    /// tag → (held, granted, start, end)
    reserved: BTreeMap<String, (u32, u32, Option<NaiveDate>, Option<NaiveDate>)>,
}

fn bad(what: &str) -> DbError {
    DbError::Failed(format!("a stored reservation with {what}"))
}

/// Each license's TERM dates by tag.
fn terms_of(licenses: &[ReservedLicense]) -> BTreeMap<String, Option<(NaiveDate, NaiveDate)>> {
    licenses
        .iter()
        .map(|l| (l.tag.to_string(), l.term))
        .collect()
}

/// Writes (or replaces) one reserved row: `held` from the pool, `granted` by the latest code.
fn write_reserved(
    db: &Db,
    piid: &Uuid,
    tag: &str,
    held: u32,
    granted: u32,
    term: Option<(NaiveDate, NaiveDate)>,
) -> Result<(), DbError> {
    db.run(
        "INSERT INTO reserved (piid, tag, held, granted, start_date, end_date)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (piid, tag) DO UPDATE SET held = excluded.held,
             granted = excluded.granted, start_date = excluded.start_date,
             end_date = excluded.end_date",
        rusqlite::params![
            piid.0.as_slice(),
            tag,
            held,
            granted,
            date_col(term.map(|(s, _)| s)),
            date_col(term.map(|(_, e)| e))
        ],
    )?;
    Ok(())
}

fn date_col(d: Option<NaiveDate>) -> Option<String> {
    d.map(|d| d.format("%Y-%m-%d").to_string())
}

fn date_of(s: Option<String>) -> Result<Option<NaiveDate>, DbError> {
    match s {
        None => Ok(None),
        Some(s) => NaiveDate::parse_from_str(&s, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| bad("a bad date")),
    }
}

const ROW: &str =
    "piid, udi, va, kind, reservation_key, issued_ms, confirmation, in_transit, export_controlled";

fn row_where(
    db: &Db,
    condition: &str,
    value: &dyn rusqlite::ToSql,
) -> Result<Option<Row>, DbError> {
    let head = db.optional(
        &format!("SELECT {ROW} FROM reservations WHERE {condition}"),
        [value],
        |r| {
            Ok((
                Uuid(array_at(r, 0)?),
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                array_at::<32>(r, 4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, Option<i64>>(6)?,
                r.get::<_, bool>(7)?,
                r.get::<_, bool>(8)?,
            ))
        },
    )?;
    let Some((piid, udi, va, kind, key, issued_ms, confirmation, in_transit, export)) = head else {
        return Ok(None);
    };
    let mut stmt = db.conn().prepare_cached(
        "SELECT tag, held, granted, start_date, end_date FROM reserved WHERE piid = ?1",
    )?;
    let rows = stmt.query_map([piid.0.as_slice()], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, u32>(1)?,
            r.get::<_, u32>(2)?,
            r.get::<_, Option<String>>(3)?,
            r.get::<_, Option<String>>(4)?,
        ))
    })?;
    let mut reserved = BTreeMap::new();
    for row in rows {
        let (tag, held, granted, start, end) = row?;
        reserved.insert(tag, (held, granted, date_of(start)?, date_of(end)?));
    }
    Ok(Some(Row {
        piid,
        udi: Udi::parse_long_form(&udi).map_err(|_| bad("a bad UDI"))?,
        va,
        kind: if kind == 0 {
            ReservationKind::Specific
        } else {
            ReservationKind::Universal
        },
        key,
        issued_ms,
        confirmation: confirmation.and_then(|c| u32::try_from(c).ok()),
        in_transit,
        export_controlled: export,
        reserved,
    }))
}

/// The reservation named by `instance`: its UDI (long form) or its piid.
fn find(db: &Db, instance: &str) -> Result<Row, ManagerError> {
    let by_piid = instance
        .parse::<Uuid>()
        .ok()
        .map(|piid| row_where(db, "piid = ?1", &piid.0.as_slice()))
        .transpose()?
        .flatten();
    let found = match by_piid {
        Some(row) => Some(row),
        None => match instance.parse::<Udi>() {
            Ok(udi) => row_where(db, "udi = ?1", &udi.long_form())?,
            Err(_) => None,
        },
    };
    found.ok_or_else(|| ManagerError::UnknownReservation(instance.to_string()))
}

fn smart_of(db: &Db, va: i64) -> Result<VirtualAccountId, ManagerError> {
    accounts::va_name(db, va)?
        .ok_or_else(|| ManagerError::Storage("a reservation of an unknown Virtual Account".into()))
}

fn account_flag(db: &Db, smart: &str, column: &str) -> Result<bool, ManagerError> {
    db.optional(
        &format!("SELECT {column} FROM smart_accounts WHERE name = ?1"),
        [smart],
        |r| r.get::<_, bool>(0),
    )?
    .ok_or_else(|| ManagerError::UnknownSmartAccount(smart.to_string()))
}

/// Whether Smart Account `smart` is under export restrictions (SPEC §7).
pub(crate) fn export_restricted(db: &Db, smart: &str) -> Result<bool, ManagerError> {
    account_flag(db, smart, "export_restricted")
}

fn set_account_flag(db: &Db, smart: &str, column: &str, on: bool) -> Result<(), ManagerError> {
    let changed = db.run(
        &format!("UPDATE smart_accounts SET {column} = ?1 WHERE name = ?2"),
        rusqlite::params![on, smart],
    )?;
    if changed == 0 {
        return Err(ManagerError::UnknownSmartAccount(smart.to_string()));
    }
    Ok(())
}

/// Checks that the account can spare `more` licenses of each tag, without substitution
/// (reservations never borrow, 003:514): its own pool less what is reserved and what its
/// online consumers use of it.
fn check_surplus(
    db: &Db,
    va: &VirtualAccountId,
    more: &BTreeMap<String, u32>,
) -> Result<(), ManagerError> {
    let Some(account) = accounts::get(db, va)? else {
        return Err(ManagerError::UnknownVirtualAccount(va.clone()));
    };
    let allocation = super::handle::allocation(db, &account, None)?;
    for (tag, want) in more.iter().filter(|(_, n)| **n > 0) {
        let Some(pool) = account.pools.get(tag) else {
            return Err(ManagerError::NoSurplus);
        };
        let online = allocation.in_use.get(tag).copied().unwrap_or(0);
        let lent = allocation.lent.get(tag).copied().unwrap_or(0);
        let spare = pool
            .purchased
            .saturating_sub(account.reserved_of(tag))
            .saturating_sub(online)
            .saturating_sub(lent);
        if spare < *want {
            return Err(ManagerError::NoSurplus);
        }
    }
    Ok(())
}

fn validate(licenses: &[ReservedLicense]) -> Result<BTreeMap<String, u32>, ManagerError> {
    let mut counts = BTreeMap::new();
    for l in licenses {
        if l.count == 0 {
            return Err(ManagerError::InvalidReservation("a count of 0"));
        }
        if let Some((start, end)) = l.term {
            if end < start {
                return Err(ManagerError::InvalidReservation(
                    "a TERM license that ends before it starts",
                ));
            }
        }
        if counts.insert(l.tag.to_string(), l.count).is_some() {
            return Err(ManagerError::InvalidReservation("a tag named twice"));
        }
    }
    Ok(counts)
}

fn slr_entitlements(
    account: &accounts::VirtualAccount,
    licenses: &[ReservedLicense],
) -> Vec<SlrEntitlement> {
    licenses
        .iter()
        .map(|l| {
            let (display_name, description) = account.names(l.tag.as_str());
            SlrEntitlement {
                tag: l.tag.clone(),
                count: l.count,
                start_date: l.term.map(|(s, _)| s),
                end_date: l.term.map(|(_, e)| e),
                license_type: if l.term.is_some() {
                    LicenseType::Term
                } else {
                    LicenseType::Perpetual
                },
                display_name: display_name.unwrap_or_default(),
                tag_description: description.unwrap_or_default(),
                subscription_id: None,
            }
        })
        .collect()
}

impl Manager {
    /// Entitles Smart Account `smart` to License Reservation, or takes it away (existing
    /// reservations stay until returned).
    pub fn set_reservation_allowed(
        &mut self,
        smart: &str,
        allowed: bool,
    ) -> Result<(), ManagerError> {
        self.admin(|db, _| set_account_flag(db, smart, "reservation", allowed))
    }

    /// Puts Smart Account `smart` under export restrictions or lifts them (SPEC §7): its
    /// tokens never allow export-controlled functionality; it uses export authorization keys.
    pub fn set_export_restricted(
        &mut self,
        smart: &str,
        restricted: bool,
    ) -> Result<(), ManagerError> {
        self.admin(|db, _| set_account_flag(db, smart, "export_restricted", restricted))
    }

    /// Whether Smart Account `smart` is entitled to License Reservation.
    pub fn reservation_allowed(&self, smart: &str) -> Result<bool, ManagerError> {
        account_flag(&self.db, smart, "reservation")
    }

    /// Whether Smart Account `smart` is under export restrictions.
    pub fn is_export_restricted(&self, smart: &str) -> Result<bool, ManagerError> {
        export_restricted(&self.db, smart)
    }

    /// Turns a product's reservation request code into a signed authorization code for the
    /// reservation of `licenses` from Virtual Account `va` (SLR), or — with `plr`, a PLR
    /// entitlement of `va` — a PLR code consuming one license of it. `export` sets the signed
    /// export-control flag (refused for an account under export restrictions). The first code
    /// for a request's key gets a fresh piid. Refused (nothing changes) if the account is not
    /// entitled to reservation, the pools cannot spare the licenses, the instance already
    /// holds a reservation, or the request was returned already.
    pub fn authorize_reservation(
        &mut self,
        va: &VirtualAccountId,
        request_code: &str,
        licenses: &[ReservedLicense],
        plr: Option<&Tag>,
        export: bool,
        now: DateTime<Utc>,
    ) -> Result<IssuedReservation, ManagerError> {
        let request = RequestCode::parse(request_code).map_err(ManagerError::Code)?;
        let key = *request.reservation_key();
        let environment = self.environment;
        let txn = self.db.begin(None)?;
        let db = &self.db;
        if !account_flag(db, va.smart_account(), "reservation")? {
            return Err(ManagerError::ReservationNotAllowed(
                va.smart_account().to_string(),
            ));
        }
        if export && export_restricted(db, va.smart_account())? {
            return Err(ManagerError::ExportRestricted(
                va.smart_account().to_string(),
            ));
        }
        let retired = db.optional(
            "SELECT 1 FROM retired_reservation_keys WHERE reservation_key = ?1",
            [key.as_slice()],
            |_| Ok(()),
        )?;
        if retired.is_some() {
            return Err(ManagerError::ReservationReturned);
        }
        if row_where(db, "reservation_key = ?1", &key.as_slice())?.is_some()
            || row_where(db, "udi = ?1", &request.udi().long_form())?.is_some()
        {
            return Err(ManagerError::ReservationExists(request.udi().long_form()));
        }
        let account = accounts::get(db, va)?
            .ok_or_else(|| ManagerError::UnknownVirtualAccount(va.clone()))?;
        let (kind, counts) = match plr {
            None => {
                if licenses.is_empty() {
                    return Err(ManagerError::InvalidReservation("no licenses to reserve"));
                }
                (ReservationKind::Specific, validate(licenses)?)
            }
            Some(tag) => {
                if !licenses.is_empty() {
                    return Err(ManagerError::InvalidReservation(
                        "a PLR reserves its PLR entitlement only (no --license)",
                    ));
                }
                (
                    ReservationKind::Universal,
                    BTreeMap::from([(tag.to_string(), 1)]),
                )
            }
        };
        check_surplus(db, va, &counts)?;
        let piid = super::instances::fresh_piid(db, &mut *self.random).map_err(|e| match e {
            super::instances::FreshError::Db(e) => ManagerError::from(e),
            super::instances::FreshError::Random => ManagerError::Random,
        })?;
        let timestamp = truncate_ms(now);
        let key_hash = ReservationKeyHash::of(&key);
        let (code, confirmation, export_controlled) = match plr {
            None => {
                let claims = SlrClaims {
                    piid,
                    timestamp,
                    udi: request.udi().clone(),
                    reservation_key: key_hash,
                    environment,
                    export_controlled: export,
                    entitlements: slr_entitlements(&account, licenses),
                };
                let code = SlrCode::issue(&claims, self.key()).map_err(ManagerError::Issue)?;
                let confirmation = code.confirmation_code().value();
                (code.to_string(), Some(confirmation), export)
            }
            Some(tag) => {
                let export = export || is_export_controlled_reservation(tag.as_str());
                let claims = PlrClaims {
                    piid,
                    timestamp,
                    udi: request.udi().clone(),
                    reservation_key: key_hash,
                    environment,
                    export_controlled: export,
                    entitlements: vec![PlrEntitlement {
                        tag: tag.clone(),
                        count: 1,
                    }],
                };
                let code = PlrCode::issue(&claims, self.key()).map_err(ManagerError::Issue)?;
                (code.to_string(), None, export)
            }
        };
        db.run(
            "INSERT INTO reservations (piid, udi, va, kind, reservation_key, code, issued_ms,
                 confirmation, in_transit, export_controlled)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9)",
            rusqlite::params![
                piid.0.as_slice(),
                request.udi().long_form(),
                account.id,
                kind_code(kind),
                key.as_slice(),
                code,
                timestamp.timestamp_millis(),
                confirmation.map(i64::from),
                export_controlled
            ],
        )?;
        let terms = terms_of(licenses);
        for (tag, count) in &counts {
            let term = terms.get(tag).copied().flatten();
            write_reserved(db, &piid, tag, *count, *count, term)?;
        }
        txn.commit()?;
        Ok(IssuedReservation {
            piid,
            udi: request.udi().clone(),
            kind,
            code,
        })
    }

    /// A newer code for an instance's reservation (named by UDI or piid), same piid and
    /// reservation key: an SLR with `licenses` as its new content (the change stays in transit
    /// — the larger of old and new counts held — until [`Manager::confirm_reservation`]), or a
    /// PLR with one more PLR entitlement, `plr`, added to the set.
    pub fn update_reservation(
        &mut self,
        instance: &str,
        licenses: &[ReservedLicense],
        plr: Option<&Tag>,
        now: DateTime<Utc>,
    ) -> Result<IssuedReservation, ManagerError> {
        let environment = self.environment;
        let txn = self.db.begin(None)?;
        let db = &self.db;
        let row = find(db, instance)?;
        let va = smart_of(db, row.va)?;
        let account = accounts::by_row(db, row.va)?;
        let timestamp = truncate_ms(now)
            .max(DateTime::from_timestamp_millis(row.issued_ms.saturating_add(1)).unwrap_or(now));
        let key_hash = ReservationKeyHash::of(&row.key);
        let (code, confirmation, new_counts) = match (row.kind, plr) {
            (ReservationKind::Specific, None) => {
                let counts = validate(licenses)?;
                if counts.is_empty() {
                    return Err(ManagerError::InvalidReservation("no licenses to reserve"));
                }
                let more: BTreeMap<String, u32> = counts
                    .iter()
                    .map(|(tag, n)| {
                        let held = row.reserved.get(tag).map_or(0, |r| r.0);
                        (tag.clone(), n.saturating_sub(held))
                    })
                    .collect();
                check_surplus(db, &va, &more)?;
                let claims = SlrClaims {
                    piid: row.piid,
                    timestamp,
                    udi: row.udi.clone(),
                    reservation_key: key_hash,
                    environment,
                    export_controlled: row.export_controlled,
                    entitlements: slr_entitlements(&account, licenses),
                };
                let code = SlrCode::issue(&claims, self.key()).map_err(ManagerError::Issue)?;
                let confirmation = code.confirmation_code().value();
                (code.to_string(), Some(confirmation), counts)
            }
            (ReservationKind::Universal, Some(tag)) if licenses.is_empty() => {
                let mut counts: BTreeMap<String, u32> =
                    row.reserved.iter().map(|(t, r)| (t.clone(), r.1)).collect();
                check_surplus(db, &va, &BTreeMap::from([(tag.to_string(), 1)]))?;
                let n = counts.entry(tag.to_string()).or_insert(0);
                *n = n.saturating_add(1);
                let claims = PlrClaims {
                    piid: row.piid,
                    timestamp,
                    udi: row.udi.clone(),
                    reservation_key: key_hash,
                    environment,
                    export_controlled: is_export_controlled_reservation(tag.as_str()),
                    entitlements: vec![PlrEntitlement {
                        tag: tag.clone(),
                        count: 1,
                    }],
                };
                let code = PlrCode::issue(&claims, self.key()).map_err(ManagerError::Issue)?;
                (code.to_string(), None, counts)
            }
            (ReservationKind::Specific, Some(_)) => {
                return Err(ManagerError::InvalidReservation(
                    "an SLR is updated with --license, not --plr",
                ))
            }
            (ReservationKind::Universal, _) => {
                return Err(ManagerError::InvalidReservation(
                    "a PLR is updated with --plr <entitlement> (added to its set)",
                ))
            }
        };
        let in_transit = row.kind == ReservationKind::Specific;
        db.run(
            "UPDATE reservations SET code = ?1, issued_ms = ?2, confirmation = ?3,
                 in_transit = ?4 WHERE piid = ?5",
            rusqlite::params![
                code,
                timestamp.timestamp_millis(),
                confirmation.map(i64::from),
                in_transit,
                row.piid.0.as_slice()
            ],
        )?;
        let terms = terms_of(licenses);
        // Held: the larger of old and new while an SLR update is in transit.
        let tags: std::collections::BTreeSet<&String> =
            row.reserved.keys().chain(new_counts.keys()).collect();
        for tag in tags {
            let old = row.reserved.get(tag).map_or(0, |r| r.0);
            let new = new_counts.get(tag).copied().unwrap_or(0);
            let held = if in_transit { old.max(new) } else { new };
            let term = terms
                .get(tag)
                .copied()
                .flatten()
                .or_else(|| row.reserved.get(tag).and_then(|r| r.2.zip(r.3)));
            write_reserved(db, &row.piid, tag, held, new, term)?;
        }
        txn.commit()?;
        Ok(IssuedReservation {
            piid: row.piid,
            udi: row.udi,
            kind: row.kind,
            code,
        })
    }

    /// The product's confirmation code for the latest code of an instance's reservation
    /// (UDI or piid): 1–8 hex digits, any case (SPEC §6). An update in transit is then
    /// settled: the new counts are held, the rest goes back to the pools.
    pub fn confirm_reservation(
        &mut self,
        instance: &str,
        confirmation: &str,
    ) -> Result<(), ManagerError> {
        self.admin(|db, _| {
            let row = find(db, instance)?;
            let Some(expected) = row.confirmation else {
                return Err(ManagerError::InvalidReservation(
                    "a PLR has no confirmation code",
                ));
            };
            ConfirmationCode::new(expected)
                .check(confirmation)
                .map_err(ManagerError::Code)?;
            db.run(
                "UPDATE reservations SET in_transit = 0 WHERE piid = ?1",
                [row.piid.0.as_slice()],
            )?;
            db.run(
                "UPDATE reserved SET held = granted WHERE piid = ?1",
                [row.piid.0.as_slice()],
            )?;
            db.run(
                "DELETE FROM reserved WHERE piid = ?1 AND held = 0",
                [row.piid.0.as_slice()],
            )?;
            Ok(())
        })
    }

    /// A product's return code: accepted only if signed by the reservation key of the
    /// reservation it names (a code installed, or issued against a cancelled request), and
    /// only once (the key is then retired). The licenses go back to the pools; a forged,
    /// corrupted or replayed code frees nothing.
    pub fn return_reservation(
        &mut self,
        return_code: &str,
        now: DateTime<Utc>,
    ) -> Result<ReturnedReservation, ManagerError> {
        let code = ReturnCode::parse(return_code).map_err(ManagerError::Code)?;
        self.admin(|db, _| {
            let replayed = db.optional(
                "SELECT 1 FROM retired_reservation_keys WHERE piid = ?1",
                [code.piid().0.as_slice()],
                |_| Ok(()),
            )?;
            let Some(row) = row_where(db, "piid = ?1", &code.piid().0.as_slice())? else {
                return Err(if replayed.is_some() {
                    ManagerError::ReservationReturned
                } else {
                    ManagerError::UnknownReservation(code.piid().to_string())
                });
            };
            code.verify(&row.key).map_err(ManagerError::Code)?;
            if code.timestamp().timestamp_millis() > row.issued_ms {
                return Err(ManagerError::InvalidReservation(
                    "a return code for a code this manager never issued",
                ));
            }
            let freed = row
                .reserved
                .iter()
                .filter_map(|(tag, r)| Some((Tag::parse(tag).ok()?, r.0)))
                .collect();
            db.run(
                "DELETE FROM reservations WHERE piid = ?1",
                [row.piid.0.as_slice()],
            )?;
            let (s, ns) = time_cols(now);
            db.run(
                "INSERT INTO retired_reservation_keys (reservation_key, piid, at_s, at_ns)
                 VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![row.key.as_slice(), row.piid.0.as_slice(), s, ns],
            )?;
            Ok(ReturnedReservation {
                piid: row.piid,
                udi: row.udi,
                freed,
            })
        })
    }

    /// Every reservation, by UDI (empty if the database cannot be read).
    pub fn reservations(&self) -> Vec<ReservationInfo> {
        let list = || -> Result<Vec<ReservationInfo>, ManagerError> {
            let mut stmt = self
                .db
                .conn()
                .prepare_cached("SELECT piid FROM reservations ORDER BY udi")
                .map_err(DbError::from)?;
            let piids: Vec<[u8; 16]> = stmt
                .query_map([], |r| array_at::<16>(r, 0))
                .and_then(|rows| rows.collect::<Result<_, _>>())
                .map_err(DbError::from)?;
            let mut out = Vec::new();
            for piid in piids {
                let Some(row) = row_where(&self.db, "piid = ?1", &piid.as_slice())? else {
                    continue;
                };
                out.push(ReservationInfo {
                    piid: row.piid,
                    udi: row.udi,
                    virtual_account: smart_of(&self.db, row.va)?,
                    kind: row.kind,
                    held: row
                        .reserved
                        .iter()
                        .filter_map(|(t, r)| Some((Tag::parse(t).ok()?, r.0)))
                        .collect(),
                    in_transit: row.in_transit,
                    issued_at: DateTime::from_timestamp_millis(row.issued_ms)
                        .unwrap_or(DateTime::<Utc>::MIN_UTC),
                    export_controlled: row.export_controlled,
                });
            }
            Ok(out)
        };
        list().unwrap_or_default()
    }
}

/// Codes carry whole milliseconds.
fn truncate_ms(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}
