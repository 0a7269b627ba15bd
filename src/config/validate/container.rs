//! One container's own keys: command, environment, user, and the sections
//! each has a file for (`image.rs`: the image and its verity; `lifecycle.rs`:
//! restarts, dependencies, health check, logging).

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
}
