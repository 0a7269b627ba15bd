//! Turns the spanned TOML tree into a [`Stack`], collecting every problem with
//! its location instead of stopping at the first.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::limits;
use super::stack::*;
use super::tree::{Entry, Kind, Node, Span, Table};
use super::types::{self, ByteSize, CapName, Cidr, Duration, Name, PortSpec, Signal, did_you_mean};

/// A problem found in the file, at a byte span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub span: Span,
    pub message: String,
}

const TOP_KEYS: &[&str] = &["name", "defaults", "networks", "volumes", "containers"];
const CONTAINER_KEYS: &[&str] = &[
    "image",
    "pull_policy",
    "command",
    "env",
    "workdir",
    "user",
    "hostname",
    "restart",
    "restart_backoff",
    "start_limit",
    "depends_on",
    "stop_signal",
    "stop_timeout",
    "read_only",
    "networks",
    "ports",
    "mounts",
    "resources",
    "security",
    "health",
    "logging",
    "verity",
];
const VERITY_KEYS: &[&str] = &["root_hash", "hash_file"];
const NETWORK_KEYS: &[&str] = &["driver", "subnet", "gateway", "nat", "internal"];
const VOLUME_KEYS: &[&str] = &["path"];
const RESOURCE_KEYS: &[&str] = &[
    "memory",
    "memory_reservation",
    "cpus",
    "cpu_weight",
    "cpuset",
    "pids",
    "io_weight",
    "io_limits",
    "devices",
    "rlimits",
];
const SECURITY_KEYS: &[&str] = &[
    "capabilities",
    "seccomp",
    "no_new_privileges",
    "user_namespace",
    "masked_paths",
    "apparmor",
    "selinux_label",
];
const HEALTH_KEYS: &[&str] = &["command", "interval", "timeout", "retries", "start_period"];
const LOGGING_KEYS: &[&str] = &["max_size", "max_files"];
const BACKOFF_KEYS: &[&str] = &["initial", "max", "reset_after"];
const START_LIMIT_KEYS: &[&str] = &["burst", "interval"];
const MOUNT_KEYS: &[&str] = &["type", "source", "target", "read_only", "size", "mode"];
const IO_LIMIT_KEYS: &[&str] = &["device", "read_bps", "write_bps", "read_iops", "write_iops"];
const DEVICE_KEYS: &[&str] = &["path", "access"];
const CAP_KEYS: &[&str] = &["drop", "add"];
const ATTACH_KEYS: &[&str] = &["ip", "aliases"];
const USERNS_KEYS: &[&str] = &["uid", "gid"];
const RLIMIT_KEYS: &[&str] = &["soft", "hard"];

/// Where the spans of cross-referenced values are, for errors found after
/// every container has been read.
#[derive(Default)]
struct Spans {
    key: Span,
    depends_on: BTreeMap<Name, Span>,
    /// Per attachment: the network name's span and the ip's span.
    networks: Vec<(Span, Option<Span>)>,
    /// Per alias, per attachment.
    aliases: Vec<Vec<Span>>,
    ports: Vec<Span>,
    mount_sources: Vec<Span>,
    health_key: Option<Span>,
}

struct Cx<'a> {
    problems: Vec<Problem>,
    base: &'a Path,
    /// Byte range of the `[defaults]` table: problems inside it are named
    /// `defaults.KEY` rather than after the container they were merged into.
    defaults_extent: Option<Span>,
    /// `containers.NAME.` while a container is read.
    prefix: String,
}

/// Validates a parsed document. `base` is the stack file's folder (relative
/// host paths are taken from it).
pub fn validate(root: Node<'_>, file: &Path, base: &Path) -> Result<Stack, Vec<Problem>> {
    let mut cx = Cx {
        problems: Vec::new(),
        base,
        defaults_extent: None,
        prefix: String::new(),
    };
    let stack = cx.stack(root, file);
    let mut problems = cx.problems;
    problems.sort_by(|a, b| (a.span.start, &a.message).cmp(&(b.span.start, &b.message)));
    problems.dedup();
    match stack {
        Some(s) if problems.is_empty() => Ok(s),
        _ => Err(problems),
    }
}

fn extent(node: &Node) -> Span {
    let mut s = node.span.clone();
    let mut widen = |o: &Span| {
        s.start = s.start.min(o.start);
        s.end = s.end.max(o.end);
    };
    match &node.kind {
        Kind::Table(t) => {
            for e in &t.entries {
                widen(&e.key_span);
                widen(&extent(&e.value));
            }
        }
        Kind::Array(items) => {
            for i in items {
                widen(&extent(i));
            }
        }
        _ => {}
    }
    s
}

impl Cx<'_> {
    fn err(&mut self, span: &Span, message: impl Into<String>) {
        self.problems.push(Problem {
            span: span.clone(),
            message: message.into(),
        });
    }

    /// The dotted name of a key of the current container (or of `[defaults]`).
    fn path(&self, span: &Span, key: &str) -> String {
        match &self.defaults_extent {
            Some(d) if !self.prefix.is_empty() && d.start <= span.start && span.end <= d.end => {
                format!("defaults.{key}")
            }
            _ => format!("{}{key}", self.prefix),
        }
    }

    fn err_key(&mut self, span: &Span, key: &str, msg: impl std::fmt::Display) {
        let p = self.path(span, key);
        self.err(span, format!("{p}: {msg}"));
    }

    fn type_err(&mut self, node: &Node, key: &str, expected: &str) {
        let found = node.kind.type_name();
        self.err_key(
            &node.span,
            key,
            format!("expected {expected}, found {found}"),
        );
    }

    /// Reports keys not in `known` and returns the table.
    fn table<'n, 'a>(
        &mut self,
        node: &'n Node<'a>,
        key: &str,
        known: &[&str],
    ) -> Option<&'n Table<'a>> {
        match &node.kind {
            Kind::Table(t) => {
                for e in &t.entries {
                    if !known.contains(&e.key.as_ref()) {
                        let hint = did_you_mean(&e.key, known.iter().copied());
                        let full = if key.is_empty() {
                            e.key.to_string()
                        } else {
                            format!("{key}.{}", e.key)
                        };
                        let p = self.path(&e.key_span, &full);
                        self.err(&e.key_span, format!("unknown key \"{p}\"{hint}"));
                    }
                }
                Some(t)
            }
            _ => {
                self.type_err(node, key, "a table");
                None
            }
        }
    }

    /// A table whose keys are names chosen by the user (containers, networks, ...).
    fn map<'n, 'a>(&mut self, node: &'n Node<'a>, key: &str) -> Option<&'n Table<'a>> {
        match &node.kind {
            Kind::Table(t) => Some(t),
            _ => {
                self.type_err(node, key, "a table");
                None
            }
        }
    }

    fn str<'n>(&mut self, node: &'n Node<'_>, key: &str) -> Option<&'n str> {
        match &node.kind {
            Kind::Str(s) => Some(s),
            _ => {
                self.type_err(node, key, "a string");
                None
            }
        }
    }

    fn bool(&mut self, node: &Node, key: &str) -> Option<bool> {
        match node.kind {
            Kind::Bool(b) => Some(b),
            _ => {
                self.type_err(node, key, "true or false");
                None
            }
        }
    }

    fn int(&mut self, node: &Node, key: &str, min: i64, max: i64) -> Option<i64> {
        match node.kind {
            Kind::Int(n) if (min..=max).contains(&n) => Some(n),
            Kind::Int(n) => {
                self.err_key(
                    &node.span,
                    key,
                    format!("{n} is out of range ({min}..={max})"),
                );
                None
            }
            _ => {
                self.type_err(node, key, "an integer");
                None
            }
        }
    }

    fn u32(&mut self, node: &Node, key: &str, min: u32, max: u32) -> Option<u32> {
        self.int(node, key, i64::from(min), i64::from(max))
            .and_then(|n| u32::try_from(n).ok())
    }

    fn parsed<T>(
        &mut self,
        node: &Node,
        key: &str,
        f: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        let s = self.str(node, key)?;
        match f(s) {
            Ok(v) => Some(v),
            Err(m) => {
                self.err_key(&node.span, key, m);
                None
            }
        }
    }

    fn duration(&mut self, node: &Node, key: &str) -> Option<Duration> {
        self.parsed(node, key, Duration::parse)
    }

    fn size(&mut self, node: &Node, key: &str) -> Option<ByteSize> {
        match node.kind {
            Kind::Int(n) if n >= 0 => Some(ByteSize(n.unsigned_abs())),
            Kind::Int(_) => {
                self.err_key(&node.span, key, "a size must not be negative");
                None
            }
            Kind::Str(_) => self.parsed(node, key, ByteSize::parse),
            _ => {
                self.type_err(node, key, "a size like \"64M\" or a number of bytes");
                None
            }
        }
    }

    fn choice<T: Copy>(&mut self, node: &Node, key: &str, options: &[(&str, T)]) -> Option<T> {
        let s = self.str(node, key)?;
        if let Some((_, v)) = options.iter().find(|(n, _)| *n == s) {
            return Some(*v);
        }
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        let hint = did_you_mean(s, names.iter().copied());
        self.err_key(
            &node.span,
            key,
            format!("expected one of {}, found \"{s}\"{hint}", names.join(", ")),
        );
        None
    }

    fn strings(&mut self, node: &Node, key: &str) -> Option<Vec<(String, Span)>> {
        match &node.kind {
            Kind::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                let mut ok = true;
                for (i, item) in items.iter().enumerate() {
                    match &item.kind {
                        Kind::Str(s) => out.push((s.to_string(), item.span.clone())),
                        _ => {
                            self.type_err(item, &format!("{key}[{i}]"), "a string");
                            ok = false;
                        }
                    }
                }
                ok.then_some(out)
            }
            _ => {
                self.type_err(node, key, "an array of strings");
                None
            }
        }
    }

    /// A command: an array of strings, or one string split like a shell would.
    fn command(&mut self, node: &Node, key: &str) -> Option<Vec<String>> {
        let argv = match &node.kind {
            Kind::Str(s) => match split_words(s) {
                Ok(v) => v,
                Err(m) => {
                    self.err_key(&node.span, key, m);
                    return None;
                }
            },
            Kind::Array(_) => self
                .strings(node, key)?
                .into_iter()
                .map(|(s, _)| s)
                .collect(),
            _ => {
                self.type_err(node, key, "an array of strings");
                return None;
            }
        };
        if argv.is_empty() || argv[0].is_empty() {
            self.err_key(&node.span, key, "the command must not be empty");
            return None;
        }
        if argv.iter().any(|a| a.contains('\0')) {
            self.err_key(&node.span, key, "the command must not contain NUL bytes");
            return None;
        }
        Some(argv)
    }

    fn container_path(&mut self, node: &Node, key: &str) -> Option<PathBuf> {
        self.parsed(node, key, types::container_path)
    }

    fn host_path(&mut self, node: &Node, key: &str) -> Option<PathBuf> {
        let base = self.base.to_path_buf();
        self.parsed(node, key, |s| types::host_path(s, &base))
    }

    /// A name given as the value (or key) `key` of the current container;
    /// the dotted path is only built when there is a problem to report.
    fn name(&mut self, s: &str, span: &Span, key: &str) -> Option<Name> {
        match Name::parse(s, Name::MAX) {
            Ok(n) => Some(n),
            Err(m) => {
                self.err_key(span, key, m);
                None
            }
        }
    }

    // ----------------------------------------------------------------- stack

    fn stack(&mut self, mut root: Node<'_>, file: &Path) -> Option<Stack> {
        // The containers are taken out of the tree, so that merging
        // [defaults] into each moves its own values instead of copying them.
        let containers_entry = match &mut root.kind {
            Kind::Table(t) => t
                .entries
                .iter()
                .position(|e| e.key == "containers")
                .map(|i| t.entries.remove(i)),
            _ => None,
        };
        let top = self.table(&root, "", TOP_KEYS)?;
        let name = match top.get("name") {
            None => {
                self.err(
                    &(0..0),
                    "missing required key \"name\" (the stack's name, like name = \"demo\")",
                );
                None
            }
            Some(e) => self.parsed(&e.value, "name", |s| Name::parse(s, Name::STACK_MAX)),
        };

        let mut networks = BTreeMap::new();
        if let Some(e) = top.get("networks")
            && let Some(t) = self.map(&e.value, "networks")
        {
            self.check_names_only(t);
            for ne in &t.entries {
                if let Some(n) = self.network(ne) {
                    let subnet_span = match &ne.value.kind {
                        Kind::Table(t) => t.get("subnet").map(|x| x.value.span.clone()),
                        _ => None,
                    };
                    let span = subnet_span.unwrap_or(ne.key_span.clone());
                    networks.insert(n.name.clone(), (n, ne.key_span.clone(), span));
                }
            }
        }

        let mut volumes = BTreeMap::new();
        if let Some(e) = top.get("volumes")
            && let Some(t) = self.map(&e.value, "volumes")
        {
            self.check_names_only(t);
            for ve in &t.entries {
                if let Some(v) = self.volume(ve) {
                    volumes.insert(v.name.clone(), v);
                }
            }
        }

        let defaults = match top.get("defaults") {
            Some(e) => {
                let t = self.table(&e.value, "defaults", CONTAINER_KEYS).cloned();
                if t.is_some() {
                    self.defaults_extent = Some(extent(&e.value));
                }
                t
            }
            None => None,
        };

        // Collected in file order and sorted once: inserting large values one
        // by one into a B-tree moves them around many times.
        let mut containers: Vec<(Name, Container)> = Vec::new();
        let mut spans: Vec<(Name, Spans)> = Vec::new();
        if let Some(e) = containers_entry
            && self.map(&e.value, "containers").is_some()
            && let Kind::Table(t) = e.value.kind
        {
            self.check_names_only(&t);
            for ce in t.entries {
                let Ok(cname) = Name::parse(&ce.key, Name::MAX) else {
                    continue;
                };
                let Kind::Table(mut merged) = ce.value.kind else {
                    self.type_err(&ce.value, &format!("containers.{}", ce.key), "a table");
                    continue;
                };
                if let Some(d) = &defaults {
                    merged.merge_defaults(d);
                }
                self.prefix = format!("containers.{cname}.");
                let node = Node {
                    span: ce.value.span.clone(),
                    kind: Kind::Table(merged),
                };
                let mut sp = Spans {
                    key: ce.key_span.clone(),
                    ..Spans::default()
                };
                if let Some(c) = self.container(&cname, &node, &mut sp) {
                    containers.push((cname.clone(), c));
                }
                spans.push((cname, sp));
                self.prefix.clear();
            }
        }

        let containers: BTreeMap<Name, Container> = containers.into_iter().collect();
        let spans: BTreeMap<Name, Spans> = spans.into_iter().collect();
        self.cross_check(&containers, &spans, &networks, &volumes);
        let networks = networks.into_iter().map(|(k, (n, _, _))| (k, n)).collect();
        Some(Stack {
            name: name?,
            file: file.to_path_buf(),
            networks,
            volumes,
            containers,
        })
    }

    fn check_names_only(&mut self, t: &Table) {
        for e in &t.entries {
            if let Err(m) = Name::parse(&e.key, Name::MAX) {
                self.err(&e.key_span, format!("invalid key: {m}"));
            }
        }
    }

    fn network(&mut self, e: &Entry) -> Option<Network> {
        let key = format!("networks.{}", e.key);
        let name = Name::parse(&e.key, Name::MAX).ok()?;
        if name.as_str() == "host" || name.as_str() == "none" {
            self.err(&e.key_span, format!("\"{name}\" is a reserved network name (networks = \"host\" shares the host's network)"));
            return None;
        }
        let t = self.table(&e.value, &key, NETWORK_KEYS)?;
        let driver = match t.get("driver") {
            Some(d) => self.choice(
                &d.value,
                &format!("{key}.driver"),
                &[("bridge", Driver::Bridge), ("none", Driver::None)],
            )?,
            None => Driver::Bridge,
        };
        let flag = |cx: &mut Self, k: &str| match t.get(k) {
            Some(v) => cx.bool(&v.value, &format!("{key}.{k}")),
            None => Some(false),
        };
        let nat = flag(self, "nat")?;
        let internal = flag(self, "internal")?;
        let subnet = match t.get("subnet") {
            Some(s) => Some(self.parsed(&s.value, &format!("{key}.subnet"), Cidr::parse)?),
            None => None,
        };
        let gateway = match t.get("gateway") {
            Some(g) => Some(self.parsed(&g.value, &format!("{key}.gateway"), |s| {
                s.parse::<IpAddr>()
                    .map_err(|_| format!("{s:?} is not an IP address"))
            })?),
            None => None,
        };
        match driver {
            Driver::Bridge => {
                let Some(subnet) = subnet else {
                    self.err(
                        &e.key_span,
                        format!(
                            "{key}: a bridge network needs a subnet, like subnet = \"10.89.0.0/24\""
                        ),
                    );
                    return None;
                };
                if nat && internal {
                    let sp = t
                        .get("nat")
                        .map(|x| x.value.span.clone())
                        .unwrap_or(e.key_span.clone());
                    self.err(&sp, format!("{key}: nat and internal exclude each other (an internal network has no route out)"));
                }
                let gateway = gateway.unwrap_or_else(|| subnet.first_host());
                if !subnet.is_host(gateway) {
                    let sp = t
                        .get("gateway")
                        .map(|x| x.value.span.clone())
                        .unwrap_or(e.key_span.clone());
                    self.err(
                        &sp,
                        format!(
                            "{key}.gateway: {gateway} is not a usable address of subnet {subnet}"
                        ),
                    );
                    return None;
                }
                Some(Network {
                    name,
                    driver,
                    subnet: Some(subnet),
                    gateway: Some(gateway),
                    nat,
                    internal,
                })
            }
            Driver::None => {
                for k in ["subnet", "gateway", "nat", "internal"] {
                    if let Some(x) = t.get(k) {
                        self.err(
                            &x.key_span,
                            format!("{key}.{k}: only bridge networks take {k}"),
                        );
                    }
                }
                Some(Network {
                    name,
                    driver,
                    subnet: None,
                    gateway: None,
                    nat: false,
                    internal: true,
                })
            }
        }
    }

    fn volume(&mut self, e: &Entry) -> Option<Volume> {
        let key = format!("volumes.{}", e.key);
        let name = Name::parse(&e.key, Name::MAX).ok()?;
        let t = self.table(&e.value, &key, VOLUME_KEYS)?;
        let path = match t.get("path") {
            Some(p) => Some(self.host_path(&p.value, &format!("{key}.path"))?),
            None => None,
        };
        Some(Volume { name, path })
    }

    // ------------------------------------------------------------- container

    fn container(&mut self, name: &Name, node: &Node, sp: &mut Spans) -> Option<Container> {
        let t = self.table(node, "", CONTAINER_KEYS)?;
        let get = |k: &str| t.get(k).map(|e| &e.value);
        let mut ok = true;
        // Each `opt!` reads one optional key; a bad value marks the container
        // invalid but reading goes on, so every problem is reported.
        macro_rules! opt {
            ($key:literal, $f:expr) => {
                match get($key) {
                    Some(v) => match $f(self, v, $key) {
                        Some(x) => Some(x),
                        None => {
                            ok = false;
                            None
                        }
                    },
                    None => None,
                }
            };
        }

        let image = match get("image") {
            Some(v) => {
                let r = self.image(v);
                ok &= r.is_some();
                r
            }
            None => {
                self.err(&sp.key, format!("containers.{name}: missing required key \"image\" (like image = \"host\" or \"dir:/srv/rootfs\")"));
                ok = false;
                None
            }
        };
        let pull_policy = opt!("pull_policy", |cx: &mut Self, v, k| cx.choice(
            v,
            k,
            &[
                ("missing", PullPolicy::Missing),
                ("always", PullPolicy::Always),
                ("never", PullPolicy::Never)
            ]
        ))
        .unwrap_or(PullPolicy::Missing);
        let command = opt!("command", |cx: &mut Self, v, k| cx.command(v, k));
        if let (Some(img), None, None) = (&image, &command, get("command"))
            && !img.has_config()
        {
            self.err(
                &sp.key,
                format!(
                    "containers.{name}: missing \"command\" (image {img} has no default command)"
                ),
            );
            ok = false;
        }
        let env = opt!("env", |cx: &mut Self, v, k| cx.env(v, k)).unwrap_or_default();
        let workdir = opt!("workdir", |cx: &mut Self, v, k| cx.container_path(v, k))
            .unwrap_or_else(|| PathBuf::from("/"));
        let user = opt!("user", |cx: &mut Self, v, k| cx.user(v, k));
        let hostname = opt!("hostname", |cx: &mut Self, v, k| cx.parsed(
            v,
            k,
            types::hostname
        ))
        .unwrap_or_else(|| name.to_string());
        let restart = opt!("restart", |cx: &mut Self, v, k| cx.choice(
            v,
            k,
            &[
                ("no", RestartPolicy::No),
                ("on-failure", RestartPolicy::OnFailure),
                ("always", RestartPolicy::Always),
                ("unless-stopped", RestartPolicy::UnlessStopped)
            ]
        ))
        .unwrap_or(RestartPolicy::No);
        let restart_backoff = opt!("restart_backoff", |cx: &mut Self, v, k| cx.backoff(v, k))
            .unwrap_or_else(defaults::backoff);
        let start_limit = opt!("start_limit", |cx: &mut Self, v, k| cx.start_limit(v, k));
        let depends_on =
            opt!("depends_on", |cx: &mut Self, v, k| cx.depends_on(v, k, sp)).unwrap_or_default();
        let stop_signal = opt!("stop_signal", |cx: &mut Self, v, k| cx.parsed(
            v,
            k,
            Signal::parse
        ))
        .unwrap_or(defaults::STOP_SIGNAL);
        let stop_timeout = opt!("stop_timeout", |cx: &mut Self, v, k| cx.duration(v, k))
            .unwrap_or(Duration::from_secs(defaults::STOP_TIMEOUT_SECS));
        let read_only = opt!("read_only", |cx: &mut Self, v, k| cx.bool(v, k)).unwrap_or(false);
        let network = opt!("networks", |cx: &mut Self, v, k| cx.networks(v, k, sp))
            .unwrap_or(NetworkMode::Loopback);
        let ports = opt!("ports", |cx: &mut Self, v, k| cx.ports(v, k, sp)).unwrap_or_default();
        let mounts = opt!("mounts", |cx: &mut Self, v, k| cx.mounts(v, k, sp)).unwrap_or_default();
        let resources =
            opt!("resources", |cx: &mut Self, v, k| cx.resources(v, k)).unwrap_or_default();
        let security = match get("security") {
            Some(v) => self.security(v, "security"),
            None => Some(default_security()),
        };
        ok &= security.is_some();
        if let Some(h) = t.get("health") {
            sp.health_key = Some(h.key_span.clone());
        }
        let health = opt!("health", |cx: &mut Self, v, k| cx.health(v, k));
        let logging = opt!("logging", |cx: &mut Self, v, k| cx.logging(v, k))
            .unwrap_or_else(defaults::logging);
        let verity = match (get("verity"), &image) {
            (None, _) => None,
            (Some(v), Some(ImageRef::Squashfs { path } | ImageRef::Erofs { path })) => {
                let r = self.verity(v, "verity", path);
                ok &= r.is_some();
                r
            }
            (Some(v), _) => {
                self.err_key(
                    &v.span,
                    "verity",
                    "only squashfs: and erofs: images can be verified with dm-verity",
                );
                ok = false;
                None
            }
        };

        // A container with problems is still returned, filled with defaults
        // where its values were bad, so that the cross-checks can report
        // what else is wrong with it; the problems list decides validity.
        let _ = ok;
        Some(Container {
            name: name.clone(),
            image: image.unwrap_or(ImageRef::Host),
            pull_policy,
            command,
            env,
            workdir,
            user,
            hostname,
            restart,
            restart_backoff,
            start_limit,
            depends_on,
            stop_signal,
            stop_timeout,
            read_only,
            network,
            ports,
            mounts,
            resources,
            security: security.unwrap_or_else(default_security),
            health,
            logging,
            verity,
        })
    }

    fn verity(&mut self, v: &Node, key: &str, image: &Path) -> Option<Verity> {
        let t = self.table(v, key, VERITY_KEYS)?;
        let root_hash = match t.get("root_hash") {
            Some(e) => {
                let h = self.str(&e.value, &format!("{key}.root_hash"))?;
                let hex = h.len() >= 32
                    && h.len() <= 128
                    && h.len() % 2 == 0
                    && h.bytes().all(|b| b.is_ascii_hexdigit());
                if !hex {
                    self.err_key(
                        &e.value.span,
                        &format!("{key}.root_hash"),
                        "a root hash is 32 to 128 hex digits (as `veritysetup format` prints it)",
                    );
                    return None;
                }
                h.to_ascii_lowercase()
            }
            None => {
                self.err_key(&v.span, key, "missing \"root_hash\"");
                return None;
            }
        };
        let hash_file = match t.get("hash_file") {
            Some(e) => self.host_path(&e.value, &format!("{key}.hash_file"))?,
            None => {
                let mut p = image.as_os_str().to_owned();
                p.push(".verity");
                PathBuf::from(p)
            }
        };
        Some(Verity {
            root_hash,
            hash_file,
        })
    }

    fn image(&mut self, v: &Node) -> Option<ImageRef> {
        let s = self.str(v, "image")?;
        let base = self.base.to_path_buf();
        let path = |p: &str| types::host_path(p, &base);
        let r = if s == "host" {
            Ok(ImageRef::Host)
        } else if let Some(p) = s.strip_prefix("dir:") {
            path(p).map(|path| ImageRef::Dir { path })
        } else if let Some(p) = s.strip_prefix("tar:") {
            path(p).map(|path| ImageRef::Tar { path })
        } else if let Some(p) = s.strip_prefix("squashfs:") {
            path(p).map(|path| ImageRef::Squashfs { path })
        } else if let Some(p) = s.strip_prefix("erofs:") {
            path(p).map(|path| ImageRef::Erofs { path })
        } else if let Some(p) = s.strip_prefix("oci:") {
            // oci:LAYOUT_DIR[:TAG]; a tag never holds '/'.
            let (dir, tag) = match p.rsplit_once(':') {
                Some((d, t)) if !t.is_empty() && !t.contains('/') => (d, Some(t.to_string())),
                _ => (p, None),
            };
            path(dir).map(|layout| ImageRef::Oci { layout, tag })
        } else if let Some(r) = s.strip_prefix("docker://") {
            docker_reference(r).map(|reference| ImageRef::Docker { reference })
        } else {
            let close = crate::config::types::did_you_mean(s, ["host"]);
            let hint = if !close.is_empty() {
                close
            } else if s.starts_with('/') || s.starts_with('.') {
                format!("; did you mean \"dir:{s}\"?")
            } else if !s.contains(':') || s.contains('/') {
                format!("; did you mean \"docker://{s}\"?")
            } else {
                String::new()
            };
            Err(format!(
                "unknown image reference {s:?}: expected host, dir:PATH, tar:PATH, oci:DIR[:TAG], docker://REPO[:TAG], squashfs:PATH or erofs:PATH{hint}"
            ))
        };
        match r {
            Ok(i) => Some(i),
            Err(m) => {
                self.err_key(&v.span, "image", m);
                None
            }
        }
    }

    fn env(&mut self, v: &Node, key: &str) -> Option<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        let mut ok = true;
        let mut add = |cx: &mut Self, k: &str, val: String, span: &Span| {
            if k.is_empty() || k.contains('=') || k.contains('\0') || val.contains('\0') {
                cx.err_key(
                    span,
                    key,
                    format!("invalid variable {k:?}: names must be non-empty, without '=' or NUL"),
                );
                false
            } else {
                out.insert(k.to_string(), val);
                true
            }
        };
        match &v.kind {
            Kind::Table(t) => {
                for e in &t.entries {
                    let val = match &e.value.kind {
                        Kind::Str(s) => s.to_string(),
                        Kind::Int(n) => n.to_string(),
                        Kind::Float(x) => x.to_string(),
                        Kind::Bool(b) => b.to_string(),
                        _ => {
                            self.type_err(&e.value, &format!("{key}.{}", e.key), "a string");
                            ok = false;
                            continue;
                        }
                    };
                    ok &= add(self, &e.key, val, &e.key_span);
                }
            }
            Kind::Array(_) => {
                for (s, span) in self.strings(v, key)? {
                    match s.split_once('=') {
                        Some((k, val)) => ok &= add(self, k, val.to_string(), &span),
                        None => {
                            self.err_key(&span, key, format!("{s:?} is not KEY=VALUE"));
                            ok = false;
                        }
                    }
                }
            }
            _ => {
                self.type_err(v, key, "a table of strings");
                return None;
            }
        }
        ok.then_some(out)
    }

    /// A value's own check, its error reported at the value.
    fn checked<T>(&mut self, v: &Node, key: &str, r: Result<T, String>) -> Option<T> {
        r.map_err(|e| self.err_key(&v.span, key, e)).ok()
    }

    fn user(&mut self, v: &Node, key: &str) -> Option<User> {
        if let Kind::Int(_) = v.kind {
            let uid = self.u32(v, key, 0, u32::MAX - 1)?;
            return Some(User::Id { uid, gid: None });
        }
        self.parsed(v, key, limits::user)
    }

    fn backoff(&mut self, v: &Node, key: &str) -> Option<Backoff> {
        let t = self.table(v, key, BACKOFF_KEYS)?;
        let d = defaults::backoff();
        let mut ok = true;
        let mut dur = |cx: &mut Self, k: &str, def: Duration| match t.get(k) {
            Some(e) => cx
                .duration(&e.value, &format!("{key}.{k}"))
                .unwrap_or_else(|| {
                    ok = false;
                    def
                }),
            None => def,
        };
        let initial = dur(self, "initial", d.initial);
        let max = dur(self, "max", d.max);
        let reset_after = dur(self, "reset_after", d.reset_after);
        if !ok {
            return None;
        }
        if initial > max {
            self.err_key(
                &v.span,
                key,
                format!("initial ({initial}) is longer than max ({max})"),
            );
            return None;
        }
        Some(Backoff {
            initial,
            max,
            reset_after,
        })
    }

    fn start_limit(&mut self, v: &Node, key: &str) -> Option<StartLimit> {
        let t = self.table(v, key, START_LIMIT_KEYS)?;
        let burst = match t.get("burst") {
            Some(e) => self.u32(&e.value, &format!("{key}.burst"), 1, 100_000),
            None => {
                self.err_key(
                    &v.span,
                    key,
                    "missing \"burst\" (starts allowed within interval)",
                );
                None
            }
        };
        let interval = match t.get("interval") {
            Some(e) => self.duration(&e.value, &format!("{key}.interval")),
            None => Some(Duration::from_secs(10)),
        };
        Some(StartLimit {
            burst: burst?,
            interval: interval?,
        })
    }

    fn depends_on(
        &mut self,
        v: &Node,
        key: &str,
        sp: &mut Spans,
    ) -> Option<BTreeMap<Name, Condition>> {
        let mut out = BTreeMap::new();
        let mut ok = true;
        match &v.kind {
            Kind::Array(_) => {
                for (s, span) in self.strings(v, key)? {
                    match self.name(&s, &span, key) {
                        Some(n) => {
                            sp.depends_on.insert(n.clone(), span);
                            out.insert(n, Condition::Started);
                        }
                        None => ok = false,
                    }
                }
            }
            Kind::Table(t) => {
                for e in &t.entries {
                    let k = format!("{key}.{}", e.key);
                    let Some(n) = self.name(&e.key, &e.key_span, key) else {
                        ok = false;
                        continue;
                    };
                    // `{ db = "healthy" }` or `{ db = { condition = "healthy" } }` (compose).
                    let cond_node = match &e.value.kind {
                        Kind::Table(ct) => match self
                            .table(&e.value, &k, &["condition"])
                            .and(ct.get("condition"))
                        {
                            Some(c) => &c.value,
                            None => {
                                ok = false;
                                continue;
                            }
                        },
                        _ => &e.value,
                    };
                    let cond = self.choice(
                        cond_node,
                        &k,
                        &[
                            ("started", Condition::Started),
                            ("healthy", Condition::Healthy),
                            ("completed", Condition::Completed),
                            ("service_started", Condition::Started),
                            ("service_healthy", Condition::Healthy),
                            ("service_completed_successfully", Condition::Completed),
                        ],
                    );
                    match cond {
                        Some(c) => {
                            sp.depends_on.insert(n.clone(), e.key_span.clone());
                            out.insert(n, c);
                        }
                        None => ok = false,
                    }
                }
            }
            _ => {
                self.type_err(
                    v,
                    key,
                    "an array of container names or a table of conditions",
                );
                return None;
            }
        }
        ok.then_some(out)
    }

    fn networks(&mut self, v: &Node, key: &str, sp: &mut Spans) -> Option<NetworkMode> {
        let mut out = Vec::new();
        let mut ok = true;
        let host_alone = |cx: &mut Self, span: &Span, n: usize| {
            if n > 1 {
                cx.err_key(
                    span,
                    key,
                    "\"host\" shares the host's network and cannot be combined with other networks",
                );
            }
        };
        match &v.kind {
            Kind::Str(s) if s == "host" => return Some(NetworkMode::Host),
            Kind::Str(s) if s == "none" => return Some(NetworkMode::Loopback),
            Kind::Array(items) => {
                for (s, span) in self.strings(v, key)? {
                    if s == "host" {
                        host_alone(self, &span, items.len());
                        if items.len() == 1 {
                            return Some(NetworkMode::Host);
                        }
                        ok = false;
                        continue;
                    }
                    match self.name(&s, &span, key) {
                        Some(n) => {
                            sp.networks.push((span, None));
                            sp.aliases.push(Vec::new());
                            out.push(Attachment {
                                network: n,
                                ip: None,
                                aliases: Vec::new(),
                            });
                        }
                        None => ok = false,
                    }
                }
            }
            Kind::Table(t) => {
                for e in &t.entries {
                    let k = format!("{key}.{}", e.key);
                    if e.key == "host" {
                        host_alone(self, &e.key_span, t.entries.len());
                        if t.entries.len() == 1 {
                            return Some(NetworkMode::Host);
                        }
                        ok = false;
                        continue;
                    }
                    let Some(n) = self.name(&e.key, &e.key_span, key) else {
                        ok = false;
                        continue;
                    };
                    let Some(at) = self.table(&e.value, &k, ATTACH_KEYS) else {
                        ok = false;
                        continue;
                    };
                    let mut ip = None;
                    let mut ip_span = None;
                    if let Some(ipe) = at.get("ip") {
                        ip = self.parsed(&ipe.value, &format!("{k}.ip"), |s| {
                            s.parse::<IpAddr>()
                                .map_err(|_| format!("{s:?} is not an IP address"))
                        });
                        ok &= ip.is_some();
                        ip_span = Some(ipe.value.span.clone());
                    }
                    let mut aliases = Vec::new();
                    let mut alias_spans = Vec::new();
                    if let Some(ae) = at.get("aliases") {
                        match self.strings(&ae.value, &format!("{k}.aliases")) {
                            Some(list) => {
                                for (a, span) in list {
                                    match types::hostname(&a) {
                                        Ok(a) => {
                                            aliases.push(a);
                                            alias_spans.push(span);
                                        }
                                        Err(m) => {
                                            self.err_key(&span, &format!("{k}.aliases"), m);
                                            ok = false;
                                        }
                                    }
                                }
                            }
                            None => ok = false,
                        }
                    }
                    sp.networks.push((e.key_span.clone(), ip_span));
                    sp.aliases.push(alias_spans);
                    out.push(Attachment {
                        network: n,
                        ip,
                        aliases,
                    });
                }
            }
            _ => {
                self.type_err(v, key, "an array of network names, a table, or \"host\"");
                return None;
            }
        }
        ok.then_some(NetworkMode::Networks(out))
    }

    fn ports(&mut self, v: &Node, key: &str, sp: &mut Spans) -> Option<Vec<PortSpec>> {
        let mut out = Vec::new();
        let mut ok = true;
        for (s, span) in self.strings(v, key)? {
            match PortSpec::parse(&s) {
                Ok(p) => {
                    out.push(p);
                    sp.ports.push(span);
                }
                Err(m) => {
                    self.err_key(&span, key, m);
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    fn mounts(&mut self, v: &Node, key: &str, sp: &mut Spans) -> Option<Vec<Mount>> {
        let Kind::Array(items) = &v.kind else {
            self.type_err(v, key, "an array of mounts");
            return None;
        };
        let mut out: Vec<Mount> = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let k = format!("{key}[{i}]");
            let m = self.mount(item, &k, sp);
            match m {
                Some(m) => {
                    if let Err(e) = limits::mount_target(&m) {
                        self.err_key(&item.span, &k, e);
                        ok = false;
                    }
                    if out.iter().any(|o| o.target() == m.target()) {
                        self.err_key(
                            &item.span,
                            &k,
                            format!("two mounts target {}", m.target().display()),
                        );
                        ok = false;
                    }
                    out.push(m);
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn mount(&mut self, item: &Node, k: &str, sp: &mut Spans) -> Option<Mount> {
        // Short form, as compose: "SOURCE:TARGET[:ro|rw]".
        if let Kind::Str(s) = &item.kind {
            let parts: Vec<&str> = s.split(':').collect();
            let (src, dst, ro) = match parts.as_slice() {
                [a, b] => (*a, *b, false),
                [a, b, "ro"] => (*a, *b, true),
                [a, b, "rw"] => (*a, *b, false),
                _ => {
                    self.err_key(
                        &item.span,
                        k,
                        format!("invalid mount {s:?}: expected SOURCE:TARGET[:ro]"),
                    );
                    return None;
                }
            };
            let target = match types::container_path(dst) {
                Ok(t) => t,
                Err(m) => {
                    self.err_key(&item.span, k, m);
                    return None;
                }
            };
            if src.starts_with('/') || src.starts_with('.') {
                let source = types::host_path(src, self.base).ok()?;
                return Some(Mount::Bind {
                    source,
                    target,
                    read_only: ro,
                });
            }
            let source = self.name(src, &item.span, k)?;
            sp.mount_sources.push(item.span.clone());
            return Some(Mount::Volume {
                source,
                target,
                read_only: ro,
            });
        }
        let t = self.table(item, k, MOUNT_KEYS)?;
        let Some(ty) = t.get("type") else {
            self.err_key(&item.span, k, "missing \"type\" (bind, volume or tmpfs)");
            return None;
        };
        #[derive(Clone, Copy)]
        enum Ty {
            Bind,
            Volume,
            Tmpfs,
        }
        let ty = self.choice(
            &ty.value,
            &format!("{k}.type"),
            &[
                ("bind", Ty::Bind),
                ("volume", Ty::Volume),
                ("tmpfs", Ty::Tmpfs),
            ],
        )?;
        let target = match t.get("target") {
            Some(e) => self.container_path(&e.value, &format!("{k}.target")),
            None => {
                self.err_key(
                    &item.span,
                    k,
                    "missing \"target\" (the path inside the container)",
                );
                None
            }
        };
        let read_only = match t.get("read_only") {
            Some(e) => self.bool(&e.value, &format!("{k}.read_only")),
            None => Some(false),
        };
        let not_for = |cx: &mut Self, keys: &[&str], what: &str| {
            for key in keys {
                if let Some(e) = t.get(key) {
                    cx.err_key(
                        &e.key_span,
                        &format!("{k}.{key}"),
                        format!("{what} mounts take no {key}"),
                    );
                }
            }
        };
        match ty {
            Ty::Bind | Ty::Volume => {
                not_for(
                    self,
                    &["size", "mode"],
                    if matches!(ty, Ty::Bind) {
                        "bind"
                    } else {
                        "volume"
                    },
                );
                let Some(src) = t.get("source") else {
                    self.err_key(&item.span, k, "missing \"source\"");
                    return None;
                };
                if matches!(ty, Ty::Bind) {
                    let source = self.host_path(&src.value, &format!("{k}.source"))?;
                    Some(Mount::Bind {
                        source,
                        target: target?,
                        read_only: read_only?,
                    })
                } else {
                    let s = self.str(&src.value, &format!("{k}.source"))?;
                    let source = self.name(s, &src.value.span, &format!("{k}.source"))?;
                    sp.mount_sources.push(src.value.span.clone());
                    Some(Mount::Volume {
                        source,
                        target: target?,
                        read_only: read_only?,
                    })
                }
            }
            Ty::Tmpfs => {
                not_for(self, &["source", "read_only"], "tmpfs");
                let size = match t.get("size") {
                    Some(e) => Some(self.size(&e.value, &format!("{k}.size"))?),
                    None => None,
                };
                let mode = match t.get("mode") {
                    Some(e) => Some(self.mode(&e.value, &format!("{k}.mode"))?),
                    None => None,
                };
                Some(Mount::Tmpfs {
                    target: target?,
                    size,
                    mode,
                })
            }
        }
    }

    fn mode(&mut self, v: &Node, key: &str) -> Option<u32> {
        match &v.kind {
            Kind::Int(n) if (0..=0o7777).contains(n) => u32::try_from(*n).ok(),
            Kind::Str(s) => match u32::from_str_radix(s.trim_start_matches("0o"), 8) {
                Ok(m) if m <= 0o7777 => Some(m),
                _ => {
                    self.err_key(
                        &v.span,
                        key,
                        format!("invalid mode {s:?}: expected octal like \"1777\""),
                    );
                    None
                }
            },
            _ => {
                self.type_err(v, key, "an octal mode like \"1777\" or 0o1777");
                None
            }
        }
    }

    fn resources(&mut self, v: &Node, key: &str) -> Option<Resources> {
        let t = self.table(v, key, RESOURCE_KEYS)?;
        let mut r = Resources::default();
        let mut ok = true;
        let k = |n: &str| format!("{key}.{n}");
        macro_rules! field {
            ($name:literal, $dst:expr, $e:expr) => {
                if let Some(e) = t.get($name) {
                    let got = $e(self, &e.value, &k($name));
                    ok &= got.is_some();
                    $dst = got;
                }
            };
        }
        field!("memory", r.memory, |cx: &mut Self, v: &Node, k: &str| {
            let s = cx.size(v, k)?;
            cx.checked(v, k, limits::memory(s))
        });
        field!(
            "memory_reservation",
            r.memory_reservation,
            |cx: &mut Self, v, k: &str| cx.size(v, k)
        );
        field!("cpus", r.cpus, |cx: &mut Self, v: &Node, k: &str| {
            let x = match v.kind {
                Kind::Float(x) => x,
                Kind::Int(n) => n as f64,
                _ => {
                    cx.type_err(v, k, "a number of CPUs like 0.5");
                    return None;
                }
            };
            cx.checked(v, k, limits::cpus(x))
        });
        field!("cpu_weight", r.cpu_weight, |cx: &mut Self, v, k: &str| cx
            .u32(v, k, 1, 10_000));
        field!("cpuset", r.cpuset, |cx: &mut Self, v, k: &str| cx.parsed(
            v,
            k,
            types::cpuset
        ));
        field!("pids", r.pids, |cx: &mut Self, v: &Node, k: &str| {
            let n = cx.int(v, k, 0, i64::MAX)?;
            cx.checked(v, k, limits::pids(n.unsigned_abs()))
        });
        field!("io_weight", r.io_weight, |cx: &mut Self, v, k: &str| cx
            .u32(v, k, 1, 10_000));
        if let (Some(m), Some(res)) = (r.memory, r.memory_reservation)
            && res > m
            && let Some(e) = t.get("memory_reservation")
        {
            self.err_key(
                &e.value.span,
                &k("memory_reservation"),
                format!("{res} is above the memory limit {m}"),
            );
            ok = false;
        }
        if let Some(e) = t.get("io_limits") {
            match self.io_limits(&e.value, &k("io_limits")) {
                Some(l) => r.io_limits = l,
                None => ok = false,
            }
        }
        if let Some(e) = t.get("devices") {
            match self.devices(&e.value, &k("devices")) {
                Some(d) => r.devices = d,
                None => ok = false,
            }
        }
        if let Some(e) = t.get("rlimits") {
            match self.rlimits(&e.value, &k("rlimits")) {
                Some(l) => r.rlimits = l,
                None => ok = false,
            }
        }
        ok.then_some(r)
    }

    fn dev_path(&mut self, v: &Node, key: &str) -> Option<PathBuf> {
        let p = self.container_path(v, key)?;
        if !p.starts_with("/dev") || p == Path::new("/dev") {
            self.err_key(
                &v.span,
                key,
                format!("{} is not a device path under /dev", p.display()),
            );
            return None;
        }
        Some(p)
    }

    fn io_limits(&mut self, v: &Node, key: &str) -> Option<Vec<IoLimit>> {
        let Kind::Array(items) = &v.kind else {
            self.type_err(v, key, "an array of tables");
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let k = format!("{key}[{i}]");
            let Some(t) = self.table(item, &k, IO_LIMIT_KEYS) else {
                ok = false;
                continue;
            };
            let device = match t.get("device") {
                Some(e) => self.dev_path(&e.value, &format!("{k}.device")),
                None => {
                    self.err_key(&item.span, &k, "missing \"device\"");
                    None
                }
            };
            let mut l = IoLimit {
                device: PathBuf::new(),
                read_bps: None,
                write_bps: None,
                read_iops: None,
                write_iops: None,
            };
            let mut good = device.is_some();
            for (name, slot) in [
                ("read_bps", &mut l.read_bps),
                ("write_bps", &mut l.write_bps),
            ] {
                if let Some(e) = t.get(name) {
                    *slot = self.size(&e.value, &format!("{k}.{name}"));
                    good &= slot.is_some();
                }
            }
            for (name, slot) in [
                ("read_iops", &mut l.read_iops),
                ("write_iops", &mut l.write_iops),
            ] {
                if let Some(e) = t.get(name) {
                    *slot = self
                        .int(&e.value, &format!("{k}.{name}"), 1, i64::MAX)
                        .map(|n| n.unsigned_abs());
                    good &= slot.is_some();
                }
            }
            if good && let Some(d) = device {
                l.device = d;
                out.push(l);
            } else {
                ok = false;
            }
        }
        ok.then_some(out)
    }

    fn devices(&mut self, v: &Node, key: &str) -> Option<Vec<Device>> {
        let Kind::Array(items) = &v.kind else {
            self.type_err(v, key, "an array of devices");
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let k = format!("{key}[{i}]");
            let dev = if let Kind::Str(_) = item.kind {
                self.dev_path(item, &k).map(|path| Device {
                    path,
                    access: "rwm".into(),
                })
            } else {
                let t = self.table(item, &k, DEVICE_KEYS);
                let path = match t.and_then(|t| t.get("path")) {
                    Some(e) => self.dev_path(&e.value, &format!("{k}.path")),
                    None => {
                        if t.is_some() {
                            self.err_key(&item.span, &k, "missing \"path\"");
                        }
                        None
                    }
                };
                let access = match t.and_then(|t| t.get("access")) {
                    Some(e) => self.parsed(&e.value, &format!("{k}.access"), |s| {
                        if !s.is_empty() && s.chars().all(|c| "rwm".contains(c)) {
                            Ok(['r', 'w', 'm'].iter().filter(|c| s.contains(**c)).collect())
                        } else {
                            Err(format!("invalid access {s:?}: use letters r, w, m"))
                        }
                    }),
                    None => Some("rwm".to_string()),
                };
                match (path, access) {
                    (Some(path), Some(access)) => Some(Device { path, access }),
                    _ => None,
                }
            };
            match dev {
                Some(d) => out.push(d),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn rlimits(&mut self, v: &Node, key: &str) -> Option<BTreeMap<String, Rlimit>> {
        let t = self.table(v, key, RLIMIT_NAMES)?;
        let mut out = BTreeMap::new();
        let mut ok = true;
        let value = |cx: &mut Self, v: &Node, k: &str| -> Option<Option<u64>> {
            match &v.kind {
                Kind::Str(s) if s == "unlimited" || s == "infinity" => Some(None),
                _ => cx.int(v, k, 0, i64::MAX).map(|n| Some(n.unsigned_abs())),
            }
        };
        for e in &t.entries {
            if !RLIMIT_NAMES.contains(&e.key.as_ref()) {
                ok = false;
                continue;
            }
            let k = format!("{key}.{}", e.key);
            let lim = match &e.value.kind {
                Kind::Table(_) => {
                    let Some(lt) = self.table(&e.value, &k, RLIMIT_KEYS) else {
                        ok = false;
                        continue;
                    };
                    let soft = lt
                        .get("soft")
                        .map(|x| value(self, &x.value, &format!("{k}.soft")));
                    let hard = lt
                        .get("hard")
                        .map(|x| value(self, &x.value, &format!("{k}.hard")));
                    match (soft, hard) {
                        (Some(Some(s)), Some(Some(h))) => Some(Rlimit { soft: s, hard: h }),
                        (Some(Some(s)), None) => Some(Rlimit { soft: s, hard: s }),
                        (None, Some(Some(h))) => Some(Rlimit { soft: h, hard: h }),
                        (None, None) => {
                            self.err_key(&e.value.span, &k, "give soft, hard or both");
                            None
                        }
                        _ => None,
                    }
                }
                _ => value(self, &e.value, &k).map(|n| Rlimit { soft: n, hard: n }),
            };
            match lim {
                Some(l) => {
                    let over = match (l.soft, l.hard) {
                        (_, None) => false,
                        (None, Some(_)) => true,
                        (Some(s), Some(h)) => s > h,
                    };
                    if over {
                        self.err_key(&e.value.span, &k, "the soft limit is above the hard limit");
                        ok = false;
                    }
                    out.insert(e.key.to_string(), l);
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn security(&mut self, v: &Node, key: &str) -> Option<Security> {
        let t = self.table(v, key, SECURITY_KEYS)?;
        let mut s = default_security();
        let mut ok = true;
        let k = |n: &str| format!("{key}.{n}");
        if let Some(e) = t.get("capabilities") {
            match self.capabilities(&e.value, &k("capabilities")) {
                Some(c) => s.capabilities = c,
                None => ok = false,
            }
        }
        if let Some(e) = t.get("seccomp") {
            let base = self.base.to_path_buf();
            match self.parsed(&e.value, &k("seccomp"), |x| match x {
                "default" => Ok(Seccomp::Default),
                "unconfined" => Ok(Seccomp::Unconfined),
                p => types::host_path(p, &base).map(Seccomp::Profile),
            }) {
                Some(x) => s.seccomp = x,
                None => ok = false,
            }
        }
        if let Some(e) = t.get("no_new_privileges") {
            match self.bool(&e.value, &k("no_new_privileges")) {
                Some(b) => s.no_new_privileges = b,
                None => ok = false,
            }
        }
        if let Some(e) = t.get("user_namespace") {
            match self.userns(&e.value, &k("user_namespace")) {
                Some(u) => s.user_namespace = u,
                None => ok = false,
            }
        }
        if let Some(e) = t.get("masked_paths") {
            let kk = k("masked_paths");
            match &e.value.kind {
                Kind::Str(x) if x == "default" => {}
                Kind::Array(_) => match self.strings(&e.value, &kk) {
                    Some(list) => {
                        for (p, span) in list {
                            match types::container_path(&p) {
                                Ok(p) => s.masked_paths.push(p),
                                Err(m) => {
                                    self.err_key(&span, &kk, m);
                                    ok = false;
                                }
                            }
                        }
                    }
                    None => ok = false,
                },
                _ => {
                    self.type_err(&e.value, &kk, "\"default\" or an array of paths");
                    ok = false;
                }
            }
        }
        for (name, slot) in [
            ("apparmor", &mut s.apparmor),
            ("selinux_label", &mut s.selinux_label),
        ] {
            if let Some(e) = t.get(name) {
                match self.str(&e.value, &k(name)) {
                    Some(x) if !x.is_empty() && !x.contains('\0') && !x.contains('\n') => {
                        *slot = Some(x.to_string())
                    }
                    Some(_) => {
                        self.err_key(&e.value.span, &k(name), "must be a non-empty single line");
                        ok = false;
                    }
                    None => ok = false,
                }
            }
        }
        ok.then_some(s)
    }

    fn capabilities(&mut self, v: &Node, key: &str) -> Option<Vec<&'static str>> {
        let t = self.table(v, key, CAP_KEYS)?;
        let mut ok = true;
        let mut list = |cx: &mut Self, name: &str| -> Vec<CapName> {
            let Some(e) = t.get(name) else {
                return Vec::new();
            };
            let k = format!("{key}.{name}");
            let Some(items) = cx.strings(&e.value, &k) else {
                ok = false;
                return Vec::new();
            };
            items
                .into_iter()
                .filter_map(|(s, span)| match CapName::parse(&s) {
                    Ok(c) => Some(c),
                    Err(m) => {
                        cx.err_key(&span, &k, m);
                        ok = false;
                        None
                    }
                })
                .collect()
        };
        let drop = list(self, "drop");
        let add = list(self, "add");
        ok.then(|| effective_capabilities(&drop, &add))
    }

    fn userns(&mut self, v: &Node, key: &str) -> Option<UserNamespace> {
        match &v.kind {
            Kind::Str(_) => self
                .choice(v, key, &[("off", 0u8), ("auto", 1u8)])
                .map(|c| {
                    if c == 0 {
                        UserNamespace::Off
                    } else {
                        UserNamespace::Auto
                    }
                }),
            Kind::Table(_) => {
                let t = self.table(v, key, USERNS_KEYS)?;
                let maps = |cx: &mut Self, name: &str| -> Option<Vec<IdMap>> {
                    let k = format!("{key}.{name}");
                    let Some(e) = t.get(name) else {
                        cx.err_key(
                            &v.span,
                            key,
                            format!("missing \"{name}\" map, like {name} = \"0:100000:65536\""),
                        );
                        return None;
                    };
                    let items: Vec<(String, Span)> = match &e.value.kind {
                        Kind::Str(s) => vec![(s.to_string(), e.value.span.clone())],
                        _ => cx.strings(&e.value, &k)?,
                    };
                    let mut out: Vec<IdMap> = Vec::new();
                    for (s, span) in items {
                        match parse_idmap(&s) {
                            Ok(m) => {
                                if out.iter().any(|o| {
                                    ranges_overlap(o.inside, o.count, m.inside, m.count)
                                        || ranges_overlap(o.outside, o.count, m.outside, m.count)
                                }) {
                                    cx.err_key(
                                        &span,
                                        &k,
                                        format!("map {s:?} overlaps another map"),
                                    );
                                    return None;
                                }
                                out.push(m);
                            }
                            Err(msg) => {
                                cx.err_key(&span, &k, msg);
                                return None;
                            }
                        }
                    }
                    if out.is_empty() {
                        cx.err_key(&e.value.span, &k, "at least one map is needed");
                        return None;
                    }
                    Some(out)
                };
                let uid = maps(self, "uid");
                let gid = maps(self, "gid");
                Some(UserNamespace::Maps {
                    uid: uid?,
                    gid: gid?,
                })
            }
            _ => {
                self.type_err(v, key, "\"off\", \"auto\" or a table of uid/gid maps");
                None
            }
        }
    }

    fn health(&mut self, v: &Node, key: &str) -> Option<Health> {
        let t = self.table(v, key, HEALTH_KEYS)?;
        let command = match t.get("command") {
            Some(e) => self.command(&e.value, &format!("{key}.command")),
            None => {
                self.err_key(
                    &v.span,
                    key,
                    "missing \"command\" (run inside the container; exit 0 means healthy)",
                );
                None
            }
        };
        let mut ok = true;
        let mut dur = |cx: &mut Self, name: &str, def: Duration, min_nonzero: bool| -> Duration {
            let Some(e) = t.get(name) else { return def };
            let k = format!("{key}.{name}");
            match cx.duration(&e.value, &k) {
                Some(d) if min_nonzero && d.0.is_zero() => {
                    cx.err_key(&e.value.span, &k, "must be longer than 0s");
                    ok = false;
                    def
                }
                Some(d) => d,
                None => {
                    ok = false;
                    def
                }
            }
        };
        let interval = dur(
            self,
            "interval",
            Duration::from_secs(defaults::HEALTH_INTERVAL_SECS),
            true,
        );
        let timeout = dur(
            self,
            "timeout",
            Duration::from_secs(defaults::HEALTH_TIMEOUT_SECS),
            true,
        );
        let start_period = dur(self, "start_period", Duration::from_secs(0), false);
        let retries = match t.get("retries") {
            Some(e) => self.u32(&e.value, &format!("{key}.retries"), 1, 1000),
            None => Some(defaults::HEALTH_RETRIES),
        };
        if !ok {
            return None;
        }
        Some(Health {
            command: command?,
            interval,
            timeout,
            retries: retries?,
            start_period,
        })
    }

    fn logging(&mut self, v: &Node, key: &str) -> Option<Logging> {
        let t = self.table(v, key, LOGGING_KEYS)?;
        let d = defaults::logging();
        let max_size = match t.get("max_size") {
            Some(e) => self.size(&e.value, &format!("{key}.max_size")).filter(|s| {
                let good = s.0 >= 4096;
                if !good {
                    self.err_key(
                        &e.value.span,
                        &format!("{key}.max_size"),
                        "must be at least 4k",
                    );
                }
                good
            }),
            None => Some(d.max_size),
        };
        let max_files = match t.get("max_files") {
            Some(e) => self.u32(&e.value, &format!("{key}.max_files"), 1, 1000),
            None => Some(d.max_files),
        };
        Some(Logging {
            max_size: max_size?,
            max_files: max_files?,
        })
    }

    // ---------------------------------------------------------- cross checks

    fn cross_check(
        &mut self,
        containers: &BTreeMap<Name, Container>,
        spans: &BTreeMap<Name, Spans>,
        networks: &BTreeMap<Name, (Network, Span, Span)>,
        volumes: &BTreeMap<Name, Volume>,
    ) {
        // Problems here are named by container; those that come from
        // [defaults] still point into it.
        let all_names: Vec<&str> = spans.keys().map(Name::as_str).collect();
        for (name, sp) in spans {
            self.prefix = format!("containers.{name}.");
            for (dep, span) in &sp.depends_on {
                if dep == name {
                    self.err_key(
                        span,
                        "depends_on",
                        format!("container \"{name}\" cannot depend on itself"),
                    );
                } else if !spans.contains_key(dep) {
                    let hint = did_you_mean(dep.as_str(), all_names.iter().copied());
                    self.err_key(
                        span,
                        "depends_on",
                        format!("no container named \"{dep}\"{hint}"),
                    );
                } else if let (Some(c), Some(t)) = (containers.get(name), containers.get(dep))
                    && c.depends_on.get(dep) == Some(&Condition::Healthy)
                    && t.health.is_none()
                {
                    self.err_key(
                        span,
                        "depends_on",
                        format!(
                            "waits for \"{dep}\" to be healthy, but \"{dep}\" has no [health] check"
                        ),
                    );
                }
            }
        }
        self.prefix.clear();
        self.cycles(spans);

        // Networks: references, addresses, names.
        let net_names: Vec<&str> = networks.keys().map(Name::as_str).collect();
        let mut ips: HashMap<(&Name, IpAddr), &Name> = HashMap::new();
        let mut dns: HashMap<(&Name, String), &Name> = HashMap::new();
        for (name, c) in containers {
            let sp = &spans[name];
            self.prefix = format!("containers.{name}.");
            if let NetworkMode::Networks(atts) = &c.network {
                for (i, a) in atts.iter().enumerate() {
                    let (nspan, ipspan) = &sp.networks[i];
                    let Some((net, _, _)) = networks.get(&a.network) else {
                        let hint = did_you_mean(a.network.as_str(), net_names.iter().copied());
                        self.err_key(
                            nspan,
                            "networks",
                            format!("no network named \"{}\" in [networks]{hint}", a.network),
                        );
                        continue;
                    };
                    if atts[..i].iter().any(|b| b.network == a.network) {
                        self.err_key(nspan, "networks", format!("joins \"{}\" twice", a.network));
                    }
                    for (j, alias) in std::iter::once(&name.to_string())
                        .chain(a.aliases.iter())
                        .enumerate()
                    {
                        if let Some(other) = dns.insert((&a.network, alias.clone()), name)
                            && other != name
                        {
                            let span = if j == 0 { nspan } else { &sp.aliases[i][j - 1] };
                            self.err_key(span, "networks", format!("name \"{alias}\" is already used by container \"{other}\" on network \"{}\"", a.network));
                        }
                    }
                    let Some(ip) = a.ip else { continue };
                    let ipspan = ipspan.clone().unwrap_or(nspan.clone());
                    match (net.driver, net.subnet, net.gateway) {
                        (Driver::Bridge, Some(subnet), Some(gw)) => {
                            if !subnet.contains(ip) {
                                self.err_key(
                                    &ipspan,
                                    "networks",
                                    format!(
                                        "{ip} is outside the subnet {subnet} of network \"{}\"",
                                        a.network
                                    ),
                                );
                            } else if !subnet.is_host(ip) {
                                self.err_key(
                                    &ipspan,
                                    "networks",
                                    format!("{ip} is the network or broadcast address of {subnet}"),
                                );
                            } else if ip == gw {
                                self.err_key(
                                    &ipspan,
                                    "networks",
                                    format!("{ip} is the gateway of network \"{}\"", a.network),
                                );
                            } else if let Some(other) = ips.insert((&a.network, ip), name) {
                                self.err_key(
                                    &ipspan,
                                    "networks",
                                    format!("{ip} is already given to container \"{other}\""),
                                );
                            }
                        }
                        _ => self.err_key(
                            &ipspan,
                            "networks",
                            format!(
                                "network \"{}\" has no subnet to take an address from",
                                a.network
                            ),
                        ),
                    }
                }
            }
            // Ports need a bridge to reach.
            if !c.ports.is_empty() {
                let reachable = match &c.network {
                    NetworkMode::Networks(atts) => atts.iter().any(|a| {
                        networks
                            .get(&a.network)
                            .is_some_and(|(n, _, _)| n.driver == Driver::Bridge && !n.internal)
                    }),
                    _ => false,
                };
                if !reachable {
                    let why = match c.network {
                        NetworkMode::Host => {
                            "a container on the host's network uses the host's ports directly"
                        }
                        _ => "ports need a bridge network that is not internal",
                    };
                    self.err_key(&sp.ports[0], "ports", why);
                }
            }
            // Volumes.
            let mut vi = 0;
            for m in &c.mounts {
                if let Mount::Volume { source, .. } = m {
                    let span = sp.mount_sources.get(vi).cloned().unwrap_or(sp.key.clone());
                    vi += 1;
                    if !volumes.contains_key(source) {
                        let hint = did_you_mean(source.as_str(), volumes.keys().map(Name::as_str));
                        self.err_key(
                            &span,
                            "mounts",
                            format!("no volume named \"{source}\" in [volumes]{hint}"),
                        );
                    }
                }
            }
        }
        self.prefix.clear();

        // Host ports published twice.
        let mut seen: HashMap<(Proto, u16), Vec<(PortSpec, &Name)>> = HashMap::new();
        for (name, c) in containers {
            for (i, p) in c.ports.iter().enumerate() {
                let entry = seen.entry((p.proto, p.host_port)).or_default();
                if let Some((_, other)) = entry.iter().find(|(q, _)| q.clashes(p)) {
                    let span = spans[name].ports[i].clone();
                    let msg = format!(
                        "host port {} is already published by container \"{other}\"",
                        p.host_port
                    );
                    self.prefix = format!("containers.{name}.");
                    self.err_key(&span, "ports", msg);
                    self.prefix.clear();
                }
                entry.push((*p, name));
            }
        }

        // Overlapping subnets.
        let nets: Vec<_> = networks.values().collect();
        for (i, (a, _, aspan)) in nets.iter().enumerate() {
            for (b, _, _) in &nets[..i] {
                if let (Some(sa), Some(sb)) = (a.subnet, b.subnet)
                    && sa.overlaps(&sb)
                {
                    self.err(
                        aspan,
                        format!(
                            "networks.{}.subnet: {sa} overlaps {sb} of network \"{}\"",
                            a.name, b.name
                        ),
                    );
                }
            }
        }
    }

    /// Reports each dependency cycle once, naming it: `a → b → a`.
    fn cycles(&mut self, spans: &BTreeMap<Name, Spans>) {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Active,
            Done,
        }
        let mut mark: BTreeMap<&Name, Mark> = spans.keys().map(|k| (k, Mark::New)).collect();
        for start in spans.keys() {
            if mark[start] != Mark::New {
                continue;
            }
            // Iterative DFS keeping the path, so deep chains cannot overflow the stack.
            let mut path: Vec<(&Name, Vec<&Name>)> =
                vec![(start, spans[start].depends_on.keys().collect())];
            mark.insert(start, Mark::Active);
            while let Some((node, pending)) = path.last_mut() {
                let node = *node;
                match pending.pop() {
                    None => {
                        mark.insert(node, Mark::Done);
                        path.pop();
                    }
                    Some(next) => match mark.get(next) {
                        Some(Mark::New) => {
                            mark.insert(next, Mark::Active);
                            path.push((next, spans[next].depends_on.keys().collect()));
                        }
                        Some(Mark::Active) if next != node => {
                            let from = path.iter().position(|(n, _)| *n == next).unwrap_or(0);
                            let mut names: Vec<&str> =
                                path[from..].iter().map(|(n, _)| n.as_str()).collect();
                            names.push(next.as_str());
                            let span = spans[node]
                                .depends_on
                                .get(next)
                                .cloned()
                                .unwrap_or_default();
                            self.err(
                                &span,
                                format!(
                                    "containers.{node}.depends_on: dependency cycle: {}",
                                    names.join(" → ")
                                ),
                            );
                        }
                        _ => {}
                    },
                }
            }
        }
    }
}

use super::types::Proto;

fn default_security() -> Security {
    Security {
        capabilities: defaults::capabilities(),
        seccomp: Seccomp::Default,
        no_new_privileges: true,
        user_namespace: UserNamespace::Off,
        masked_paths: Vec::new(),
        apparmor: None,
        selinux_label: None,
    }
}

fn ranges_overlap(a: u32, n: u32, b: u32, m: u32) -> bool {
    u64::from(a) < u64::from(b) + u64::from(m) && u64::from(b) < u64::from(a) + u64::from(n)
}

fn parse_idmap(s: &str) -> Result<IdMap, String> {
    let bad =
        || format!("invalid id map {s:?}: expected INSIDE:OUTSIDE:COUNT, like \"0:100000:65536\"");
    let parts: Vec<&str> = s.split(':').collect();
    let [a, b, c] = parts.as_slice() else {
        return Err(bad());
    };
    let (inside, outside, count) = (
        a.parse::<u32>().map_err(|_| bad())?,
        b.parse::<u32>().map_err(|_| bad())?,
        c.parse::<u32>().map_err(|_| bad())?,
    );
    if count == 0
        || u64::from(inside) + u64::from(count) > 1 << 32
        || u64::from(outside) + u64::from(count) > 1 << 32
    {
        return Err(format!(
            "invalid id map {s:?}: the range is empty or runs past 2^32"
        ));
    }
    Ok(IdMap {
        inside,
        outside,
        count,
    })
}

fn docker_reference(r: &str) -> Result<String, String> {
    let valid = !r.is_empty()
        && r.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:@".contains(c))
        && !r.starts_with('/')
        && !r.ends_with(['/', ':', '@']);
    let digest_ok = match r.split_once('@') {
        Some((_, d)) => d
            .strip_prefix("sha256:")
            .is_some_and(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit())),
        None => true,
    };
    if valid && digest_ok {
        Ok(r.to_string())
    } else {
        Err(format!(
            "invalid image reference \"docker://{r}\": expected docker://[REGISTRY/]REPO[:TAG|@sha256:DIGEST]"
        ))
    }
}

/// Splits a command string into words, honouring single and double quotes
/// and backslash escapes, as a POSIX shell would (no expansion).
fn split_words(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(x) => cur.push(x),
                        None => return Err(format!("unclosed ' in command {s:?}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(x) => cur.push(x),
                            None => return Err(format!("unclosed \" in command {s:?}")),
                        },
                        Some(x) => cur.push(x),
                        None => return Err(format!("unclosed \" in command {s:?}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(x) = chars.next() {
                    cur.push(x);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words() {
        assert_eq!(
            split_words("a 'b c' \"d\\\"e\" f\\ g").unwrap(),
            ["a", "b c", "d\"e", "f g"]
        );
        assert!(split_words("a 'b").is_err());
        assert!(split_words("").unwrap().is_empty());
    }

    #[test]
    fn idmaps() {
        assert_eq!(parse_idmap("0:100000:65536").unwrap().count, 65536);
        assert!(parse_idmap("0:100000:0").is_err());
        assert!(parse_idmap("0:4294967295:2").is_err());
        assert!(ranges_overlap(0, 10, 5, 10));
        assert!(!ranges_overlap(0, 10, 10, 10));
    }
}
