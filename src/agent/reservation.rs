//! Specific and Permanent License Reservation (SPEC §6): licensing without a manager on the
//! network. Every step is local — codes travel by copy and paste — so each command either
//! changes the licensing part or, refused, changes nothing at all (not even the time seen).
//!
//! ```text
//!                 enable                 request (same code until cancel)
//! UNREGISTERED ─────────▶ RESERVATION ──────────────▶ RESERVATION IN PROGRESS
//!   ▲      ▲              IN PROGRESS                    │  cancel / return-authorization
//!   │      │ disable                                     │  → UNREGISTERED (mode stays on)
//!   │      └── UNREGISTERED, mode on ◀───────────────────┤
//!   │                      ▲   return (return code)      │ install(SLR or PLR code)
//!   │                      └───────────────── REGISTERED - SPECIFIC | UNIVERSAL LICENSE
//!   │                                          RESERVATION  (install a newer code: update /
//!   └──────────────── disable (nothing installed)          PLR adds to the set)
//! ```
//!
//! The device makes an Ed25519 reservation key per request; the request code carries its
//! public key, the manager's authorization code its hash (signed), the return code a signature
//! by it. Cancel keeps the cancelled request's key (the seed's order is request → authorize →
//! cancel → return-authorization, 004:843-906); kept keys are bounded to the 16 most recent
//! and survive `disable`.

use chrono::{DateTime, NaiveDate, Utc};

use super::state::Licensing;
use super::{Agent, EventKind};
use crate::codes::{
    AuthorizationCode, ConfirmationCode, LicenseType, PlrClaims, RequestCode, ReservationKeyHash,
    ReservationKind, ReturnCode, ReturnKind, SlrClaims,
};
use crate::crypto::{DeviceKey, Environment, TrustAnchor};
use crate::entitlement::{is_export_controlled_reservation, Tag};
use crate::error::Error;
use crate::udi::{Udi, Uuid};

/// How many kept reservation keys (outstanding or cancelled requests) an agent holds.
pub const KEPT_KEYS: usize = 16;

/// What [`Agent::reservation_install`] installed; for SLR, the confirmation code to enter
/// into the manager ("Please enter the confirmation code to CSSM account: `<code>`").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Installed {
    /// SLR or PLR.
    pub kind: ReservationKind,
    /// The SLR's confirmation code; PLR prints none.
    pub confirmation: Option<ConfirmationCode>,
}

/// One reserved entitlement as the agent uses it (SLR and PLR alike).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Reserved {
    pub tag: Tag,
    pub count: u32,
    pub license_type: LicenseType,
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    pub display_name: Option<String>,
    pub description: Option<String>,
}

/// A verified authorization code and what it grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Granted {
    pub piid: Uuid,
    pub timestamp: DateTime<Utc>,
    pub udi: Udi,
    pub key: ReservationKeyHash,
    pub export_controlled: bool,
    pub entitlements: Vec<Reserved>,
    pub confirmation: Option<ConfirmationCode>,
}

impl Granted {
    fn of_slr(claims: SlrClaims, confirmation: ConfirmationCode) -> Granted {
        Granted {
            piid: claims.piid,
            timestamp: claims.timestamp,
            udi: claims.udi,
            key: claims.reservation_key,
            export_controlled: claims.export_controlled,
            entitlements: claims
                .entitlements
                .into_iter()
                .map(|e| Reserved {
                    tag: e.tag,
                    count: e.count,
                    license_type: e.license_type,
                    start_date: e.start_date,
                    end_date: e.end_date,
                    display_name: Some(e.display_name).filter(|s| !s.is_empty()),
                    description: Some(e.tag_description).filter(|s| !s.is_empty()),
                })
                .collect(),
            confirmation: Some(confirmation),
        }
    }

    fn of_plr(claims: PlrClaims) -> Granted {
        Granted {
            piid: claims.piid,
            timestamp: claims.timestamp,
            udi: claims.udi,
            key: claims.reservation_key,
            export_controlled: claims.export_controlled,
            entitlements: claims
                .entitlements
                .into_iter()
                .map(|e| Reserved {
                    tag: e.tag,
                    count: e.count,
                    license_type: LicenseType::Perpetual,
                    start_date: None,
                    end_date: None,
                    display_name: None,
                    description: None,
                })
                .collect(),
            confirmation: None,
        }
    }

    /// Whether it allows export-controlled functionality (SPEC §6, §7): the signed flag, or a
    /// reserved export-controlled entitlement with a count of at least one.
    pub fn allows_export(&self) -> bool {
        self.export_controlled
            || self
                .entitlements
                .iter()
                .any(|e| e.count >= 1 && is_export_controlled_reservation(e.tag.as_str()))
    }
}

/// What a stored code claims without trusting it (an installation kept while untrusted must
/// still be returnable): `None` if it lacks a signed field.
pub(crate) fn granted_unverified(code: &AuthorizationCode) -> Option<Granted> {
    Some(match code {
        AuthorizationCode::Slr(slr) => Granted::of_slr(
            SlrClaims {
                piid: slr.piid(),
                timestamp: slr.timestamp(),
                udi: slr.signed_udi()?.clone(),
                reservation_key: slr.reservation_key()?,
                environment: slr.environment()?,
                export_controlled: slr.export_controlled(),
                entitlements: slr.entitlements().to_vec(),
            },
            slr.confirmation_code(),
        ),
        AuthorizationCode::Plr(plr) => Granted::of_plr(plr.unverified_claims().clone()),
    })
}

/// Parses and verifies an authorization code: the first two install checks of SPEC §6.
pub(crate) fn verify_code(
    text: &str,
    anchors: &[TrustAnchor],
    environment: Environment,
) -> Result<(AuthorizationCode, Granted), Error> {
    let code = AuthorizationCode::parse(text).map_err(Error::ReservationCode)?;
    let granted = match &code {
        AuthorizationCode::Slr(slr) => Granted::of_slr(
            slr.verify(anchors, environment)
                .map_err(Error::ReservationCode)?,
            slr.confirmation_code(),
        ),
        AuthorizationCode::Plr(plr) => Granted::of_plr(
            plr.verify(anchors, environment)
                .map_err(Error::ReservationCode)?,
        ),
    };
    Ok((code, granted))
}

/// One installed code: its text as installed and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct InstalledCode {
    /// The code's canonical text (what `Display` prints), re-verified at restore.
    pub text: String,
    pub installed_at: DateTime<Utc>,
    /// Derived: the verified claims (the code at install, again at restore).
    pub granted: Granted,
}

/// The installed reservation: one SLR code, or a set of PLR codes, under one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct InstalledCodes {
    pub kind: ReservationKind,
    pub key: DeviceKey,
    /// In install order; an SLR update replaces the one code, a PLR code is added.
    pub codes: Vec<InstalledCode>,
    /// Derived at restore: the codes verify against the anchors configured now. An untrusted
    /// installation is kept (SPEC §12: restore never destroys) but not used.
    pub trusted: bool,
}

impl InstalledCodes {
    /// The code installed last.
    pub fn latest(&self) -> Option<&InstalledCode> {
        self.codes.last()
    }
}

/// The reservation state of the licensing part.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Reservation {
    /// Reservation mode is on.
    pub enabled: bool,
    /// `RESERVATION IN PROGRESS`: enabled or requested, and not yet cancelled, returned or
    /// installed.
    pub in_progress: bool,
    /// The outstanding request's key: the same request code until cancel.
    pub request: Option<DeviceKey>,
    /// Keys of cancelled requests (and of an outstanding one when disabled), oldest first, so
    /// a return code can be made for any code the manager issued against them.
    pub kept: Vec<DeviceKey>,
    pub installed: Option<InstalledCodes>,
}

impl Reservation {
    /// The installation in force (installed and trusted).
    pub fn in_force(&self) -> Option<&InstalledCodes> {
        self.installed.as_ref().filter(|i| i.trusted)
    }
}

/// Keeps `key`, dropping the oldest beyond [`KEPT_KEYS`]; returns how many were dropped.
fn keep(lic: &mut Licensing, key: DeviceKey) -> usize {
    let kept = &mut lic.reservation.kept;
    kept.retain(|k| *k != key);
    kept.push(key);
    let excess = kept.len().saturating_sub(KEPT_KEYS);
    kept.drain(..excess);
    excess
}

impl Agent {
    /// Refuses reservation commands on a subscriber node and while reservation mode is off.
    fn reservation_mode(&self) -> Result<(), Error> {
        if self.lic.settings.subscriber {
            return Err(Error::SubscriberNode);
        }
        if !self.lic.reservation.enabled {
            return Err(Error::ReservationNotEnabled);
        }
        Ok(())
    }

    /// Refuses registration commands in reservation mode (SPEC §6).
    pub(crate) fn not_in_reservation_mode(&self) -> Result<(), Error> {
        if self.lic.reservation.enabled {
            Err(Error::RegistrationInReservationMode)
        } else {
            Ok(())
        }
    }

    /// Turns reservation mode on (`license smart reservation enable`): only while not
    /// registered (405 while registered or a registration is pending). Status `RESERVATION IN
    /// PROGRESS` (003:429). Enabling twice changes nothing.
    pub fn reservation_enable(&mut self, now: DateTime<Utc>) -> Result<(), Error> {
        if self.lic.settings.subscriber {
            return Err(Error::SubscriberNode);
        }
        if self.lic.reservation.enabled {
            return Ok(());
        }
        if self.lic.job.is_some() || self.valid_identity(self.effective(now)).is_some() {
            return Err(Error::ReservationNotWhileRegistered);
        }
        let t = self.observe(now);
        self.write_licensing(t, |lic| {
            lic.reservation.enabled = true;
            lic.reservation.in_progress = true;
        });
        self.check_thresholds(t);
        Ok(())
    }

    /// The reservation request code to enter into the manager ("Enter the following
    /// reservation request code into the CSSM:"): the same code until [`cancel`]. Makes a new
    /// reservation key for a new request.
    ///
    /// [`cancel`]: Agent::reservation_cancel
    pub fn reservation_request(&mut self, now: DateTime<Utc>) -> Result<RequestCode, Error> {
        self.reservation_mode()?;
        if self.lic.reservation.installed.is_some() {
            return Err(Error::ReservationInstalled);
        }
        if let Some(key) = &self.lic.reservation.request {
            let code = RequestCode::new(self.config.udi.clone(), key.public_key());
            if self.lic.reservation.in_progress {
                return Ok(code);
            }
            let t = self.observe(now);
            self.write_licensing(t, |lic| lic.reservation.in_progress = true);
            self.check_thresholds(t);
            return Ok(code);
        }
        let key =
            DeviceKey::generate(self.config.random.as_mut()).map_err(|_| Error::RandomFailed)?;
        let code = RequestCode::new(self.config.udi.clone(), key.public_key());
        let t = self.observe(now);
        self.write_licensing(t, |lic| {
            lic.reservation.request = Some(key);
            lic.reservation.in_progress = true;
        });
        self.check_thresholds(t);
        Ok(code)
    }

    /// Cancels the outstanding request (before install). Its key is kept, so a code the manager
    /// issued for it can still be answered with [`reservation_return_authorization`]. With
    /// nothing outstanding there is nothing to do.
    ///
    /// [`reservation_return_authorization`]: Agent::reservation_return_authorization
    pub fn reservation_cancel(&mut self, now: DateTime<Utc>) -> Result<(), Error> {
        self.reservation_mode()?;
        let Some(key) = self.lic.reservation.request.clone() else {
            return Ok(());
        };
        let t = self.observe(now);
        let dropped = self.write_licensing(t, |lic| {
            lic.reservation.request = None;
            lic.reservation.in_progress = false;
            keep(lic, key)
        });
        self.push_keys_dropped(t, dropped);
        self.check_thresholds(t);
        Ok(())
    }

    /// Installs an authorization code (SLR XML or PLR): a first install against the
    /// outstanding request, an SLR update (same piid and key, not older), or one more PLR code
    /// for the installed set. Each check of SPEC §6 has its own error; a refused code changes
    /// nothing. Prints "Authorization code installed." and, for SLR, the confirmation code.
    pub fn reservation_install(
        &mut self,
        code: &str,
        now: DateTime<Utc>,
    ) -> Result<Installed, Error> {
        self.reservation_mode()?;
        let res = &self.lic.reservation;
        if res.installed.is_none() && res.request.is_none() {
            return Err(Error::NoReservationRequest);
        }
        let (parsed, granted) =
            verify_code(code, &self.config.trust_anchors, self.config.environment)?;
        if granted.udi != self.config.udi {
            return Err(Error::ReservationForAnotherInstance(
                granted.udi.long_form(),
            ));
        }
        let kind = match parsed {
            AuthorizationCode::Slr(_) => ReservationKind::Specific,
            AuthorizationCode::Plr(_) => ReservationKind::Universal,
        };
        let key = match &res.installed {
            Some(installed) => {
                match (installed.kind, kind) {
                    (ReservationKind::Universal, ReservationKind::Specific) => {
                        return Err(Error::PlrInstalled)
                    }
                    (ReservationKind::Specific, ReservationKind::Universal) => {
                        return Err(Error::SlrInstalled)
                    }
                    _ => {}
                }
                let latest = installed.latest().map(|c| &c.granted);
                if ReservationKeyHash::of(&installed.key.public_key()) != granted.key
                    || latest.is_some_and(|l| l.piid != granted.piid)
                {
                    return Err(Error::ReservationCodeMismatch);
                }
                if latest.is_some_and(|l| granted.timestamp < l.timestamp) {
                    return Err(Error::ReservationCodeOlder);
                }
                installed.key.clone()
            }
            None => {
                let Some(request) = &res.request else {
                    return Err(Error::NoReservationRequest);
                };
                if ReservationKeyHash::of(&request.public_key()) != granted.key {
                    return Err(Error::ReservationCodeMismatch);
                }
                request.clone()
            }
        };
        let installed = Installed {
            kind,
            confirmation: granted.confirmation,
        };
        let t = self.observe(now);
        let entry = InstalledCode {
            text: parsed.to_string(),
            installed_at: t,
            granted,
        };
        self.write_licensing(t, |lic| {
            let res = &mut lic.reservation;
            match (&mut res.installed, kind) {
                (Some(set), ReservationKind::Universal) => {
                    if !set.codes.iter().any(|c| c.text == entry.text) {
                        set.codes.push(entry);
                    }
                }
                (Some(set), ReservationKind::Specific) => set.codes = vec![entry],
                (None, _) => {
                    res.installed = Some(InstalledCodes {
                        kind,
                        key,
                        codes: vec![entry],
                        trusted: true,
                    });
                    res.request = None;
                    res.in_progress = false;
                }
            }
        });
        self.push(t, EventKind::ReservationInstalled { kind });
        self.check_thresholds(t);
        Ok(installed)
    }

    /// Returns the installed reservation (for PLR, the whole set): the return code to enter
    /// into the manager ("Enter the following return code into the CSSM:"), signed by the
    /// reservation key, which is then retired. Back to evaluation with what remains; still in
    /// reservation mode.
    pub fn reservation_return(&mut self, now: DateTime<Utc>) -> Result<ReturnCode, Error> {
        self.reservation_mode()?;
        let Some(installed) = &self.lic.reservation.installed else {
            return Err(Error::NoReservationInstalled);
        };
        let Some(latest) = installed.latest() else {
            return Err(Error::NoReservationInstalled);
        };
        let code = ReturnCode::sign(
            ReturnKind::Installed,
            latest.granted.piid,
            latest.granted.timestamp,
            &installed.key,
        );
        let t = self.observe(now);
        self.write_licensing(t, |lic| {
            lic.reservation.installed = None;
            lic.reservation.in_progress = false;
        });
        self.push(t, EventKind::ReservationReturned);
        self.check_thresholds(t);
        Ok(code)
    }

    /// A return code for an authorization code that was never installed — issued against the
    /// outstanding request or a cancelled one — so the manager can put its licenses back.
    /// That request's key is then retired.
    pub fn reservation_return_authorization(
        &mut self,
        code: &str,
        now: DateTime<Utc>,
    ) -> Result<ReturnCode, Error> {
        self.reservation_mode()?;
        let (_, granted) = verify_code(code, &self.config.trust_anchors, self.config.environment)?;
        if granted.udi != self.config.udi {
            return Err(Error::ReservationForAnotherInstance(
                granted.udi.long_form(),
            ));
        }
        let res = &self.lic.reservation;
        let matches = |k: &DeviceKey| ReservationKeyHash::of(&k.public_key()) == granted.key;
        let key = res
            .request
            .iter()
            .chain(res.kept.iter())
            .find(|k| matches(k))
            .cloned()
            .ok_or(Error::ReservationCodeMismatch)?;
        let ret = ReturnCode::sign(
            ReturnKind::Authorization,
            granted.piid,
            granted.timestamp,
            &key,
        );
        let t = self.observe(now);
        self.write_licensing(t, |lic| {
            let res = &mut lic.reservation;
            if res.request.as_ref() == Some(&key) {
                res.request = None;
                res.in_progress = false;
            }
            res.kept.retain(|k| *k != key);
        });
        self.check_thresholds(t);
        Ok(ret)
    }

    /// Turns reservation mode off; refused while a code is installed. Kept keys (an outstanding
    /// request's too) survive, so a return code can still be made for any code issued.
    pub fn reservation_disable(&mut self, now: DateTime<Utc>) -> Result<(), Error> {
        self.reservation_mode()?;
        if self.lic.reservation.installed.is_some() {
            return Err(Error::ReservationInstalledCannotDisable);
        }
        let t = self.observe(now);
        let dropped = self.write_licensing(t, |lic| {
            lic.reservation.enabled = false;
            lic.reservation.in_progress = false;
            match lic.reservation.request.take() {
                Some(key) => keep(lic, key),
                None => 0,
            }
        });
        self.push_keys_dropped(t, dropped);
        self.check_thresholds(t);
        Ok(())
    }

    fn push_keys_dropped(&mut self, t: DateTime<Utc>, dropped: usize) {
        if dropped > 0 {
            self.push(t, EventKind::ReservationKeysDropped { count: dropped });
        }
    }

    /// The installation in force, if any.
    pub(crate) fn reservation_in_force(&self) -> Option<&InstalledCodes> {
        self.lic.reservation.in_force()
    }

    /// Whether the reservation in force allows export-controlled functionality.
    pub(crate) fn reservation_allows_export(&self) -> bool {
        self.reservation_in_force()
            .is_some_and(|i| i.codes.iter().any(|c| c.granted.allows_export()))
    }

    /// Reserved entitlements that count now: TERM licenses past their end date stop counting
    /// at the first restore after it (SPEC §6; the restore's time is held in memory).
    pub(crate) fn counted_reservations(&self) -> impl Iterator<Item = &Reserved> {
        let restored = self.restored_at.map(|t| t.date_naive());
        self.reservation_in_force()
            .into_iter()
            .flat_map(|i| i.codes.iter())
            .flat_map(|c| c.granted.entitlements.iter())
            .filter(move |e| !term_expired(e, restored))
    }

    /// Whether the reservation in force covers `count` of `tag` (never by another tier); PLR
    /// covers everything.
    pub(crate) fn reservation_covers(&self, tag: &Tag, count: u32) -> bool {
        match self.reservation_in_force() {
            Some(i) if i.kind == ReservationKind::Universal => true,
            Some(_) => {
                let reserved: u64 = self
                    .counted_reservations()
                    .filter(|e| e.tag == *tag)
                    .map(|e| u64::from(e.count))
                    .sum();
                reserved >= u64::from(count)
            }
            None => false,
        }
    }

    /// At restore: raises the reserved-license-expired alarm once per TERM entitlement and
    /// end date that the restore's time has passed.
    pub(crate) fn check_reserved_terms(&mut self, restored: DateTime<Utc>) {
        let today = restored.date_naive();
        let expired: Vec<(String, NaiveDate)> = self
            .reservation_in_force()
            .into_iter()
            .flat_map(|i| i.codes.iter())
            .flat_map(|c| c.granted.entitlements.iter())
            .filter(|e| term_expired(e, Some(today)))
            .filter_map(|e| Some((e.tag.to_string(), e.end_date?)))
            .collect();
        for (tag, end) in expired {
            if !self
                .comm
                .notified
                .reserved_expired
                .contains(&(tag.clone(), end))
            {
                self.comm.notified.reserved_expired.push((tag.clone(), end));
                self.push(
                    restored,
                    EventKind::ReservedLicenseExpired { tag, end_date: end },
                );
            }
        }
    }
}

/// A TERM entitlement whose end date is before `today` (the last restore's date).
fn term_expired(e: &Reserved, today: Option<NaiveDate>) -> bool {
    e.license_type == LicenseType::Term
        && matches!((e.end_date, today), (Some(end), Some(today)) if end < today)
}
