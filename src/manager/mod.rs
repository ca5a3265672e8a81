//! The reference Smart Software Manager (DESIGN "Reference manager"; feature `manager`).

mod allocation;
pub mod catalogue;

pub use catalogue::{catalogue, CatalogueEntry};
