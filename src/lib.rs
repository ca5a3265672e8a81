//! smart-agent: Smart Software Licensing for unified-communications products.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod agent;
pub mod crypto;
pub mod entitlement;
pub mod error;
#[cfg(feature = "manager")]
pub mod manager;
pub mod policy;
pub mod settings;
pub mod snapshot;
pub mod status;
pub mod token;
pub mod udi;
pub mod wire;

pub use agent::{
    Agent, Alarm, Config, Event, EventKind, Failure, FailureKind, Force, Operation, TimerReason,
    Transmit, TransmitId,
};
pub use crypto::{
    DeterministicRandom, Environment, ManagerPublicKey, Random, SystemRandom, TrustAnchor,
};
pub use entitlement::Tag;
pub use error::{Error, RestCode};
#[cfg(feature = "manager")]
pub use manager::{Manager, ManagerError, TokenOptions, VirtualAccountId};
pub use policy::Policy;
pub use settings::{HostIdentity, TransportSettings};
pub use snapshot::{ProductKey, Protection, SnapshotError, SnapshotParts};
pub use status::{AuthorizationState, RegistrationState, Status, TagStatus, Vocabulary};
pub use token::Token;
pub use udi::{Udi, Uuid};
pub use wire::SendError;
