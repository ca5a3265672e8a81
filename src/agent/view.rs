//! `status(now)`: a pure read of the state at the effective time, by the rule lists of SPEC §4.

use chrono::{DateTime, Utc};

use super::registration::Registration;
use super::state::AttemptLog;
use super::Agent;
use crate::codes::RequestCode;
use crate::codes::ReservationKind;
use crate::status::{
    Attempt, AuthorizationState, AuthorizationStatus, EntitlementStatus, EvaluationStatus,
    InstalledReservation, Outcome, RegistrationState, RegistrationStatus, ReservationStatus,
    ReservedEntitlement, Status, TagStatus,
};
use crate::wire::{GrantEntry, GrantStatus};

fn attempt(log: &AttemptLog) -> Option<Attempt> {
    log.last.as_ref().map(|(at, failure)| Attempt {
        at: *at,
        outcome: match failure {
            None => Outcome::Succeeded,
            Some(f) => Outcome::Failed {
                reason: f.message(),
            },
        },
    })
}

impl Agent {
    /// The status at `now` (nothing is recorded: a pure read).
    pub fn status(&self, now: DateTime<Utc>) -> Status {
        let t = self.effective(now);
        let registration = self.registration_status(t);
        let tags = self.tag_statuses(t);
        let authorization = self.authorization_status(t, &tags);
        let start = self.eval_start(t);
        let eval = &self.lic.evaluation;
        let evaluation = EvaluationStatus {
            in_use: start.is_some() && eval.remaining_at(start, t) > chrono::TimeDelta::zero(),
            remaining: eval.remaining_at(start, t),
            expired_at: eval.expired_by(start, t),
        };
        let entitlements = self
            .lic
            .usage
            .iter()
            .zip(tags)
            .map(|((tag, count), status)| {
                let content = self
                    .grant_entry(tag.as_str())
                    .and_then(|e| e.content.as_ref().ok());
                // Names come from the grant, or (reserved) from the code that reserves it.
                let reserved = self.counted_reservations().find(|e| e.tag == *tag);
                let (display_name, description) = match (content, reserved) {
                    (Some(c), _) => (c.display_name.clone(), c.description.clone()),
                    (None, Some(r)) => (r.display_name.clone(), r.description.clone()),
                    (None, None) => (None, None),
                };
                EntitlementStatus {
                    tag: tag.clone(),
                    display_name,
                    description,
                    count: *count,
                    version: tag.version().to_string(),
                    status,
                }
            })
            .collect();
        Status {
            at: t,
            udi: self.config.udi.clone(),
            registration,
            authorization,
            evaluation,
            entitlements,
            reservation: self.reservation_status(),
        }
    }

    fn reservation_status(&self) -> ReservationStatus {
        let res = &self.lic.reservation;
        if !res.enabled {
            return ReservationStatus::default();
        }
        let restored = self.restored_at.map(|t| t.date_naive());
        ReservationStatus {
            enabled: true,
            request_code: res
                .request
                .as_ref()
                .filter(|_| res.in_progress)
                .map(|key| RequestCode::new(self.config.udi.clone(), key.public_key()).to_string()),
            installed: res.installed.as_ref().map(|i| InstalledReservation {
                kind: i.kind,
                installed_at: i
                    .latest()
                    .map_or(DateTime::<Utc>::MIN_UTC, |c| c.installed_at),
                confirmation: i
                    .latest()
                    .and_then(|c| c.granted.confirmation)
                    .map(|c| c.to_string()),
                trusted: i.trusted,
                entitlements: i
                    .codes
                    .iter()
                    .flat_map(|c| c.granted.entitlements.iter())
                    .map(|e| ReservedEntitlement {
                        tag: e.tag.clone(),
                        display_name: e.display_name.clone(),
                        description: e.description.clone(),
                        count: e.count,
                        license_type: e.license_type.as_str(),
                        start_date: e.start_date,
                        end_date: e.end_date,
                        expired: e.license_type == crate::codes::LicenseType::Term
                            && matches!((e.end_date, restored), (Some(end), Some(r)) if end < r),
                    })
                    .collect(),
            }),
        }
    }

    pub(crate) fn registration_state(&self, t: DateTime<Utc>) -> RegistrationState {
        let res = &self.lic.reservation;
        if res.enabled {
            return match self.reservation_in_force().map(|i| i.kind) {
                Some(ReservationKind::Specific) => RegistrationState::SpecificReservation,
                Some(ReservationKind::Universal) => RegistrationState::UniversalReservation,
                None if res.in_progress && res.installed.is_none() => {
                    RegistrationState::ReservationInProgress
                }
                None => RegistrationState::Unregistered,
            };
        }
        match &self.lic.registration {
            Registration::Registered(id) if t < id.cert.not_after => RegistrationState::Registered,
            _ if self.lic.job.is_some() => RegistrationState::RegistrationPending,
            Registration::Registered(_) | Registration::Expired { .. } => {
                RegistrationState::RegistrationExpired
            }
            Registration::Failed { .. } => RegistrationState::RegistrationFailed,
            Registration::Unregistered => RegistrationState::Unregistered,
        }
    }

    fn registration_status(&self, t: DateTime<Utc>) -> RegistrationStatus {
        let state = self.registration_state(t);
        let mut status = RegistrationStatus {
            state,
            smart_account: None,
            virtual_account: None,
            export_controlled: false,
            initial_registration: None,
            last_renewal: None,
            next_renewal: None,
            expires: None,
            next_registration_attempt: None,
        };
        match state {
            RegistrationState::Registered => {
                if let Some(id) = self.valid_identity(t) {
                    status.smart_account = Some(id.cert.smart_account.clone());
                    status.virtual_account = Some(id.cert.virtual_account.clone());
                    status.export_controlled = id.cert.export_controlled;
                    status.initial_registration = Some(Attempt {
                        at: id.registered_at,
                        outcome: Outcome::Succeeded,
                    });
                    status.last_renewal = attempt(&self.comm.renew_id);
                    status.next_renewal = self.identity_renewal_due(t);
                    status.expires = Some(id.cert.not_after);
                }
            }
            RegistrationState::RegistrationPending => {
                status.initial_registration = attempt(&self.comm.register);
                status.next_registration_attempt = self.comm.register.next_retry;
            }
            RegistrationState::SpecificReservation | RegistrationState::UniversalReservation => {
                if let Some(installed) = self.reservation_in_force() {
                    status.export_controlled = self.reservation_allows_export();
                    status.initial_registration = installed.codes.first().map(|c| Attempt {
                        at: c.installed_at,
                        outcome: Outcome::Succeeded,
                    });
                }
            }
            RegistrationState::RegistrationFailed => {
                status.initial_registration =
                    attempt(&self.comm.register).or_else(|| match &self.lic.registration {
                        Registration::Failed { at } => Some(Attempt {
                            at: *at,
                            outcome: Outcome::Failed {
                                reason: crate::error::TOKEN_MESSAGE.to_string(),
                            },
                        }),
                        _ => None,
                    });
            }
            _ => {}
        }
        status
    }

    /// The grant's entry for a tag, if the current grant names it.
    fn grant_entry(&self, tag: &str) -> Option<&GrantEntry> {
        let g = self.lic.authorization.grant.as_ref()?;
        g.grant.entries.iter().find(|e| e.tag == tag)
    }

    /// Overall state before tag statuses are known: rules 1–5 of SPEC §4.
    fn base_authorization_state(&self, t: DateTime<Utc>) -> Option<AuthorizationState> {
        if let Some(installed) = self.reservation_in_force() {
            let covered = installed.kind == ReservationKind::Universal
                || self
                    .lic
                    .usage
                    .iter()
                    .all(|(tag, n)| *n == 0 || self.reservation_covers(tag, *n));
            return Some(if covered {
                AuthorizationState::AuthorizedReserved
            } else {
                AuthorizationState::NotAuthorizedReserved
            });
        }
        let registered = self.valid_identity(t).is_some();
        let auth = &self.lic.authorization;
        if registered && auth.grant_untrusted {
            return Some(AuthorizationState::NotApplicable);
        }
        if !self.any_usage() {
            return Some(AuthorizationState::NoLicensesInUse);
        }
        if !registered || !auth.authorized_since_registration {
            let start = self.eval_start(t);
            let left = self.lic.evaluation.remaining_at(start, t);
            return Some(if left > chrono::TimeDelta::zero() {
                AuthorizationState::EvalMode
            } else {
                AuthorizationState::EvalExpired
            });
        }
        if self.deadline().is_some_and(|d| d <= t) {
            return Some(AuthorizationState::AuthorizationExpired);
        }
        None
    }

    /// Per-tag statuses in declaration order (SPEC §4 per-tag rules).
    pub(crate) fn tag_statuses(&self, t: DateTime<Utc>) -> Vec<TagStatus> {
        let base = self.base_authorization_state(t);
        let registered = self.valid_identity(t).is_some();
        self.lic
            .usage
            .iter()
            .map(|(tag, count)| {
                if *count == 0 {
                    return TagStatus::Init;
                }
                if self.reservation_in_force().is_some() {
                    return if self.reservation_covers(tag, *count) {
                        TagStatus::ReservedInCompliance
                    } else {
                        TagStatus::NotAuthorized
                    };
                }
                let entry = self.grant_entry(tag.as_str());
                let verdict = entry.map(|e| e.content.as_ref().map(|c| c.status));
                if let Some(Ok(GrantStatus::InvalidTag)) = verdict {
                    return TagStatus::InvalidTag;
                }
                if registered && entry.is_none() {
                    return TagStatus::Waiting;
                }
                match base {
                    Some(AuthorizationState::EvalMode) => return TagStatus::EvalMode,
                    Some(AuthorizationState::EvalExpired) => return TagStatus::EvalExpired,
                    Some(AuthorizationState::AuthorizationExpired) => {
                        return TagStatus::AuthExpired
                    }
                    _ => {}
                }
                match verdict {
                    Some(Ok(GrantStatus::OutOfCompliance)) => TagStatus::OutOfCompliance,
                    Some(Err(_)) => TagStatus::Invalid,
                    _ => TagStatus::InCompliance,
                }
            })
            .collect()
    }

    fn authorization_status(&self, t: DateTime<Utc>, tags: &[TagStatus]) -> AuthorizationStatus {
        let state = self.base_authorization_state(t).unwrap_or_else(|| {
            if tags
                .iter()
                .any(|s| matches!(s, TagStatus::OutOfCompliance | TagStatus::InvalidTag))
            {
                AuthorizationState::OutOfCompliance
            } else {
                AuthorizationState::Authorized
            }
        });
        let registered = self.valid_identity(t).is_some();
        let auth = &self.lic.authorization;
        let since = match state {
            AuthorizationState::Authorized => auth.grant.as_ref().map(|g| g.received_at),
            AuthorizationState::OutOfCompliance => auth
                .ooc_since
                .or_else(|| auth.grant.as_ref().map(|g| g.received_at)),
            AuthorizationState::AuthorizationExpired => self.deadline(),
            AuthorizationState::AuthorizedReserved => self
                .reservation_in_force()
                .and_then(|i| i.latest())
                .map(|c| c.installed_at),
            _ => None,
        };
        let waiting_on_answer = self.comm.outstanding.is_some();
        AuthorizationStatus {
            state,
            since,
            last_communication: if registered {
                attempt(&self.comm.authorize)
            } else {
                None
            },
            next_communication: if registered && !waiting_on_answer {
                self.authorization_due(t).map(|(at, _)| at)
            } else if registered {
                Some(t)
            } else {
                None
            },
            deadline: if registered { self.deadline() } else { None },
        }
    }
}
