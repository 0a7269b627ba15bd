//! The desired state of a stack and the spec hashes that decide what a change
//! needs: a recreate, an update in place, or nothing.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{NetworkRecord, Record};
use crate::config::{Container, Network, NetworkMode, Stack};

/// Bumped whenever the set or encoding of hashed keys changes, so that a
/// supervisor can tell an old record from a changed spec.
pub const HASH_VERSION: &str = "v1";

/// Resource limits that can be written to a running container's cgroup.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    pub memory: Option<u64>,
    pub memory_reservation: Option<u64>,
    pub cpus: Option<f64>,
    pub cpu_weight: Option<u32>,
    pub cpuset: Option<Vec<u32>>,
    pub pids: Option<u64>,
    pub io_weight: Option<u32>,
    pub io_limits: Vec<IoLimit>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoLimit {
    pub device: String,
    pub read_bps: Option<u64>,
    pub write_bps: Option<u64>,
    pub read_iops: Option<u64>,
    pub write_iops: Option<u64>,
}

/// One container as it should run.
#[derive(Debug, Clone, Serialize)]
pub struct ContainerSpec {
    pub name: String,
    pub config: Container,
    pub hash: String,
    #[serde(skip)]
    pub keys: BTreeMap<Cow<'static, str>, u64>,
    pub limits: Limits,
    pub depends_on: Vec<String>,
    /// The dependencies whose restart by a reload restarts it too.
    pub restart_with: Vec<String>,
    pub networks: Vec<String>,
    /// The identity of its image the hash was made with, where known.
    pub image_id: Option<String>,
}

impl ContainerSpec {
    /// The spec once its image is known to be `id` (an image pulled when
    /// the container started): recording the hash it would have had,
    /// a later reload does not take the pull for a change.
    pub fn with_image_id(&self, id: &str) -> ContainerSpec {
        let (hash, keys) = container_keys(&self.config, Some(&id.to_string()));
        ContainerSpec {
            hash,
            keys,
            image_id: Some(id.to_string()),
            ..self.clone()
        }
    }

    pub fn record(&self) -> Record {
        Record {
            hash: self.hash.clone(),
            keys: self.keys.clone(),
            limits: self.limits.clone(),
            depends_on: self.depends_on.clone(),
            networks: self.networks.clone(),
        }
    }
}

/// One network as it should exist.
#[derive(Debug, Clone, Serialize)]
pub struct NetworkSpec {
    pub name: String,
    pub config: Network,
    pub hash: String,
    #[serde(skip)]
    pub keys: BTreeMap<Cow<'static, str>, u64>,
}

impl NetworkSpec {
    pub fn record(&self) -> NetworkRecord {
        NetworkRecord {
            hash: self.hash.clone(),
            keys: self.keys.clone(),
        }
    }
}

/// A stack resolved for execution: containers in start order (every
/// container after its dependencies, ties by name), networks by name.
#[derive(Debug, Clone, Serialize)]
pub struct DesiredState {
    pub stack: String,
    /// Named volumes and their configured host paths (`None`: the default place).
    pub volumes: BTreeMap<String, Option<std::path::PathBuf>>,
    pub networks: BTreeMap<String, NetworkSpec>,
    pub containers: Vec<ContainerSpec>,
    /// How a new version is applied (`[update]`).
    #[serde(skip)]
    pub update: crate::config::Update,
    /// Where each container is in `containers`: a lookup by name costs the
    /// same in a stack of three containers as in one of a thousand.
    #[serde(skip)]
    index: BTreeMap<String, usize>,
}

impl DesiredState {
    pub fn from_stack(stack: Stack) -> DesiredState {
        DesiredState::from_stack_with_images(stack, &BTreeMap::new())
    }

    /// [`DesiredState::from_stack`], with the identity (manifest digest) of
    /// each container's image where it has one: a new image under the same
    /// reference recreates that container.
    pub fn from_stack_with_images(
        stack: Stack,
        image_ids: &BTreeMap<String, String>,
    ) -> DesiredState {
        let networks = stack
            .networks
            .into_values()
            .map(|n| {
                let (hash, keys) = network_keys(&n);
                (
                    n.name.to_string(),
                    NetworkSpec {
                        name: n.name.to_string(),
                        config: n,
                        hash,
                        keys,
                    },
                )
            })
            .collect();
        let mut by_name: BTreeMap<String, ContainerSpec> = stack
            .containers
            .into_values()
            .map(|c| {
                let (hash, keys) = container_keys(&c, image_ids.get(c.name.as_str()));
                (
                    c.name.to_string(),
                    ContainerSpec {
                        name: c.name.to_string(),
                        hash,
                        keys,
                        limits: limits(&c),
                        depends_on: c.depends_on.keys().map(|d| d.to_string()).collect(),
                        restart_with: c.restart_with.iter().map(|d| d.to_string()).collect(),
                        networks: match &c.network {
                            NetworkMode::Networks(a) => {
                                a.iter().map(|a| a.network.to_string()).collect()
                            }
                            _ => Vec::new(),
                        },
                        image_id: image_ids.get(c.name.as_str()).cloned(),
                        config: c,
                    },
                )
            })
            .collect();
        let deps: BTreeMap<String, Vec<String>> = by_name
            .values()
            .map(|c| (c.name.clone(), c.depends_on.clone()))
            .collect();
        let containers: Vec<ContainerSpec> = start_order(&deps)
            .into_iter()
            .filter_map(|n| by_name.remove(&n))
            .collect();
        let index = containers
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i))
            .collect();
        DesiredState {
            index,
            volumes: stack
                .volumes
                .values()
                .map(|v| (v.name.to_string(), v.path.clone()))
                .collect(),
            stack: stack.name.to_string(),
            networks,
            containers,
            update: stack.update,
        }
    }

    pub fn container(&self, name: &str) -> Option<&ContainerSpec> {
        match self.index.get(name).and_then(|&i| self.containers.get(i)) {
            Some(c) if c.name == name => Some(c),
            // `containers` is public: should it ever be reordered, a search.
            _ => self.containers.iter().find(|c| c.name == name),
        }
    }

    /// [`DesiredState::container`], to change it (its name stays).
    pub fn container_mut(&mut self, name: &str) -> Option<&mut ContainerSpec> {
        let i = match self.index.get(name) {
            Some(&i) if self.containers.get(i).is_some_and(|c| c.name == name) => i,
            _ => self.containers.iter().position(|c| c.name == name)?,
        };
        self.containers.get_mut(i)
    }
}

/// Orders nodes so that each comes after what it depends on (ties broken by
/// name). Dependencies on unknown nodes are ignored; nodes left in a cycle
/// (validation refuses those) are appended by name rather than lost.
pub fn start_order(deps: &BTreeMap<String, Vec<String>>) -> Vec<String> {
    let mut waiting: BTreeMap<&str, usize> = BTreeMap::new();
    let mut dependents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (n, ds) in deps {
        let known: BTreeSet<&str> = ds
            .iter()
            .map(String::as_str)
            .filter(|d| deps.contains_key(*d) && *d != n)
            .collect();
        waiting.insert(n, known.len());
        for d in known {
            dependents.entry(d).or_default().push(n);
        }
    }
    let mut ready: BTreeSet<&str> = waiting
        .iter()
        .filter(|(_, c)| **c == 0)
        .map(|(n, _)| *n)
        .collect();
    let mut out = Vec::with_capacity(deps.len());
    while let Some(n) = ready.pop_first() {
        out.push(n.to_string());
        waiting.remove(n);
        for d in dependents.get(n).map(Vec::as_slice).unwrap_or(&[]) {
            if let Some(c) = waiting.get_mut(d) {
                *c -= 1;
                if *c == 0 {
                    ready.insert(d);
                }
            }
        }
    }
    out.extend(waiting.keys().map(|n| n.to_string()));
    out
}

/// Builds a spec hash key by key: the hash is SHA-256 over every key and the
/// canonical JSON of its value; each key also gets a 64-bit fingerprint (FNV-1a,
/// stable across versions) so that a later plan can name what changed.
struct SpecHasher {
    buf: Vec<u8>,
    sha: Sha256,
    keys: BTreeMap<Cow<'static, str>, u64>,
}

impl SpecHasher {
    fn new() -> SpecHasher {
        SpecHasher {
            buf: Vec::with_capacity(256),
            sha: Sha256::new(),
            keys: BTreeMap::new(),
        }
    }

    fn add(&mut self, key: &'static str, value: &impl Serialize) {
        self.buf.clear();
        // Serializing plain data into a Vec cannot fail; an error would only
        // leave the fingerprint of an empty value.
        let _ = serde_json::to_writer(&mut self.buf, value);
        self.sha.update(key.as_bytes());
        self.sha.update([0]);
        self.sha.update(&self.buf);
        self.sha.update([0]);
        self.keys.insert(Cow::Borrowed(key), fnv1a(&self.buf));
    }

    fn finish(self) -> (String, BTreeMap<Cow<'static, str>, u64>) {
        let digest = self.sha.finalize();
        let mut hex = String::with_capacity(HASH_VERSION.len() + 65);
        hex.push_str(HASH_VERSION);
        hex.push(':');
        for b in digest.iter() {
            hex.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
            hex.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
        }
        (hex, self.keys)
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The keys whose change needs the container recreated. Restart policy,
/// backoff, start limit, depends_on, health, stop signal and timeout, logging
/// and the limits of [`Limits`] are deliberately left out: the supervisor
/// applies those without touching the running process.
fn container_keys(
    c: &Container,
    image_id: Option<&String>,
) -> (String, BTreeMap<Cow<'static, str>, u64>) {
    #[derive(Serialize)]
    struct Net<'a> {
        network: &'a str,
        ip: Option<std::net::IpAddr>,
    }
    let s = &c.security;
    let mut h = SpecHasher::new();
    match image_id {
        Some(id) => h.add("image", &format!("{}@{id}", c.image)),
        None => h.add("image", &c.image.to_string()),
    }
    h.add("command", &c.command);
    // Only when set: stacks without it keep the hashes they had.
    if let Some(ep) = &c.entrypoint {
        h.add("entrypoint", ep);
    }
    h.add("env", &c.env);
    h.add("workdir", &c.workdir);
    h.add("user", &c.user);
    h.add("hostname", &c.hostname);
    h.add("read_only", &c.read_only);
    if c.verity.is_some() {
        h.add("verity", &c.verity);
    }
    match &c.network {
        NetworkMode::Loopback => h.add("networks", &"loopback"),
        NetworkMode::Host => h.add("networks", &"host"),
        // Aliases are left out: /etc/hosts is rewritten live.
        NetworkMode::Networks(a) => {
            let nets: Vec<Net<'_>> = a
                .iter()
                .map(|a| Net {
                    network: a.network.as_str(),
                    ip: a.ip,
                })
                .collect();
            h.add("networks", &nets);
        }
    }
    h.add("ports", &c.ports);
    h.add("mounts", &c.mounts);
    h.add("resources.devices", &c.resources.devices);
    h.add("resources.rlimits", &c.resources.rlimits);
    h.add("security.capabilities", &s.capabilities);
    h.add("security.seccomp", &s.seccomp);
    h.add("security.no_new_privileges", &s.no_new_privileges);
    h.add("security.user_namespace", &s.user_namespace);
    h.add("security.masked_paths", &s.masked_paths);
    h.add("security.apparmor", &s.apparmor);
    h.add("security.selinux_label", &s.selinux_label);
    h.finish()
}

fn network_keys(n: &Network) -> (String, BTreeMap<Cow<'static, str>, u64>) {
    let mut h = SpecHasher::new();
    h.add("driver", &n.driver);
    h.add("subnet", &n.subnet);
    h.add("gateway", &n.gateway);
    h.add("nat", &n.nat);
    h.add("internal", &n.internal);
    h.finish()
}

fn limits(c: &Container) -> Limits {
    let r = &c.resources;
    Limits {
        memory: r.memory.map(|b| b.0),
        memory_reservation: r.memory_reservation.map(|b| b.0),
        cpus: r.cpus,
        cpu_weight: r.cpu_weight,
        cpuset: r.cpuset.clone(),
        pids: r.pids,
        io_weight: r.io_weight,
        io_limits: r
            .io_limits
            .iter()
            .map(|l| IoLimit {
                device: l.device.display().to_string(),
                read_bps: l.read_bps.map(|b| b.0),
                write_bps: l.write_bps.map(|b| b.0),
                read_iops: l.read_iops,
                write_iops: l.write_iops,
            })
            .collect(),
    }
}
