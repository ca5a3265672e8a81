//! The reference Smart Software Manager (DESIGN "Reference manager"; feature `manager`).

mod accounts;
mod allocation;
pub mod catalogue;
mod error;
mod instances;
mod tokens;

pub use accounts::{LicenseLine, VirtualAccountId};
pub use catalogue::{catalogue, CatalogueEntry};
pub use error::ManagerError;
pub use instances::InstanceInfo;
pub use tokens::TokenOptions;
