//! `reconcile(desired, observed) → Plan`: what to do, in what order, and why.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use super::desired::start_order;
use super::{DesiredState, Limits, ObservedState, Record};
use crate::config::ByteSize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Network,
    Container,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Create a network.
    Create,
    /// Remove a network.
    Remove,
    /// Start a container (new, or the second half of a recreate or restart).
    Start,
    /// Stop a container (removed, or the first half of a recreate or restart).
    Stop,
    /// Write changed limits to a running container's cgroup.
    Update,
    /// Leave it as it is.
    Keep,
}

/// Why an op is there; also how the summary counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Why {
    New,
    Removed,
    Recreate,
    Restart,
    Limits,
    Unchanged,
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Op {
    pub action: Action,
    pub target: Target,
    pub name: String,
    pub why: Why,
    /// For people: "command changed", "new in file", "memory 128M → 256M".
    pub cause: String,
    /// For `update`: the limits to write.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
}

/// An ordered list of ops: stops (dependents first), network removals,
/// network creations, then starts/updates/keeps (dependencies first).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub stack: String,
    pub ops: Vec<Op>,
}

impl Plan {
    /// Whether executing the plan would change anything.
    pub fn is_noop(&self) -> bool {
        self.ops.iter().all(|o| o.action == Action::Keep)
    }

    fn count(&self, target: Target, action: Action, why: Option<Why>) -> usize {
        self.ops
            .iter()
            .filter(|o| o.target == target && o.action == action && why.is_none_or(|w| o.why == w))
            .count()
    }
}

#[derive(Debug)]
enum Change {
    New,
    Recreate(String),
    Restart(String),
    Update(String),
    Keep,
}

/// Compares what should be with what is. Pure and deterministic.
pub fn reconcile(desired: &DesiredState, observed: &ObservedState) -> Plan {
    // Networks.
    let mut net_recreated: BTreeMap<&str, String> = BTreeMap::new();
    let mut net_new: BTreeSet<&str> = BTreeSet::new();
    for (name, n) in &desired.networks {
        match observed.networks.get(name) {
            None => {
                net_new.insert(name);
            }
            Some(o) if o.hash != n.hash => {
                net_recreated.insert(name, changed_keys(&o.keys, &n.keys, &o.hash, &n.hash));
            }
            Some(_) => {}
        }
    }
    let net_removed: Vec<&str> = observed
        .networks
        .keys()
        .filter(|n| !desired.networks.contains_key(*n))
        .map(String::as_str)
        .collect();

    // Containers, in start order, so a recreate is known before its dependents are looked at.
    let mut changes: BTreeMap<&str, Change> = BTreeMap::new();
    for c in &desired.containers {
        let change = match observed.containers.get(&c.name) {
            None => Change::New,
            Some(o) if o.hash != c.hash => {
                Change::Recreate(changed_keys(&o.keys, &c.keys, &o.hash, &c.hash))
            }
            Some(o) => {
                let net = c
                    .networks
                    .iter()
                    .find(|n| net_recreated.contains_key(n.as_str()));
                // Compose's habit: a dependent goes on running through its
                // dependency's recreate unless it asked (`restart = true`).
                let dep = c.restart_with.iter().find(|d| {
                    matches!(
                        changes.get(d.as_str()),
                        Some(Change::Recreate(_) | Change::Restart(_))
                    )
                });
                if let Some(n) = net {
                    Change::Recreate(format!("network {n} is recreated"))
                } else if let Some(d) = dep {
                    Change::Restart(format!("dependency {d} is restarted (restart = true)"))
                } else if o.limits != c.limits {
                    Change::Update(limits_diff(&o.limits, &c.limits))
                } else {
                    Change::Keep
                }
            }
        };
        changes.insert(&c.name, change);
    }
    let removed: Vec<(&str, &Record)> = observed
        .containers
        .iter()
        .filter(|(n, _)| !changes.contains_key(n.as_str()))
        .map(|(n, r)| (n.as_str(), r))
        .collect();

    let mut ops = Vec::new();
    let op = |action, target, name: &str, why, cause: String| Op {
        action,
        target,
        name: name.to_string(),
        why,
        cause,
        limits: None,
    };

    // 1. Stops, dependents before their dependencies. Removed containers
    //    are ordered by the dependencies they were started with.
    let mut graph: BTreeMap<String, Vec<String>> = desired
        .containers
        .iter()
        .map(|c| (c.name.clone(), c.depends_on.clone()))
        .collect();
    for (n, r) in &removed {
        graph.insert((*n).to_string(), r.depends_on.clone());
    }
    for name in start_order(&graph).iter().rev() {
        if !changes.contains_key(name.as_str()) {
            ops.push(op(
                Action::Stop,
                Target::Container,
                name,
                Why::Removed,
                "removed from file".into(),
            ));
            continue;
        }
        match changes.get(name.as_str()) {
            Some(Change::Recreate(cause)) => ops.push(op(
                Action::Stop,
                Target::Container,
                name,
                Why::Recreate,
                cause.clone(),
            )),
            Some(Change::Restart(cause)) => ops.push(op(
                Action::Stop,
                Target::Container,
                name,
                Why::Restart,
                cause.clone(),
            )),
            _ => {}
        }
    }

    // 2. Networks that go away or are recreated.
    for n in &net_removed {
        ops.push(op(
            Action::Remove,
            Target::Network,
            n,
            Why::Removed,
            "removed from file".into(),
        ));
    }
    for (n, cause) in &net_recreated {
        ops.push(op(
            Action::Remove,
            Target::Network,
            n,
            Why::Recreate,
            cause.clone(),
        ));
    }

    // 3. Networks to create (or keep).
    for name in desired.networks.keys() {
        let name = name.as_str();
        if net_new.contains(name) {
            ops.push(op(
                Action::Create,
                Target::Network,
                name,
                Why::New,
                "new in file".into(),
            ));
        } else if let Some(cause) = net_recreated.get(name) {
            ops.push(op(
                Action::Create,
                Target::Network,
                name,
                Why::Recreate,
                cause.clone(),
            ));
        } else {
            ops.push(op(
                Action::Keep,
                Target::Network,
                name,
                Why::Unchanged,
                "unchanged".into(),
            ));
        }
    }

    // 4. Containers in start order.
    for c in &desired.containers {
        let name = c.name.as_str();
        let o = match changes.get(name) {
            Some(Change::New) => op(
                Action::Start,
                Target::Container,
                name,
                Why::New,
                "new in file".into(),
            ),
            Some(Change::Recreate(cause)) => op(
                Action::Start,
                Target::Container,
                name,
                Why::Recreate,
                cause.clone(),
            ),
            Some(Change::Restart(cause)) => op(
                Action::Start,
                Target::Container,
                name,
                Why::Restart,
                cause.clone(),
            ),
            Some(Change::Update(cause)) => Op {
                limits: Some(c.limits.clone()),
                ..op(
                    Action::Update,
                    Target::Container,
                    name,
                    Why::Limits,
                    format!("{cause}: applied in place"),
                )
            },
            Some(Change::Keep) | None => op(
                Action::Keep,
                Target::Container,
                name,
                Why::Unchanged,
                "unchanged".into(),
            ),
        };
        ops.push(o);
    }

    Plan {
        stack: desired.stack.clone(),
        ops,
    }
}

/// "command changed", "command and env changed", "command, env and mounts changed".
fn changed_keys(
    old: &BTreeMap<Cow<'static, str>, u64>,
    new: &BTreeMap<Cow<'static, str>, u64>,
    old_hash: &str,
    new_hash: &str,
) -> String {
    let old_version = old_hash.split(':').next().unwrap_or("");
    let new_version = new_hash.split(':').next().unwrap_or("");
    if old_version != new_version {
        return format!("spec format changed ({old_version} → {new_version})");
    }
    let keys: BTreeSet<&Cow<'static, str>> = old.keys().chain(new.keys()).collect();
    let changed: Vec<&str> = keys
        .into_iter()
        .filter(|k| old.get(*k) != new.get(*k))
        .map(|k| k.as_ref())
        .collect();
    match changed.as_slice() {
        [] => "spec changed".into(),
        [one] => format!("{one} changed"),
        [init @ .., last] => format!("{} and {last} changed", init.join(", ")),
    }
}

fn limits_diff(old: &Limits, new: &Limits) -> String {
    let size = |v: Option<u64>| v.map_or("unlimited".to_string(), |b| ByteSize(b).to_string());
    let num = |v: Option<u64>| v.map_or("unlimited".to_string(), |n| n.to_string());
    let weight = |v: Option<u32>| v.map_or("default".to_string(), |n| n.to_string());
    let mut parts = Vec::new();
    if old.memory != new.memory {
        parts.push(format!(
            "memory limit {} → {}",
            size(old.memory),
            size(new.memory)
        ));
    }
    if old.memory_reservation != new.memory_reservation {
        parts.push(format!(
            "memory reservation {} → {}",
            size(old.memory_reservation).replace("unlimited", "none"),
            size(new.memory_reservation).replace("unlimited", "none")
        ));
    }
    if old.cpus != new.cpus {
        let c = |v: Option<f64>| v.map_or("unlimited".to_string(), |x| x.to_string());
        parts.push(format!("cpus {} → {}", c(old.cpus), c(new.cpus)));
    }
    if old.cpu_weight != new.cpu_weight {
        parts.push(format!(
            "cpu weight {} → {}",
            weight(old.cpu_weight),
            weight(new.cpu_weight)
        ));
    }
    if old.cpuset != new.cpuset {
        let c = |v: &Option<Vec<u32>>| match v {
            None => "all".to_string(),
            Some(list) => cpu_list(list),
        };
        parts.push(format!("cpuset {} → {}", c(&old.cpuset), c(&new.cpuset)));
    }
    if old.pids != new.pids {
        parts.push(format!("pids limit {} → {}", num(old.pids), num(new.pids)));
    }
    if old.io_weight != new.io_weight {
        parts.push(format!(
            "io weight {} → {}",
            weight(old.io_weight),
            weight(new.io_weight)
        ));
    }
    if old.io_limits != new.io_limits {
        parts.push("io limits changed".into());
    }
    parts.join(", ")
}

/// `[0, 1, 2, 5]` → `0-2,5`.
fn cpu_list(cpus: &[u32]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let start = cpus[i];
        let mut end = start;
        while i + 1 < cpus.len() && cpus[i + 1] == end + 1 {
            i += 1;
            end = cpus[i];
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    out.join(",")
}

impl fmt::Display for Plan {
    /// ```text
    /// stack demo: create 1 network, start 2 containers, keep 1 container
    ///   create  network    backend  new in file
    ///   start   container  db       new in file
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Action::*;
        use Target::*;
        let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
        let mut parts = Vec::new();
        let mut part = |verb: &str, n: usize, what: &str| {
            if n > 0 {
                parts.push(format!("{verb} {}", plural(n, what)));
            }
        };
        part(
            "create",
            self.count(Network, Create, Some(Why::New)),
            "network",
        );
        part(
            "recreate",
            self.count(Network, Create, Some(Why::Recreate)),
            "network",
        );
        part(
            "remove",
            self.count(Network, Remove, Some(Why::Removed)),
            "network",
        );
        part(
            "start",
            self.count(Container, Start, Some(Why::New)),
            "container",
        );
        part(
            "recreate",
            self.count(Container, Start, Some(Why::Recreate)),
            "container",
        );
        part(
            "restart",
            self.count(Container, Start, Some(Why::Restart)),
            "container",
        );
        part("update", self.count(Container, Update, None), "container");
        part(
            "stop",
            self.count(Container, Stop, Some(Why::Removed)),
            "container",
        );
        let kept = self.count(Container, Keep, None);
        if parts.is_empty() {
            writeln!(
                f,
                "stack {}: nothing to do ({} unchanged)",
                self.stack,
                plural(kept, "container")
            )?;
        } else {
            if kept > 0 {
                parts.push(format!("keep {}", plural(kept, "container")));
            }
            writeln!(f, "stack {}: {}", self.stack, parts.join(", "))?;
        }
        let width = self
            .ops
            .iter()
            .map(|o| o.name.chars().count())
            .max()
            .unwrap_or(0);
        for o in &self.ops {
            let action = match o.action {
                Create => "create",
                Remove => "remove",
                Start => "start",
                Stop => "stop",
                Update => "update",
                Keep => "keep",
            };
            let target = match o.target {
                Network => "network",
                Container => "container",
            };
            let cause = match (o.why, o.action) {
                (Why::Recreate, _) => format!("recreate: {}", o.cause),
                (Why::Restart, _) => format!("restart: {}", o.cause),
                _ => o.cause.clone(),
            };
            writeln!(f, "  {action:<7} {target:<10} {:<width$}  {cause}", o.name)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(cpu_list(&[0, 1, 2, 5]), "0-2,5");
        assert_eq!(cpu_list(&[3]), "3");
    }
}
