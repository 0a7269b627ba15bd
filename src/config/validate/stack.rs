//! The stack as a whole: its name, `[defaults]`, networks and volumes, and
//! the containers read in turn.

use super::*;

impl Cx<'_> {
    pub(super) fn stack(&mut self, mut root: Node<'_>, file: &Path) -> Option<Stack> {
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
            Some(e) => self.parsed(&e.value, "name", |s| {
                if s == crate::config::defaults::ONE_OFF_STACK {
                    return Err(format!(
                        "\"{s}\" is reserved for the one-off containers of `rkstack run`; give the stack another name"
                    ));
                }
                Name::parse(s, Name::STACK_MAX)
            }),
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

        let update = match top.get("update") {
            Some(e) => self.update(&e.value),
            None => Some(defaults::update()),
        };

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
            update: update?,
        })
    }

    fn update(&mut self, v: &Node) -> Option<Update> {
        let t = self.table(v, "update", UPDATE_KEYS)?;
        let d = defaults::update();
        let mut ok = true;
        let mut dur = |cx: &mut Self, key: &str, default: Duration| match t.get(key) {
            Some(e) => {
                let got = cx.duration(&e.value, &format!("update.{key}"));
                ok &= got.is_some();
                got.unwrap_or(default)
            }
            None => default,
        };
        let timeout = dur(self, "timeout", d.timeout);
        let stable = dur(self, "stable", d.stable);
        let rollback = match t.get("rollback") {
            Some(e) => {
                let r = self.choice(
                    &e.value,
                    "update.rollback",
                    &[("auto", Rollback::Auto), ("never", Rollback::Never)],
                );
                ok &= r.is_some();
                r
            }
            None => None,
        };
        let keep = match t.get("keep") {
            Some(e) => self.u32(&e.value, "update.keep", 1, 1000),
            None => Some(d.keep),
        };
        if timeout.0.is_zero() {
            if let Some(e) = t.get("timeout") {
                self.err_key(&e.value.span, "update.timeout", "must be longer than 0s");
            }
            ok = false;
        }
        if !ok {
            return None;
        }
        Some(Update {
            timeout,
            stable,
            rollback,
            keep: keep?,
        })
    }

    pub(super) fn check_names_only(&mut self, t: &Table) {
        for e in &t.entries {
            if let Err(m) = Name::parse(&e.key, Name::MAX) {
                self.err(&e.key_span, format!("invalid key: {m}"));
            }
        }
    }

    pub(super) fn network(&mut self, e: &Entry) -> Option<Network> {
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

    pub(super) fn volume(&mut self, e: &Entry) -> Option<Volume> {
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
}
