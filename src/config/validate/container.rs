//! One container's own keys: image, command, environment, user, restart
//! policy, dependencies, health check and logging.

use super::security::default_security;
use super::*;

impl Cx<'_> {
    pub(super) fn container(
        &mut self,
        name: &Name,
        node: &Node,
        sp: &mut Spans,
    ) -> Option<Container> {
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
        let entrypoint = opt!("entrypoint", |cx: &mut Self, v, k| cx.entrypoint(v, k));
        let runs_something = entrypoint.as_ref().is_some_and(|e| !e.is_empty());
        if let (Some(img), None, None, false) = (&image, &command, get("command"), runs_something)
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
        let (depends_on, restart_with) =
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

        let build = opt!("build", |cx: &mut Self, v, k| cx.build(v, k));
        if let (Some(v), Some(i)) = (get("build"), &image)
            && !matches!(i, ImageRef::Local { .. })
        {
            self.err_key(
                &v.span,
                "build",
                "needs image = \"localhost/NAME[:TAG]\": the name the built image is given",
            );
            ok = false;
        }

        // A container with problems is still returned, filled with defaults
        // where its values were bad, so that the cross-checks can report
        // what else is wrong with it; the problems list decides validity.
        let _ = ok;
        Some(Container {
            name: name.clone(),
            image: image.unwrap_or(ImageRef::Host),
            pull_policy,
            command,
            entrypoint,
            env,
            workdir,
            user,
            hostname,
            restart,
            restart_backoff,
            start_limit,
            depends_on,
            restart_with,
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
            build,
        })
    }

    pub(super) fn verity(&mut self, v: &Node, key: &str, image: &Path) -> Option<Verity> {
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

    pub(super) fn image(&mut self, v: &Node) -> Option<ImageRef> {
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
        } else if s.starts_with("localhost/") {
            local_name(s).map(|name| ImageRef::Local { name })
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
                "unknown image reference {s:?}: expected host, dir:PATH, tar:PATH, oci:DIR[:TAG], docker://REPO[:TAG], localhost/NAME[:TAG] (built here), squashfs:PATH or erofs:PATH{hint}"
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

    pub(super) fn env(&mut self, v: &Node, key: &str) -> Option<BTreeMap<String, String>> {
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

    pub(super) fn user(&mut self, v: &Node, key: &str) -> Option<User> {
        if let Kind::Int(_) = v.kind {
            let uid = self.u32(v, key, 0, u32::MAX - 1)?;
            return Some(User::Id { uid, gid: None });
        }
        self.parsed(v, key, limits::user)
    }

    pub(super) fn backoff(&mut self, v: &Node, key: &str) -> Option<Backoff> {
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

    pub(super) fn start_limit(&mut self, v: &Node, key: &str) -> Option<StartLimit> {
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

    pub(super) fn depends_on(
        &mut self,
        v: &Node,
        key: &str,
        sp: &mut Spans,
    ) -> Option<(BTreeMap<Name, Condition>, std::collections::BTreeSet<Name>)> {
        let mut out = BTreeMap::new();
        let mut restart_with = std::collections::BTreeSet::new();
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
                    // `{ db = "healthy" }` or `{ db = { condition = "healthy",
                    // restart = true } }` (compose).
                    let cond_node = match &e.value.kind {
                        Kind::Table(ct) => {
                            if let Some(r) = self
                                .table(&e.value, &k, &["condition", "restart"])
                                .and(ct.get("restart"))
                            {
                                match self.bool(&r.value, &format!("{k}.restart")) {
                                    Some(true) => {
                                        restart_with.insert(n.clone());
                                    }
                                    Some(false) => {}
                                    None => ok = false,
                                }
                            }
                            match ct.get("condition") {
                                Some(c) => &c.value,
                                None => {
                                    self.err_key(
                                        &e.value.span,
                                        &k,
                                        "missing \"condition\" (started, healthy or completed)",
                                    );
                                    ok = false;
                                    continue;
                                }
                            }
                        }
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
        ok.then_some((out, restart_with))
    }

    pub(super) fn health(&mut self, v: &Node, key: &str) -> Option<Health> {
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
        let on_failure = match t.get("on_failure") {
            Some(e) => {
                let a = self.choice(
                    &e.value,
                    &format!("{key}.on_failure"),
                    &[
                        ("none", HealthAction::None),
                        ("restart", HealthAction::Restart),
                        ("stop", HealthAction::Stop),
                        ("kill", HealthAction::Kill),
                    ],
                );
                ok &= a.is_some();
                a
            }
            None => None,
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
            on_failure,
        })
    }

    pub(super) fn logging(&mut self, v: &Node, key: &str) -> Option<Logging> {
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
        let driver = match t.get("driver") {
            Some(e) => self.choice(
                &e.value,
                &format!("{key}.driver"),
                &[("file", LogDriver::File), ("journald", LogDriver::Journald)],
            ),
            None => Some(d.driver),
        };
        Some(Logging {
            driver: driver?,
            max_size: max_size?,
            max_files: max_files?,
        })
    }

    // ---------------------------------------------------------- cross checks
}

pub(super) fn docker_reference(r: &str) -> Result<String, String> {
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

/// `localhost/NAME[:TAG]`, the name of an image built here, with its tag
/// (`latest` when none is given).
pub fn local_name(s: &str) -> Result<String, String> {
    let n = s.strip_prefix("localhost/").unwrap_or(s);
    let slash = n.rfind('/').map_or(0, |i| i + 1);
    let (repo, tag) = match n[slash..].rfind(':') {
        Some(i) => (&n[..slash + i], &n[slash + i + 1..]),
        None => (n, "latest"),
    };
    let repo_ok = !repo.is_empty()
        && repo.split('/').all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
        });
    let tag_ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if repo_ok && tag_ok {
        Ok(format!("localhost/{repo}:{tag}"))
    } else {
        Err(format!(
            "{s:?}: not an image name (lowercase letters, digits, '.', '_', '-' and '/', then an optional :TAG)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::local_name;

    #[test]
    fn built_images_are_named_under_localhost() {
        let ok = |s: &str| local_name(s).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok("app"), "localhost/app:latest");
        assert_eq!(ok("app:1"), "localhost/app:1");
        assert_eq!(ok("localhost/app:1"), "localhost/app:1");
        assert_eq!(ok("team/app"), "localhost/team/app:latest");
        assert_eq!(ok("team/app:1.2-rc_3"), "localhost/team/app:1.2-rc_3");
        for bad in ["App", "app:", ":1", "app/:1", "app:a b", ""] {
            assert!(local_name(bad).is_err(), "{bad}");
        }
    }
}
