//! Transports: how the Driver reaches the manager.

use crate::settings::TransportSettings;
use crate::wire::SendError;

/// What the Driver uses to reach the manager.
pub trait Transport: Send {
    /// POSTs one request document to the manager named by `settings`; the answer body, or why
    /// not.
    fn send(&mut self, settings: &TransportSettings, body: &[u8]) -> Result<Vec<u8>, SendError>;
}
