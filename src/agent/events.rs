//! What the agent reports to the product: events, some of them alarms (SPEC §9).
//!
//! Events never carry keys or tokens.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::failure::Failure;
use crate::status::TagStatus;

/// Alarm names the products raise (000:1541-1576, 003:316).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[non_exhaustive]
pub enum Alarm {
    /// A registration attempt failed.
    SmartLicensingRegistrationFailure,
    /// An identity renewal failed.
    SmartLicensingRenewRegistrationFailure,
    /// An authorization (renewal) failed.
    SmartLicensingRenewAuthFailure,
    /// Deregistration could not reach the manager; the instance must be removed there by hand.
    SmartLicensingDeregistrationFailure,
    /// Export-controlled functionality is no longer allowed.
    SmartLicenseExportControlNotAllowed,
    /// A reserved TERM license passed its end date (name ours; 004:1640).
    SmartLicensingReservedLicenseExpired,
}

impl Alarm {
    /// The alarm's name.
    pub fn name(self) -> &'static str {
        match self {
            Alarm::SmartLicensingRegistrationFailure => "SmartLicensingRegistrationFailure",
            Alarm::SmartLicensingRenewRegistrationFailure => {
                "SmartLicensingRenewRegistrationFailure"
            }
            Alarm::SmartLicensingRenewAuthFailure => "SmartLicensingRenewAuthFailure",
            Alarm::SmartLicensingDeregistrationFailure => "SmartLicensingDeregistrationFailure",
            Alarm::SmartLicenseExportControlNotAllowed => "SmartLicenseExportControlNotAllowed",
            Alarm::SmartLicensingReservedLicenseExpired => "SmartLicensingReservedLicenseExpired",
        }
    }
}

/// Something that happened, and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Event {
    /// When it happened (for thresholds such as a deadline: the threshold itself).
    pub at: DateTime<Utc>,
    /// What happened.
    pub kind: EventKind,
}

/// The kinds of event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum EventKind {
    /// Registration succeeded.
    Registered {
        /// Smart Account name.
        smart_account: String,
        /// Virtual Account name.
        virtual_account: String,
    },
    /// A registration attempt failed and will be retried.
    RegistrationRetrying {
        /// Why.
        failure: Failure,
        /// When the next attempt is due.
        next_attempt: DateTime<Utc>,
    },
    /// The manager refused the token; the registration failed for good.
    RegistrationFailed {
        /// Why.
        failure: Failure,
    },
    /// The identity was renewed.
    IdentityRenewed {
        /// The new expiry.
        expires: DateTime<Utc>,
    },
    /// An identity renewal failed.
    IdentityRenewalFailed {
        /// Why.
        failure: Failure,
        /// When the next attempt is due, if any is left before the identity lapses.
        next_attempt: Option<DateTime<Utc>>,
    },
    /// The identity lapsed: registration expired.
    RegistrationExpired,
    /// At restore, the identity did not verify (a key no longer trusted): it is kept unused.
    IdentityDropped {
        /// The failed check.
        reason: String,
    },
    /// The manager granted an export authorization key (SPEC §7).
    ExportKeyGranted {
        /// The feature.
        feature: String,
    },
    /// An export authorization key was returned to the manager.
    ExportKeyReturned {
        /// The feature.
        feature: String,
    },
    /// The manager refused an export key request or return for good (no retry).
    ExportKeyRefused {
        /// The feature.
        feature: String,
        /// The manager's code (`NOT_SUPPORTED`, `NOT_RESTRICTED`, `NO_KEYS_AVAILABLE`,
        /// `NOT_HELD`).
        code: String,
        /// The manager's message.
        message: String,
    },
    /// An export key request or return failed; it is retried unless cancelled.
    ExportKeyFailed {
        /// The feature.
        feature: String,
        /// Why.
        failure: Failure,
        /// The retry, if any.
        next_attempt: Option<DateTime<Utc>>,
    },
    /// A reservation authorization code was installed (SPEC §6).
    ReservationInstalled {
        /// SLR or PLR.
        kind: crate::agent::ReservationKind,
    },
    /// The installed reservation was returned (the return code was made).
    ReservationReturned,
    /// Older kept reservation keys were dropped (only the 16 most recent are kept).
    ReservationKeysDropped {
        /// How many.
        count: usize,
    },
    /// A reserved TERM license is past its end date and no longer counts (SPEC §6, 004:1640).
    ReservedLicenseExpired {
        /// The entitlement tag.
        tag: String,
        /// Its end date.
        end_date: chrono::NaiveDate,
    },
    /// At restore, the installed reservation code did not verify (a key no longer trusted):
    /// it is kept but not used.
    ReservationUntrusted {
        /// The failed check.
        reason: String,
    },
    /// At restore, an identity set aside earlier as untrusted (or of another UDI) verified
    /// again and is in use once more (SPEC §12).
    IdentityReinstated,
    /// At restore, the grant was signed by a key no longer trusted: it is kept unused.
    GrantDropped {
        /// The failed check.
        reason: String,
    },
    /// An authorization succeeded.
    Authorized {
        /// Whether every tag in use is in compliance.
        in_compliance: bool,
    },
    /// An authorization request failed.
    AuthorizationFailed {
        /// Why.
        failure: Failure,
        /// When the next attempt is due.
        next_attempt: Option<DateTime<Utc>>,
    },
    /// The grant deadline passed.
    AuthorizationExpired,
    /// A tag's status changed with an answer.
    EntitlementStatusChanged {
        /// The tag.
        tag: String,
        /// Before.
        from: TagStatus,
        /// After.
        to: TagStatus,
    },
    /// Evaluation time is running out.
    EvaluationWarning {
        /// Whole days left when the warning threshold was crossed.
        days_left: i64,
    },
    /// No evaluation time is left.
    EvaluationExpired,
    /// The manager confirmed the deregistration.
    Deregistered,
    /// Deregistration completed locally only.
    DeregistrationFailed {
        /// Why the manager could not be told.
        failure: Failure,
    },
    /// Communication with the manager started failing.
    CommunicationFailure {
        /// Why.
        failure: Failure,
    },
    /// Communication with the manager works again.
    CommunicationRestored,
    /// The wall clock moved back by more than the tolerance; nothing was extended.
    ClockChanged {
        /// The highest time seen before.
        from: DateTime<Utc>,
        /// The time given now.
        to: DateTime<Utc>,
    },
    /// The manager's signed time is more than the tolerance away from ours.
    ClockSkew {
        /// The manager's time.
        manager_time: DateTime<Utc>,
        /// Our effective time.
        local_time: DateTime<Utc>,
    },
    /// Export-controlled functionality is no longer allowed (deregistration or lapse).
    ExportControlNotAllowed,
}

impl Event {
    /// The alarm this event raises, if any.
    pub fn alarm(&self) -> Option<Alarm> {
        match self.kind {
            EventKind::RegistrationRetrying { .. } | EventKind::RegistrationFailed { .. } => {
                Some(Alarm::SmartLicensingRegistrationFailure)
            }
            EventKind::IdentityRenewalFailed { .. } => {
                Some(Alarm::SmartLicensingRenewRegistrationFailure)
            }
            EventKind::AuthorizationFailed { .. } => Some(Alarm::SmartLicensingRenewAuthFailure),
            EventKind::DeregistrationFailed { .. } => {
                Some(Alarm::SmartLicensingDeregistrationFailure)
            }
            EventKind::ExportControlNotAllowed => Some(Alarm::SmartLicenseExportControlNotAllowed),
            EventKind::ReservedLicenseExpired { .. } => {
                Some(Alarm::SmartLicensingReservedLicenseExpired)
            }
            _ => None,
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventKind::Registered {
                smart_account,
                virtual_account,
            } => write!(
                f,
                "Registration succeeded (Smart Account: {smart_account}, Virtual Account: {virtual_account})"
            ),
            EventKind::RegistrationRetrying { failure, .. } => {
                write!(f, "Registration attempt failed, will retry: {failure}")
            }
            EventKind::RegistrationFailed { failure } => write!(f, "Registration failed: {failure}"),
            EventKind::IdentityRenewed { .. } => f.write_str("Registration renewed"),
            EventKind::IdentityRenewalFailed { failure, .. } => {
                write!(f, "Registration renewal failed: {failure}")
            }
            EventKind::RegistrationExpired => f.write_str("Registration expired"),
            EventKind::IdentityDropped { reason } => write!(
                f,
                "Identity certificate is no longer trusted; it is kept unused until a trusted \
                 key verifies it: {reason}"
            ),
            EventKind::IdentityReinstated => f.write_str(
                "Identity certificate is trusted again: the registration kept unused is back",
            ),
            EventKind::GrantDropped { reason } => write!(
                f,
                "Authorization is no longer trusted; it is kept unused, requesting a new one: \
                 {reason}"
            ),
            EventKind::Authorized { in_compliance: true } => f.write_str("Authorization succeeded"),
            EventKind::Authorized {
                in_compliance: false,
            } => f.write_str("Authorization succeeded: out of compliance"),
            EventKind::AuthorizationFailed { failure, .. } => {
                write!(f, "Authorization failed: {failure}")
            }
            EventKind::AuthorizationExpired => f.write_str("Authorization expired"),
            EventKind::EntitlementStatusChanged { tag, from, to } => write!(
                f,
                "Entitlement {tag} changed from {} to {}",
                from.cli_text(),
                to.cli_text()
            ),
            EventKind::EvaluationWarning { days_left } => {
                let unit = if *days_left == 1 { "day" } else { "days" };
                write!(f, "Evaluation period expires in {days_left} {unit}")
            }
            EventKind::EvaluationExpired => f.write_str("Evaluation period expired"),
            EventKind::Deregistered => f.write_str("Deregistration succeeded"),
            EventKind::DeregistrationFailed { failure } => write!(
                f,
                "Deregistration has been completed on the Product Instance but was unable to deregister from Smart Software Licensing due to {}",
                failure.phrase()
            ),
            EventKind::CommunicationFailure { failure } => {
                write!(f, "Communication with Smart Software Licensing failed: {failure}")
            }
            EventKind::CommunicationRestored => {
                f.write_str("Communication with Smart Software Licensing restored")
            }
            EventKind::ClockChanged { from, to } => {
                write!(
                    f,
                    "System clock moved back from {} to {}; nothing was extended",
                    crate::time::format(*from),
                    crate::time::format(*to)
                )
            }
            EventKind::ClockSkew {
                manager_time,
                local_time,
            } => write!(
                f,
                "Clock differs from the manager's: local {}, manager {}",
                crate::time::format(*local_time),
                crate::time::format(*manager_time)
            ),
            EventKind::ExportControlNotAllowed => {
                f.write_str("Export-Controlled Functionality: Not Allowed")
            }
            EventKind::ExportKeyGranted { feature } => {
                write!(f, "Export authorization key granted for {feature}")
            }
            EventKind::ExportKeyReturned { feature } => {
                write!(f, "Export authorization key returned for {feature}")
            }
            EventKind::ExportKeyRefused {
                feature, message, ..
            } => write!(f, "Export authorization key for {feature} refused: {message}"),
            EventKind::ExportKeyFailed {
                feature,
                failure,
                next_attempt,
            } => {
                write!(f, "Export authorization key for {feature} failed: {failure}")?;
                if next_attempt.is_none() {
                    f.write_str(" (not retried)")?;
                }
                Ok(())
            }
            EventKind::ReservationInstalled { .. } => f.write_str("Authorization code installed."),
            EventKind::ReservationReturned => f.write_str("License reservation returned"),
            EventKind::ReservationKeysDropped { count } => write!(
                f,
                "{count} older reservation key(s) dropped: return codes can no longer be made \
                 for codes issued against them"
            ),
            EventKind::ReservedLicenseExpired { tag, end_date } => write!(
                f,
                "Reserved license {tag} expired on {} and is no longer counted",
                end_date.format("%Y-%b-%d UTC")
            ),
            EventKind::ReservationUntrusted { reason } => write!(
                f,
                "The installed reservation authorization code is no longer trusted; it is kept \
                 unused until a trusted key verifies it: {reason}"
            ),
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", crate::time::format(self.at), self.kind)?;
        if let Some(alarm) = self.alarm() {
            write!(f, " [{}]", alarm.name())?;
        }
        Ok(())
    }
}
