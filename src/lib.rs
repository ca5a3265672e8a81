//! # smart-agent
//!
//! Smart Software Licensing for unified-communications products (call control, messaging,
//! video gateways), modelled on the public Cisco Unified CM, Expressway and HCS documentation.
//!
//! The [`Agent`] is a **sans-IO state machine**: it never reads a clock, a socket, a file or an
//! environment variable. The product passes in `now`, commands and the manager's answers; it
//! drains requests to send ([`Agent::poll_transmit`]), events ([`Agent::poll_event`]) and the
//! next deadline ([`Agent::poll_timeout`]), and persists [`Agent::snapshot`].
//!
//! It models registration (a one-year identity renewed every six months), authorization
//! (renewed every 30 days, expiring 90 days after the last success), the 90-day evaluation
//! period, entitlement compliance and deregistration. Every request is signed by the device
//! (Ed25519) and every answer by the manager (ECDSA P-256), verified against the
//! [`TrustAnchor`]s the product configures.
//!
//! # The run loop
//! Here the in-process reference manager (feature `manager`) stands in for the network; a
//! product would POST [`Transmit::body`] over HTTPS and pass back the bytes or a [`SendError`].
//!
//! ```
//! # #[cfg(feature = "manager")] {
//! use chrono::{DateTime, TimeDelta, Utc};
//! use smart_agent::manager::{catalogue, Manager, TokenOptions};
//! use smart_agent::{Agent, AuthorizationState, Config, Environment, Force, SystemRandom, Tag};
//!
//! let mut now: DateTime<Utc> = "2027-03-01T09:00:00Z".parse().unwrap();
//! let mut manager = Manager::new(Environment::Production, Box::new(SystemRandom::new())).unwrap();
//! let enhanced = Tag::parse(catalogue::UCM_ENHANCED).unwrap();
//! let va = manager.default_virtual_account();
//! manager.add_licenses(&va, &enhanced, 10, None, None).unwrap();
//! let token = manager.create_token(&va, TokenOptions::default(), now).unwrap();
//!
//! // The product's side: configure trust, declare what it may use, register.
//! let udi = "PID:UCM,SN:37624".parse().unwrap();
//! let config = Config::new(udi, Environment::Production, manager.trust_anchors());
//! let mut agent = Agent::new(config, now).unwrap();
//! agent.declare(enhanced.clone(), now);
//! agent.set_usage(&enhanced, 5, now).unwrap();
//! agent.register(token.expose(), Force::No, now).unwrap();
//!
//! let mut snapshot = Vec::new();
//! for _ in 0..3 {
//!     // 1. Send what is due and feed back the answers.
//!     while let Some(tx) = agent.poll_transmit(now) {
//!         snapshot = agent.snapshot(); // the outstanding request survives a crash
//!         let answer = manager.handle(&tx.body, now); // or Err(SendError::Timeout), …
//!         agent.handle_response(tx.id, Ok(answer), now);
//!     }
//!     // 2. Raise events (alarms, status changes) to the product.
//!     while let Some(event) = agent.poll_event() {
//!         println!("{event}");
//!     }
//!     snapshot = agent.snapshot();
//!     // 3. Sleep until the next deadline (here: jump there), then let the agent act.
//!     let (at, _reason) = agent.poll_timeout().unwrap();
//!     now = now.max(at);
//!     agent.handle_timeout(now);
//! }
//! assert_eq!(agent.status(now).authorization.state, AuthorizationState::Authorized);
//! assert!(now >= "2027-03-31T09:00:00Z".parse::<DateTime<Utc>>().unwrap() - TimeDelta::seconds(1));
//! # let _ = snapshot;
//! # }
//! ```
//!
//! # The ready-made loop: `Driver`
//! Products that do not want to write the loop above use the blocking [`driver::Driver`]: it
//! owns the agent, an [`transport::HttpsTransport`], a clock and an atomic snapshot file, persists before every request goes out, and takes commands from any
//! thread through a [`driver::DriverHandle`].
//!
//! ```no_run
//! use chrono::TimeDelta;
//! use smart_agent::driver::{Driver, SystemClock};
//! use smart_agent::store::AtomicFile;
//! use smart_agent::transport::{HttpsTransport, TransportConfig};
//! use smart_agent::{Config, Environment, Force, ManagerPublicKey, Tag, TrustAnchor};
//!
//! let key = ManagerPublicKey::from_spki_pem(&std::fs::read_to_string("manager-key.pub.pem")?)?;
//! let config = Config::new(
//!     "PID:UCM,SN:37624".parse()?,
//!     Environment::Production,
//!     vec![TrustAnchor::new(key, Environment::Production)],
//! );
//! let mut transport_config = TransportConfig::new();
//! transport_config.add_ca_pem(&std::fs::read("ca.pem")?)?;
//! let transport = HttpsTransport::new(transport_config)?;
//! let store = AtomicFile::new("/var/lib/product/licensing.snapshot");
//! let enhanced = Tag::parse("regid.2016-07.com.cisco.UCM_Enhanced,12.0_66d0d1cf-4863-4761-91d0-d01d3eb1949a")?;
//! let mut driver = Driver::open(config, transport, SystemClock, store)?
//!     // The product's recount, every 24 hours by default (003:219).
//!     .with_usage(move || vec![(enhanced.clone(), 42)])
//!     .on_event(|event| {
//!         if let Some(alarm) = event.alarm() {
//!             eprintln!("ALARM {}: {event}", alarm.name());
//!         }
//!     });
//! let handle = driver.handle(); // Clone + Send: give it to the admin UI thread
//! std::thread::spawn(move || {
//!     if let Err(e) = handle.register("NjEwN2ZjZjEtZmI1Zi00ZGVj", Force::No) {
//!         eprintln!("{e}"); // e.g. the 400 token message
//!     }
//!     handle.shutdown().ok();
//! });
//! driver.run()?; // until shutdown
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Modules
//! - [`agent`]: the state machine, its events and failures.
//! - [`status`]: the plain-data status (`show license …`) in both product vocabularies.
//! - [`wire`]: the signed XML protocol; [`crypto`]: keys, signatures, trust anchors.
//! - [`snapshot`]: the persisted state, integrity-checked or sealed with a product key.
//! - [`settings`]: transport settings and host identity with the products' validation.
//! - [`export_limit`]: the Expressway export-limit governor (encrypted-session cap and alarms).
//! - [`transport`], [`driver`]: HTTPS to the manager (direct,
//!   proxy, on-prem), `diagnose()`, and the blocking loop; [`store`]: atomic durable files.
//! - `manager` (feature `manager`): the reference Smart Software Manager, in-process or served
//!   over HTTPS with durable state.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod agent;
pub mod clock;
pub mod codec;
pub mod codes;
pub mod crypto;
pub mod driver;
pub mod entitlement;
pub mod error;
pub mod export_limit;
#[cfg(feature = "manager")]
pub mod manager;
pub mod policy;
pub mod settings;
pub mod snapshot;
pub mod status;
pub mod store;
pub mod time;
pub mod token;
pub mod transport;
pub mod udi;
pub mod wire;
pub mod xmlsig;

pub use agent::{
    Agent, Alarm, Config, ConfigError, Event, EventKind, ExportKeyState, ExportKeyStatus, Failure,
    FailureKind, Force, Installed, Operation, PartError, ReservationKind, RestoreError,
    TimerReason, Transmit, TransmitId,
};
pub use crypto::{
    DeterministicRandom, Environment, ManagerPublicKey, Random, SystemRandom, TrustAnchor,
};
pub use entitlement::Tag;
pub use error::{Error, RestCode};
pub use export_limit::ExportLimit;
#[cfg(feature = "manager")]
pub use manager::{Manager, ManagerError, TokenOptions, VirtualAccountId};
pub use policy::Policy;
pub use settings::{HostIdentity, TransportSettings};
pub use snapshot::{ProductKey, Protection, SnapshotError, SnapshotParts};
pub use status::{AuthorizationState, RegistrationState, Status, TagStatus, Vocabulary};
pub use token::Token;
pub use transport::{HttpsTransport, Transport, TransportConfig};
pub use udi::{Udi, Uuid};
pub use wire::{SendError, SendFailure};
