//! Errors of the operations a product calls, each with the REST-style code and the exact
//! message of the product documentation (seed 000:1526-1576; SPEC §3, §8, §9).
//!
//! A call that returns one of these errors was rejected locally: it changed nothing, not even
//! the highest time the agent has seen (SPEC §12).

use thiserror::Error;

/// The HTTP-style response code the products attach to each licensing error (seed 000:1526).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RestCode {
    /// 400 `INVALID_PARAMETER`.
    InvalidParameter,
    /// 405 `METHOD_NOT_ALLOWED`.
    MethodNotAllowed,
    /// 500 `INTERNAL_SERVER_ERROR`.
    InternalServerError,
}

impl RestCode {
    /// The numeric status: 400, 405 or 500.
    pub fn status(self) -> u16 {
        match self {
            RestCode::InvalidParameter => 400,
            RestCode::MethodNotAllowed => 405,
            RestCode::InternalServerError => 500,
        }
    }

    /// The symbolic code as the products print it, e.g. `METHOD_NOT_ALLOWED`.
    pub fn name(self) -> &'static str {
        match self {
            RestCode::InvalidParameter => "INVALID_PARAMETER",
            RestCode::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            RestCode::InternalServerError => "INTERNAL_SERVER_ERROR",
        }
    }
}

/// The message of a refused registration token (seed 000:1545), shared by the local syntax
/// check and the manager's refusal.
pub const TOKEN_MESSAGE: &str = "The Product Instance Registration Token you have entered is either invalid or has been expired. Ensure that you have pasted the entire token and that the token has not expired";

/// An operation the agent refused before sending anything.
///
/// ```
/// use smart_agent::Error;
/// let e = Error::NotRegisteredForDeregister;
/// assert_eq!(e.code().status(), 405);
/// assert_eq!(
///     e.to_string(),
///     "Deregistration is not allowed since product is in either unregistered state or is a Subscriber node"
/// );
/// ```
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The token is not 1–256 characters of `[A-Za-z0-9+/%=-]` (SPEC §3).
    #[error("{}", TOKEN_MESSAGE)]
    InvalidToken,
    /// `register` without `force` while registered (seed 000:1547).
    #[error("Product is already registered on CSSM. To Re-register it use 'force' flag")]
    AlreadyRegistered,
    /// `register` while a registration is pending (SPEC §3, ours).
    #[error("registration in progress")]
    RegistrationInProgress,
    /// `register` on a subscriber node (seed 000:1546).
    #[error("Smart Software Licensing operations are not allowed from Subscriber, licenses for this system are managed by Publisher")]
    SubscriberNode,
    /// `renew_id` while unregistered or on a subscriber node (seed 000:1557).
    #[error("Renewal of ID is not allowed since product is in either unregistered state or is a Subscriber node")]
    RenewIdNotAllowed,
    /// `renew_auth` while unregistered or on a subscriber node (seed 000:1566).
    #[error("Renewal of Authorization is not allowed since product is in either unregistered state or is a Subscriber node")]
    RenewAuthNotAllowed,
    /// `deregister` while unregistered or on a subscriber node (seed 000:1537).
    #[error("Deregistration is not allowed since product is in either unregistered state or is a Subscriber node")]
    NotRegisteredForDeregister,
    /// Transport settings changed while registered or on a subscriber node (seed 000:1530).
    #[error("Edit Transport Settings operation is not allowed since product is in either Registered state or is a Subscriber node")]
    TransportSettingsLocked,
    /// The transport settings could not be applied (seed 000:1531).
    #[error("Failed to apply the Transport Settings")]
    TransportApplyFailed,
    /// Transport mode outside 0–2 (seed 000:1532).
    #[error("Please enter a valid Transport Mode within the range (0 - 2)")]
    InvalidTransportMode,
    /// On-prem URL not of the accepted forms (seed 000:1533).
    #[error("Please enter a valid Transport Gateway URL")]
    InvalidGatewayUrl,
    /// Proxy address and port both missing (seed 000:1534).
    #[error("Please provide valid HTTP/HTTPS Proxy IP Address and/or HTTP/HTTPS Proxy Port")]
    MissingProxy,
    /// Proxy address is neither a host name nor an IP address (seed 000:1535).
    #[error("Please enter a valid HTTP/HTTPS Proxy IP Address")]
    InvalidProxyAddress,
    /// Proxy port outside 1–65535 (seed 000:1536).
    #[error("Please enter a valid HTTP/HTTPS Proxy Port within the range (1 - 65535)")]
    InvalidProxyPort,
    /// The proxy user name contains `:` or a control character, or the password a control
    /// character: Basic authentication cannot carry them (RFC 7617; ours).
    #[error("Please enter a valid HTTP/HTTPS Proxy user name and password (no ':' in the user name, no control characters)")]
    InvalidProxyCredentials,
    /// The entitlement tag is not of the form `regid.<yyyy-mm>.com.cisco.<Name>,<version>_<uuid>`
    /// (ours).
    #[error("Please enter a valid entitlement tag")]
    InvalidTag,
    /// `set_usage` for a tag that was never declared (ours).
    #[error("The entitlement tag has not been declared by this product")]
    UndeclaredTag,
    /// The host name given to `set_host` is not a valid DNS name (ours).
    #[error("Please enter a valid host name")]
    InvalidHostName,
    /// The system random source failed; nothing was changed (ours).
    #[error("The random number generator failed")]
    RandomFailed,
    /// `reservation_enable` while registered or a registration is pending (SPEC §6, ours).
    #[error("License Reservation cannot be enabled while the product is registered. Deregister it first")]
    ReservationNotWhileRegistered,
    /// A reservation command other than enable while reservation mode is off (SPEC §6, ours).
    #[error("License Reservation is not enabled")]
    ReservationNotEnabled,
    /// `reservation_install` with no request outstanding and nothing installed (ours).
    #[error("There is no reservation request in progress")]
    NoReservationRequest,
    /// `reservation_disable` with a code installed (ours).
    #[error("License Reservation cannot be disabled while an authorization code is installed. Return it first")]
    ReservationInstalledCannotDisable,
    /// Register, renew or deregister in reservation mode (ours).
    #[error("Smart Software Licensing registration operations are not allowed while License Reservation is enabled. Return an installed code with license smart reservation return, or disable License Reservation")]
    RegistrationInReservationMode,
    /// `reservation_request` with a code installed (ours).
    #[error("A reservation authorization code is installed. Install a newer code to update it, or return it first")]
    ReservationInstalled,
    /// An SLR code over an installed PLR set (ours).
    #[error("A Permanent License Reservation is installed; return it first")]
    PlrInstalled,
    /// A PLR code over an installed SLR (ours).
    #[error("A Specific License Reservation is installed; return it first")]
    SlrInstalled,
    /// `reservation_return` with nothing installed (ours).
    #[error("No reservation authorization code is installed")]
    NoReservationInstalled,
    /// An authorization code that is not well formed or not signed by a trusted manager: the
    /// first two install checks of SPEC §6, with their messages.
    #[error(transparent)]
    ReservationCode(crate::codes::CodeError),
    /// An authorization code whose signed UDI is another instance's (SPEC §6).
    #[error("The Reservation Authorization Code is for another product instance: {0}")]
    ReservationForAnotherInstance(String),
    /// An authorization code for another reservation key than the request's (or, for an
    /// update, than the installed code's) (IOS agent).
    #[error("The Reservation Authorization Code does not match the Reservation Request Code")]
    ReservationCodeMismatch,
    /// An update older than the installed code (ours).
    #[error("The Reservation Authorization Code is older than the installed one")]
    ReservationCodeOlder,
    /// An export key command while unregistered or in reservation mode (SPEC §7, ours).
    #[error("Export authorization keys are available only to a registered product instance")]
    ExportKeysNotAvailable,
    /// An export feature name that is not 1–64 characters of `[A-Za-z0-9_.-]` (ours).
    #[error("Please enter a valid export feature name")]
    InvalidFeature,
    /// `export_return` of a feature whose key is not held (ours).
    #[error("No export authorization key is held for {0}")]
    ExportKeyNotHeld(String),
}

impl Error {
    /// The REST-style code of this error.
    pub fn code(&self) -> RestCode {
        use Error::*;
        match self {
            InvalidToken
            | InvalidTransportMode
            | InvalidGatewayUrl
            | MissingProxy
            | InvalidProxyAddress
            | InvalidProxyPort
            | InvalidProxyCredentials
            | InvalidTag
            | UndeclaredTag
            | InvalidHostName
            | ReservationCode(_)
            | ReservationForAnotherInstance(_)
            | ReservationCodeMismatch
            | ReservationCodeOlder
            | InvalidFeature => RestCode::InvalidParameter,
            AlreadyRegistered
            | RegistrationInProgress
            | SubscriberNode
            | RenewIdNotAllowed
            | RenewAuthNotAllowed
            | NotRegisteredForDeregister
            | TransportSettingsLocked
            | ReservationNotWhileRegistered
            | ReservationNotEnabled
            | NoReservationRequest
            | ReservationInstalledCannotDisable
            | RegistrationInReservationMode
            | ReservationInstalled
            | PlrInstalled
            | SlrInstalled
            | NoReservationInstalled
            | ExportKeysNotAvailable
            | ExportKeyNotHeld(_) => RestCode::MethodNotAllowed,
            TransportApplyFailed | RandomFailed => RestCode::InternalServerError,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_carries_its_rest_code() {
        assert_eq!(Error::InvalidToken.code().status(), 400);
        assert_eq!(Error::AlreadyRegistered.code().status(), 405);
        assert_eq!(Error::TransportApplyFailed.code().status(), 500);
        assert_eq!(
            Error::TransportApplyFailed.code().name(),
            "INTERNAL_SERVER_ERROR"
        );
    }
}
