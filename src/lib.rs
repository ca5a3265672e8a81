//! smart-agent: Smart Software Licensing for unified-communications products.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod crypto;
pub mod entitlement;
pub mod error;
#[cfg(feature = "manager")]
pub mod manager;
pub mod policy;
pub mod token;
pub mod udi;
pub mod wire;

pub use crypto::{
    DeterministicRandom, Environment, ManagerPublicKey, Random, SystemRandom, TrustAnchor,
};
pub use entitlement::Tag;
pub use error::{Error, RestCode};
#[cfg(feature = "manager")]
pub use manager::{Manager, ManagerError, TokenOptions, VirtualAccountId};
pub use policy::Policy;
pub use token::Token;
pub use udi::{Udi, Uuid};
