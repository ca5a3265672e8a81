//! A builder that puts an agent into any state by driving the real agent against the real
//! in-process manager (the shape of ureq-proto's `test/scenario.rs`): a focused test starts
//! from "registered with a failing renewal" in one line, and every terminal method asserts
//! the state it promises, so a scenario that stops reaching it fails loudly.
//!
//! ```ignore
//! let sim = Scenario::new().pool(ENHANCED, 10).usage(ENHANCED, 5).failing_renewal();
//! ```

use smart_agent::manager::TokenOptions;
use smart_agent::status::{Attempt, Outcome};
use smart_agent::{Agent, AuthorizationState, RegistrationState, SendError, TrustAnchor};

use super::{config, days, minutes, refused, Link, Sim, UDI};

/// What to set up before reaching a state. Defaults: no pools, no usage, the default token.
#[derive(Clone, Default)]
pub struct Scenario {
    pools: Vec<(&'static str, u32)>,
    usage: Vec<(&'static str, u32)>,
    extra_anchors: Vec<TrustAnchor>,
    token: TokenOptions,
}

impl Scenario {
    pub fn new() -> Scenario {
        Scenario::default()
    }

    /// Licenses in the default Virtual Account.
    pub fn pool(mut self, tag: &'static str, count: u32) -> Scenario {
        self.pools.push((tag, count));
        self
    }

    /// A tag the product declares, with its count in use.
    pub fn usage(mut self, tag: &'static str, count: u32) -> Scenario {
        self.usage.push((tag, count));
        self
    }

    /// Anchors the agent trusts besides the manager's.
    pub fn trusting(mut self, anchors: Vec<TrustAnchor>) -> Scenario {
        self.extra_anchors.extend(anchors);
        self
    }

    /// The options of the registration token.
    pub fn token(mut self, options: TokenOptions) -> Scenario {
        self.token = options;
        self
    }

    /// Pools made, tags declared and in use; nothing sent yet but the empty evaluation.
    pub fn evaluation(self) -> Sim {
        let mut sim = Sim::with_extra_anchors(self.extra_anchors.clone());
        for (tag, count) in &self.pools {
            sim.pool(tag, *count);
        }
        for (tag, count) in &self.usage {
            sim.declare_use(tag, *count);
        }
        assert_eq!(
            sim.status().registration.state,
            RegistrationState::Unregistered
        );
        sim.take_events();
        sim
    }

    /// A registration sent while the manager is unreachable: pending, retried every 15 min.
    pub fn pending(self) -> Sim {
        let mut sim = self.clone().evaluation();
        let token = sim.token_with(self.token);
        sim.link = Link::Down(refused());
        sim.register(&token);
        assert_eq!(
            sim.status().registration.state,
            RegistrationState::RegistrationPending
        );
        sim.take_events();
        sim
    }

    /// A registration the manager refused (an unknown token): failed for good.
    pub fn failed(self) -> Sim {
        let mut sim = self.evaluation();
        sim.register("unknownToken");
        assert_eq!(
            sim.status().registration.state,
            RegistrationState::RegistrationFailed
        );
        sim.take_events();
        sim
    }

    /// Registered and authorized (the first authorization follows the registration at once).
    pub fn registered(self) -> Sim {
        let mut sim = self.clone().evaluation();
        let token = sim.token_with(self.token);
        sim.register(&token);
        assert_eq!(
            sim.status().registration.state,
            RegistrationState::Registered
        );
        if self.usage.iter().any(|(_, n)| *n > 0) {
            assert_ne!(
                sim.status().authorization.state,
                AuthorizationState::EvalMode,
                "the first authorization was answered"
            );
        }
        sim.take_events();
        sim
    }

    /// Registered, then the manager unreachable from the 30-day renewal on: the renewal has
    /// failed once and its retry is due in 15 minutes.
    pub fn failing_renewal(self) -> Sim {
        let mut sim = self.registered();
        sim.link = Link::Down(SendError::Timeout);
        sim.advance(days(30));
        let st = sim.status();
        assert!(
            matches!(
                st.authorization.last_communication,
                Some(Attempt {
                    outcome: Outcome::Failed { .. },
                    ..
                })
            ),
            "the renewal failed: {st:?}"
        );
        sim.take_events();
        sim
    }

    /// Registered, then unreachable until the 90-day deadline passed.
    pub fn authorization_expired(self) -> Sim {
        let mut sim = self.registered();
        sim.link = Link::Down(SendError::Timeout);
        sim.advance(days(90) + minutes(1));
        assert_eq!(
            sim.status().authorization.state,
            AuthorizationState::AuthorizationExpired
        );
        sim.take_events();
        sim
    }

    /// Never registered, a tag in use for the whole 90 days and a minute.
    pub fn evaluation_expired(self) -> Sim {
        let mut sim = self.evaluation();
        sim.advance(days(90) + minutes(1));
        assert_eq!(
            sim.status().authorization.state,
            AuthorizationState::EvalExpired
        );
        sim.take_events();
        sim
    }

    /// Registered, then the manager's key rotated twice and the agent restarted trusting the
    /// key that signed its identity and the newest, but not the one that signed its grant:
    /// `NOT APPLICABLE` until the next accepted answer.
    pub fn restored_under_rotated_keys(self) -> Sim {
        let mut sim = self.registered();
        let first = sim.manager.trust_anchor();
        let second = sim.manager.rotate_signing_key().unwrap();
        sim.agent = Agent::restore(
            &sim.agent.snapshot(),
            config(UDI, vec![first.clone(), second], 31),
            sim.now,
        )
        .unwrap();
        sim.agent.renew_auth(sim.now).unwrap();
        sim.pump(); // a grant signed by the second key
        let third = sim.manager.rotate_signing_key().unwrap();
        sim.link = Link::Down(SendError::Timeout);
        sim.agent = Agent::restore(
            &sim.agent.snapshot(),
            config(UDI, vec![first, third], 32),
            sim.now,
        )
        .unwrap();
        sim.pump(); // the immediate request is lost
        sim.link = Link::Up;
        assert_eq!(
            sim.status().authorization.state,
            AuthorizationState::NotApplicable
        );
        sim.take_events();
        sim
    }
}
