//! The licensing status a product shows: plain data, `serde::Serialize` with stable field
//! names, and the state words of both product vocabularies (SPEC §3, §4, §10).
//!
//! The `show license` text layouts belong to the CLI harness; this module only names things.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Serialize, Serializer};

use crate::entitlement::Tag;
use crate::udi::Udi;

/// Which product's words to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Vocabulary {
    /// The Unified CM / IOS smart agent CLI (`REGISTERED`, `AUTHORIZED`, `InCompliance`).
    #[default]
    Cli,
    /// The Expressway web interface (`Registered`, `Authorized`, `Out of compliance`).
    Expressway,
}

/// Registration state (SPEC §3). Reservation states arrive with the reservation feature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[non_exhaustive]
pub enum RegistrationState {
    /// Never registered, or deregistered.
    Unregistered,
    /// A registration was sent or is being retried.
    RegistrationPending,
    /// The manager refused the token.
    RegistrationFailed,
    /// Registered with a valid identity.
    Registered,
    /// The identity lapsed without renewal.
    RegistrationExpired,
    /// Reservation mode, a request made or about to be (SPEC §6, 003:429).
    ReservationInProgress,
    /// A Specific License Reservation is installed.
    SpecificReservation,
    /// A Permanent ("universal") License Reservation is installed.
    UniversalReservation,
}

impl RegistrationState {
    /// The state as the chosen product prints it.
    ///
    /// ```
    /// use smart_agent::{RegistrationState, Vocabulary};
    /// let s = RegistrationState::RegistrationExpired;
    /// assert_eq!(s.text(Vocabulary::Cli), "UNREGISTERED - REGISTRATION EXPIRED");
    /// assert_eq!(s.text(Vocabulary::Expressway), "Unregistered: Registration Expired");
    /// ```
    pub fn text(self, vocabulary: Vocabulary) -> &'static str {
        use RegistrationState::*;
        match (vocabulary, self) {
            (Vocabulary::Cli, Unregistered) => "UNREGISTERED",
            (Vocabulary::Cli, RegistrationPending) => "UNREGISTERED - REGISTRATION PENDING",
            (Vocabulary::Cli, RegistrationFailed) => "UNREGISTERED - REGISTRATION FAILED",
            (Vocabulary::Cli, Registered) => "REGISTERED",
            (Vocabulary::Cli, RegistrationExpired) => "UNREGISTERED - REGISTRATION EXPIRED",
            (Vocabulary::Expressway, Unregistered) => "Unregistered",
            (Vocabulary::Expressway, RegistrationPending) => "Unregistered: Registration Pending",
            (Vocabulary::Expressway, RegistrationFailed) => "Unregistered: Registration Failed",
            (Vocabulary::Expressway, Registered) => "Registered",
            (Vocabulary::Expressway, RegistrationExpired) => "Unregistered: Registration Expired",
            (Vocabulary::Cli, ReservationInProgress) => "RESERVATION IN PROGRESS",
            (Vocabulary::Cli, SpecificReservation) => "REGISTERED - SPECIFIC LICENSE RESERVATION",
            (Vocabulary::Cli, UniversalReservation) => "REGISTERED - UNIVERSAL LICENSE RESERVATION",
            (Vocabulary::Expressway, ReservationInProgress) => "Reservation In Progress",
            (Vocabulary::Expressway, SpecificReservation) => {
                "Registered - Specific License Reservation"
            }
            (Vocabulary::Expressway, UniversalReservation) => {
                "Registered - Universal License Reservation"
            }
        }
    }
}

/// Overall authorization state (SPEC §4, first rule that applies).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[non_exhaustive]
pub enum AuthorizationState {
    /// Registered, the grant dropped at restore as untrusted, until the next accepted answer.
    NotApplicable,
    /// No declared tag has a count above zero.
    NoLicensesInUse,
    /// Evaluation period in use.
    EvalMode,
    /// Evaluation period used up.
    EvalExpired,
    /// Registered and at or past the grant deadline.
    AuthorizationExpired,
    /// A tag in use is out of compliance or unknown to the manager.
    OutOfCompliance,
    /// Everything in use is authorized.
    Authorized,
    /// A reservation is installed and covers everything in use (SPEC §4 rule 1).
    AuthorizedReserved,
    /// An installed SLR lacks a tag or count in use (never for PLR).
    NotAuthorizedReserved,
}

impl AuthorizationState {
    /// The state as the chosen product prints it.
    pub fn text(self, vocabulary: Vocabulary) -> &'static str {
        use AuthorizationState::*;
        match (vocabulary, self) {
            (Vocabulary::Cli, NotApplicable) => "NOT APPLICABLE",
            (Vocabulary::Cli, NoLicensesInUse) => "NO LICENSES IN USE",
            (Vocabulary::Cli, EvalMode) => "EVAL MODE",
            (Vocabulary::Cli, EvalExpired) => "EVAL EXPIRED",
            (Vocabulary::Cli, AuthorizationExpired) => "AUTHORIZATION EXPIRED",
            (Vocabulary::Cli, OutOfCompliance) => "OUT OF COMPLIANCE",
            (Vocabulary::Cli, Authorized) => "AUTHORIZED",
            (Vocabulary::Expressway, NotApplicable) => "Not Applicable",
            (Vocabulary::Expressway, NoLicensesInUse) => "No Licenses in Use",
            (Vocabulary::Expressway, EvalMode) => "Evaluation Mode",
            (Vocabulary::Expressway, EvalExpired) => "Evaluation Expired",
            (Vocabulary::Expressway, AuthorizationExpired) => "Authorization Expired",
            (Vocabulary::Expressway, OutOfCompliance) => "Out-of-compliance",
            (Vocabulary::Expressway, Authorized) => "Authorized",
            (Vocabulary::Cli, AuthorizedReserved) => "AUTHORIZED - RESERVED",
            (Vocabulary::Cli, NotAuthorizedReserved) => "NOT AUTHORIZED - RESERVED",
            (Vocabulary::Expressway, AuthorizedReserved) => "Authorized - Reserved",
            (Vocabulary::Expressway, NotAuthorizedReserved) => "Not Authorized - Reserved",
        }
    }
}

/// Status of one declared tag (SPEC §4, first rule that applies).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[non_exhaustive]
pub enum TagStatus {
    /// Declared with count 0.
    Init,
    /// The manager does not know the tag.
    InvalidTag,
    /// Reported, no accepted answer covers it yet.
    Waiting,
    /// Consumed under the evaluation period.
    EvalMode,
    /// The evaluation period is used up.
    EvalExpired,
    /// Registered and past the grant deadline.
    AuthExpired,
    /// Not (fully) served by the manager.
    OutOfCompliance,
    /// The grant's entry for the tag failed validation.
    Invalid,
    /// Fully served.
    InCompliance,
    /// Covered by the installed reservation (SPEC §4 rule 2).
    ReservedInCompliance,
    /// In use but missing or short in the installed SLR code.
    NotAuthorized,
}

impl TagStatus {
    /// The CLI word (002:96), e.g. `InCompliance`.
    pub fn cli_text(self) -> &'static str {
        use TagStatus::*;
        match self {
            Init => "Init",
            InvalidTag => "InvalidTag",
            Waiting => "Waiting",
            EvalMode => "EvalMode",
            EvalExpired => "EvalExpired",
            AuthExpired => "AuthExpired",
            OutOfCompliance => "OutOfCompliance",
            Invalid => "Invalid",
            InCompliance => "InCompliance",
            ReservedInCompliance => "ReservedInCompliance",
            NotAuthorized => "NotAuthorized",
        }
    }

    /// The word in the chosen vocabulary. Expressway does not list `Init` tags (004:239);
    /// for them this returns `Init` as well.
    pub fn text(self, vocabulary: Vocabulary) -> &'static str {
        use TagStatus::*;
        match (vocabulary, self) {
            (Vocabulary::Cli, s) => s.cli_text(),
            (Vocabulary::Expressway, Init) => "Init",
            (Vocabulary::Expressway, InvalidTag) => "Invalid-tag",
            (Vocabulary::Expressway, Waiting) => "Waiting",
            (Vocabulary::Expressway, EvalMode) => "Evaluation Mode",
            (Vocabulary::Expressway, EvalExpired) => "Evaluation Expired",
            (Vocabulary::Expressway, AuthExpired) => "Authorization Expired",
            (Vocabulary::Expressway, OutOfCompliance) => "Out of compliance",
            (Vocabulary::Expressway, Invalid) => "Invalid",
            (Vocabulary::Expressway, InCompliance | ReservedInCompliance) => "Authorized",
            (Vocabulary::Expressway, NotAuthorized) => "Not Authorized",
        }
    }
}

/// The outcome of an attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Outcome {
    /// It worked.
    Succeeded,
    /// It failed, with the product message.
    Failed {
        /// The message of SPEC §9.
        reason: String,
    },
}

/// An attempt and when it happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Attempt {
    /// When.
    pub at: DateTime<Utc>,
    /// How it went.
    pub outcome: Outcome,
}

/// The registration block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RegistrationStatus {
    /// The state.
    pub state: RegistrationState,
    /// Smart Account, while registered.
    pub smart_account: Option<String>,
    /// Virtual Account, while registered.
    pub virtual_account: Option<String>,
    /// `Export-Controlled Functionality: Allowed` (registered with a token that allows it).
    pub export_controlled: bool,
    /// The initial registration: succeeded (registered), or the latest failed attempt
    /// (failed, or pending after a failure). `None` for a first attempt still in flight.
    pub initial_registration: Option<Attempt>,
    /// The last identity renewal attempt, `None` before any.
    pub last_renewal: Option<Attempt>,
    /// When the next identity renewal is due.
    pub next_renewal: Option<DateTime<Utc>>,
    /// When the identity lapses.
    pub expires: Option<DateTime<Utc>>,
    /// When a pending registration is tried again.
    pub next_registration_attempt: Option<DateTime<Utc>>,
}

/// The authorization block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuthorizationStatus {
    /// The overall state.
    pub state: AuthorizationState,
    /// When the state began, for `AUTHORIZED` (the last success), `OUT OF COMPLIANCE` and
    /// `AUTHORIZATION EXPIRED`; `None` for the others.
    pub since: Option<DateTime<Utc>>,
    /// The last authorization attempt, while registered.
    pub last_communication: Option<Attempt>,
    /// When the next authorization request is due, while registered.
    pub next_communication: Option<DateTime<Utc>>,
    /// The grant deadline, after the first authorization.
    pub deadline: Option<DateTime<Utc>>,
}

/// The evaluation block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EvaluationStatus {
    /// Whether evaluation time is being consumed now.
    pub in_use: bool,
    /// Time left.
    #[serde(serialize_with = "seconds")]
    pub remaining: TimeDelta,
    /// When it ran out, if it did.
    pub expired_at: Option<DateTime<Utc>>,
}

/// One declared tag.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EntitlementStatus {
    /// The tag.
    #[serde(serialize_with = "tag_text")]
    pub tag: Tag,
    /// Display name from the grant, e.g. `UC Manager Enhanced License (12.x)`.
    pub display_name: Option<String>,
    /// Description from the grant.
    pub description: Option<String>,
    /// Count in use.
    pub count: u32,
    /// Version from the tag, e.g. `12.0`.
    pub version: String,
    /// Status.
    pub status: TagStatus,
}

/// Everything `show license` shows, computed for one instant by [`Agent::status`](crate::Agent::status).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Status {
    /// The instant the status is for (the agent's effective time).
    pub at: DateTime<Utc>,
    /// The instance's UDI.
    #[serde(serialize_with = "udi_text")]
    pub udi: Udi,
    /// Registration.
    pub registration: RegistrationStatus,
    /// Authorization.
    pub authorization: AuthorizationStatus,
    /// Evaluation.
    pub evaluation: EvaluationStatus,
    /// Declared tags in declaration order.
    pub entitlements: Vec<EntitlementStatus>,
    /// License Reservation (SPEC §6); `enabled: false` and nothing else outside reservation
    /// mode.
    pub reservation: ReservationStatus,
}

/// License Reservation: the mode, the request code, the installed reservation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReservationStatus {
    /// Reservation mode is on ("License Reservation is ENABLED").
    pub enabled: bool,
    /// The outstanding request's code, while one is in progress.
    pub request_code: Option<String>,
    /// The reservation installed, if any.
    pub installed: Option<InstalledReservation>,
}

/// An installed reservation, for `show license reservation`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InstalledReservation {
    /// SLR or PLR.
    pub kind: crate::agent::ReservationKind,
    /// When the (latest) code was installed.
    pub installed_at: DateTime<Utc>,
    /// The SLR's last confirmation code (8 lowercase hex digits).
    pub confirmation: Option<String>,
    /// The installed code verifies against the anchors configured now; an untrusted one is
    /// kept but not used.
    pub trusted: bool,
    /// Every reserved entitlement, in the order of the code(s).
    pub entitlements: Vec<ReservedEntitlement>,
}

/// One reserved entitlement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReservedEntitlement {
    /// The tag.
    #[serde(serialize_with = "tag_text")]
    pub tag: Tag,
    /// Display name from the code (SLR only).
    pub display_name: Option<String>,
    /// Description from the code (SLR only).
    pub description: Option<String>,
    /// Reserved count.
    pub count: u32,
    /// `PERPETUAL` or `TERM`.
    pub license_type: &'static str,
    /// TERM start date.
    pub start_date: Option<chrono::NaiveDate>,
    /// TERM end date.
    pub end_date: Option<chrono::NaiveDate>,
    /// A TERM license past its end date at the last restore: no longer counted.
    pub expired: bool,
}

fn seconds<S: Serializer>(d: &TimeDelta, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_i64(d.num_seconds())
}

fn tag_text<S: Serializer>(t: &Tag, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(t.as_str())
}

fn udi_text<S: Serializer>(u: &Udi, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&u.long_form())
}
