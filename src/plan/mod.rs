//! Desired state, spec hashes and reconciliation. Pure: no I/O, no clock, no OS.
//!
//! `Stack` → [`DesiredState`] → [`reconcile`] against an [`ObservedState`] →
//! [`Plan`], whose `Display` is the text of `rkstack plan`, of the log line
//! before a plan is executed, and of the golden tests.

mod desired;
mod reconcile;

pub use desired::{ContainerSpec, DesiredState, HASH_VERSION, Limits, NetworkSpec};
pub use reconcile::{Action, Op, Plan, Target, Why, reconcile};

/// What `plan`, a reload and the API's plan all do with a stack file: its
/// desired state (the store's image ids in the spec hashes) and the plan
/// from what runs to it.
pub fn for_stack(
    stack: crate::config::Stack,
    image_ids: &std::collections::BTreeMap<String, String>,
    observed: &ObservedState,
) -> (DesiredState, Plan) {
    let desired = DesiredState::from_stack_with_images(stack, image_ids);
    let plan = reconcile(&desired, observed);
    (desired, plan)
}

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What a running container was created from, as recorded by the supervisor
/// (and kept in its state file): enough to tell what changed since.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// `v1:…` spec hash over the keys that need a recreate.
    pub hash: String,
    /// A fingerprint of each hashed key's value, to name what changed.
    pub keys: BTreeMap<Cow<'static, str>, u64>,
    /// Limits applied in place.
    pub limits: Limits,
    pub depends_on: Vec<String>,
    /// Networks it joined, in order.
    pub networks: Vec<String>,
}

/// What a network was created from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkRecord {
    pub hash: String,
    pub keys: BTreeMap<Cow<'static, str>, u64>,
}

/// What exists now: built by the supervisor from its live state (empty when
/// nothing runs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObservedState {
    pub containers: BTreeMap<String, Record>,
    pub networks: BTreeMap<String, NetworkRecord>,
}

impl ObservedState {
    /// The observed state of a stack that runs exactly as `desired` says.
    pub fn from_desired(desired: &DesiredState) -> ObservedState {
        ObservedState {
            containers: desired
                .containers
                .iter()
                .map(|c| (c.name.clone(), c.record()))
                .collect(),
            networks: desired
                .networks
                .values()
                .map(|n| (n.name.clone(), n.record()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests;
