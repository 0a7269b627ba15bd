//! A container's life: restart backoff, start limit, dependencies, health
//! check and logging.

use super::*;

impl Cx<'_> {
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
