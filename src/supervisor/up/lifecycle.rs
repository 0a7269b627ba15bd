//! A container's life under `up`: admitted (log, cgroup), started when its
//! dependencies allow, reaped, and sent through its restart policy.

use super::*;

/// An exit as event fields.
pub(super) fn exit_facts(exit: Exit) -> Facts {
    match exit {
        Exit::Code(c) => Facts {
            exit_code: Some(c),
            ..Facts::default()
        },
        Exit::Signal(s) => Facts {
            signal: Some(s),
            ..Facts::default()
        },
        Exit::Oom => Facts {
            signal: Some(libc::SIGKILL),
            oom: true,
            ..Facts::default()
        },
    }
}

pub(super) fn decode(status: i32) -> Exit {
    if libc::WIFEXITED(status) {
        Exit::Code(libc::WEXITSTATUS(status))
    } else {
        Exit::Signal(libc::WTERMSIG(status))
    }
}

/// Applies `c`'s `logging` to its log: rotation, and the journal's copy.
pub(super) fn configure_log(log: &mut Log, stack: &str, c: &crate::config::Container) {
    let journal = (c.logging.driver == crate::config::LogDriver::Journald).then(|| {
        crate::host::journal::Output::new(
            std::path::Path::new(crate::host::journal::SOCKET),
            stack,
            c.name.as_str(),
            &c.image.to_string(),
        )
    });
    log.configure(c.logging.max_size.0, c.logging.max_files, journal);
}

impl Supervisor {
    /// `c` as its image is read: pinned to a rollback's digest, or as it is.
    fn pinned_config(&self, name: &str, c: &crate::config::Container) -> crate::config::Container {
        match self.update.pins.get(name) {
            Some(d) => crate::container::images::pinned(c, d),
            None => c.clone(),
        }
    }

    /// Makes the long-lived parts of a container: its log and cgroup handle.
    pub(super) fn admit(&mut self, spec: ContainerSpec) -> Result<Live, String> {
        let stack = self.stack();
        let c = &spec.config;
        let mut log = Log::open(
            self.opts
                .data_dir
                .join(&stack)
                .join("logs")
                .join(format!("{}.log", c.name)),
            c.logging.max_size.0,
            c.logging.max_files,
        )
        .map_err(|e| format!("log file: {e}"))?;
        configure_log(&mut log, &stack, c);
        self.launcher.admit(c.name.as_str());
        let staging = self
            .opts
            .state_dir
            .join(&stack)
            .join("rootfs")
            .join(c.name.as_str());
        Ok(Live {
            record: spec.record(),
            spec,
            pid: None,
            started: None,
            started_at: None,
            state: State::Stopped,
            ips: BTreeMap::new(),
            oom_base: 0,
            last_error: None,
            last_exit: None,
            image_user: None,
            layers: Vec::new(),
            pidfd: None,
            starttime: None,
            health: None,
            health_failures: 0,
            history: History::default(),
            restarts: 0,
            user_stopped: false,
            pulled: false,
            log,
            staging,
            claim: None,
        })
    }

    pub(super) fn start(&mut self, name: &str) {
        let stack = self.stack();
        let now = Instant::now();
        if self.shutting.is_some() {
            return;
        }
        // One container, at most one instance: whatever asks for a start
        // while one runs (or is being stopped) starts nothing.
        if let Some(pid) = self.live.get(name).and_then(|l| l.pid) {
            event(
                &stack,
                Kind::Warning,
                format!("{name}: not started again: it still runs (pid {pid})"),
            );
            return;
        }
        if let Some(l) = self.live.get(name)
            && let Some(image) = crate::container::images::pull_needed(
                &self.pinned_config(name, &l.spec.config),
                &self.opts.data_dir,
                l.pulled,
            )
        {
            self.pull_for(name, image);
            return;
        }
        let result = self.try_start(name);
        let Some(l) = self.live.get_mut(name) else {
            return;
        };
        l.history.started(now, l.spec.config.start_limit.as_ref());
        match result {
            Ok(pid) => {
                l.pid = Some(pid);
                self.children
                    .insert(pid, Child::Container(name.to_string()));
                l.oom_base = self.launcher.oom_kills(name);
                l.starttime = self.launcher.starttime(pid);
                l.pidfd = None;
                l.started = Some(now);
                l.started_at = crate::time::unix_millis();
                l.state = State::Running;
                l.record = l.spec.record();
                l.health_failures = 0;
                l.health = l.spec.config.health.as_ref().map(|_| Health::Starting);
                // The first check right away: a service that is up in 200 ms
                // is known healthy then, not a second later (see `on_check`).
                let first = l
                    .spec
                    .config
                    .health
                    .as_ref()
                    .map(|h| h.interval.0.min(super::health::FIRST_CHECK));
                event_with(
                    &stack,
                    Kind::Started,
                    Facts::pid(pid),
                    format!("{name}: started (pid {pid})"),
                );
                if let Some(after) = first {
                    self.timers.push(std::cmp::Reverse((
                        now + after,
                        Timer::HealthCheck(name.to_string()),
                    )));
                }
                self.hosts_changed();
                self.start_ready();
            }
            Err(e) => {
                event_with(
                    &stack,
                    Kind::StartFailed,
                    Facts::reason(e.clone()),
                    format!("{name}: failed to start: {e}"),
                );
                l.last_error = Some(format!("failed to start: {e}"));
                // A start that fails is a failed run for the restart policy.
                self.after_exit(name, Exit::Code(127), Duration::ZERO);
            }
        }
    }

    pub(super) fn try_start(&mut self, name: &str) -> Result<i32, String> {
        let opts = self.opts.clone();
        let stack = self.stack();
        let nets = self.network_plan(name)?;
        if let Some(l) = self.live.get_mut(name) {
            l.ips = nets.iter().map(|n| (n.network.clone(), n.ip)).collect();
        }
        let etc = if nets.is_empty() {
            None
        } else {
            Some(self.write_etc(name)?)
        };
        let pinned = self
            .live
            .get(name)
            .map(|l| self.pinned_config(name, &l.spec.config));
        let l = self.live.get_mut(name).ok_or("not known")?;
        let c = l.spec.config.clone();
        // What the image is read as: the pinned digest of a rollback's.
        let image_of = pinned.unwrap_or_else(|| c.clone());
        if c.security.user_namespace == UserNamespace::Auto && l.claim.is_none() {
            l.claim = Some(
                userns::claim(&opts.state_dir).map_err(|e| format!("user namespace range: {e}"))?,
            );
        }
        std::fs::create_dir_all(&l.staging).map_err(|e| format!("{}: {e}", l.staging.display()))?;
        if let Some(cl) = &l.claim {
            let _ = std::os::unix::fs::chown(&l.staging, Some(cl.start), Some(cl.start));
        }
        let image = crate::container::images::prepare(
            &image_of,
            &opts.data_dir,
            &stack,
            &opts.insecure_registries,
            false,
        )?;
        let image_user = image.as_ref().and_then(|i| i.defaults.user.clone());
        let layers: Vec<String> = image
            .iter()
            .flat_map(|i| &i.lowers)
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        // In a user namespace the container's root writes its layer as the
        // range's first id: the layer and overlayfs' work folder are its.
        if let (Some(cl), Some(Some((u, w)))) = (&l.claim, image.as_ref().map(|i| &i.upper)) {
            for d in [u, w] {
                std::os::unix::fs::chown(d, Some(cl.start), Some(cl.start))
                    .map_err(|e| format!("{}: {e}", d.display()))?;
            }
        }
        let manifest = image.as_ref().map(|i| i.manifest.clone());
        // A pulled image's identity: recorded as if the plan had known it,
        // so the next reload does not take the pull for a change.
        if let (config::ImageRef::Docker { .. }, Some(i)) = (&c.image, &image)
            && l.spec.image_id.as_deref() != Some(i.manifest.as_str())
        {
            l.spec = l.spec.with_image_id(&i.manifest);
            if let Some(d) = self.desired.container_mut(name) {
                *d = d.with_image_id(&i.manifest);
            }
        }
        let paths = Paths {
            image,
            data_dir: opts.data_dir.clone(),
            stack: stack.clone(),
            volume_paths: self
                .desired
                .volumes
                .iter()
                .filter_map(|(n, p)| p.clone().map(|p| (n.clone(), p)))
                .collect(),
        };
        for m in &c.mounts {
            if let config::Mount::Volume { source, .. } = m {
                let dir = paths.volume(source.as_str());
                std::fs::create_dir_all(&dir)
                    .map_err(|e| format!("volume {source}: {}: {e}", dir.display()))?;
            }
        }
        let l = self.live.get_mut(name).ok_or("not known")?;
        l.image_user = image_user;
        l.layers = layers;
        let limits = lower::cgroup_limits(&c).map_err(|e| e.to_string())?;
        let devices = lower::device_rules(&c).map_err(|e| e.to_string())?;
        let spec = lower::sandbox_spec(
            &c,
            &paths,
            &l.staging,
            l.claim.as_ref().map(|cl| (cl.start, cl.count)),
            self.launcher.procs_files(name),
            Some(&opts.state_dir.join("seccomp")),
        )
        .map_err(|e| e.to_string())?;
        for w in lower::warnings(&c) {
            event(&stack, Kind::Warning, w);
        }
        let mut spec = spec;
        if let Some((hosts, resolv)) = etc {
            for (source, target) in [(hosts, "/etc/hosts"), (resolv, "/etc/resolv.conf")] {
                spec.mounts.push(crate::sandbox::spec::MountSpec::Bind {
                    source,
                    target: PathBuf::from(target),
                    read_only: true,
                });
            }
        }
        let null = std::fs::File::open("/dev/null").map_err(|e| e.to_string())?;
        let (out, err) = l.log.writers().map_err(|e| format!("log pipes: {e}"))?;
        let stdio = Stdio3::Fds(OwnedFd::from(null), out, err);
        // Its network is set up after its namespaces exist, before it runs.
        let mut attach = |pid: i32| -> Result<(), String> {
            for n in &nets {
                self.net
                    .attach(&crate::network::Attach {
                        pid,
                        bridge: &n.bridge,
                        host_if: &n.host_if,
                        inside: &n.inside,
                        addr: n.ip,
                        prefix: n.prefix,
                        gateway: n.gateway,
                        bridge_ip: n.bridge_ip,
                    })
                    .map_err(|e| format!("network {}: {e}", n.network))?;
            }
            Ok(())
        };
        let started = self.launcher.start(crate::container::Start {
            name,
            limits: &limits,
            devices: &devices,
            spec,
            stdio,
            attach: (!nets.is_empty()).then_some(&mut attach),
        })?;
        // One container, one instance: whatever was in its cgroup was
        // started by a supervisor that died before it could record it (no
        // record, no adoption); it was ended before the new one started.
        if let Some(m) = manifest {
            self.note_image(name, &m);
        }
        if started.ended_unrecorded {
            event(
                &stack,
                Kind::Warning,
                format!("{name}: ended an unrecorded instance left by the previous supervisor"),
            );
        }
        Ok(started.pid)
    }

    /// Reaps every child that ended; containers go through their policy.
    pub(super) fn reap(&mut self) {
        loop {
            let mut status = 0;
            // libc's waitpid, not nix's: nix turns the status into a
            // `Signal`, which cannot name a real-time signal, so a child
            // killed by one would be reaped and reported as an error —
            // its end lost (docs/design.md).
            // SAFETY: status is valid for writes.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                return;
            }
            self.child_exited(pid, status);
        }
    }

    /// A child of ours ended with wait status `status`: a health check, an
    /// exec, a pull or a container (its restart policy decides then).
    pub(super) fn child_exited(&mut self, pid: i32, status: i32) {
        let name = match self.children.remove(pid) {
            Some(Child::Check(name)) => return self.on_check(&name, decode(status)),
            Some(Child::Exec {
                waiter,
                container,
                oom_base,
            }) => {
                if decode(status) == Exit::Signal(libc::SIGKILL)
                    && self.launcher.oom_kills(&container) > oom_base
                {
                    // Its exit status alone (137) would not say why.
                    event_with(
                        &self.stack(),
                        Kind::Warning,
                        Facts {
                            oom: true,
                            signal: Some(libc::SIGKILL),
                            ..Facts::pid(pid)
                        },
                        format!(
                            "{container}: exec (pid {pid}) killed by the OOM killer: the container is at its memory limit"
                        ),
                    );
                }
                let _ = waiter.send(status);
                return;
            }
            Some(Child::Pull(job)) => return self.on_pull_done(job, decode(status)),
            Some(Child::Receive(job)) => return self.on_received(job, decode(status)),
            Some(Child::Container(name)) => name,
            None => return, // an orphan re-parented to us: reaped, nothing more
        };
        if self.live.get(&name).and_then(|l| l.pid) != Some(pid) {
            return; // a process of a run that ended already
        }
        let exit = decode(status);
        let Some(l) = self.live.get_mut(&name) else {
            return;
        };
        let exit =
            if exit == Exit::Signal(libc::SIGKILL) && self.launcher.oom_kills(&name) > l.oom_base {
                Exit::Oom
            } else {
                exit
            };
        let ran = l.started.map(|s| s.elapsed()).unwrap_or_default();
        l.pid = None;
        self.after_exit(&name, exit, ran);
    }

    pub(super) fn after_exit(&mut self, name: &str, exit: Exit, ran: Duration) {
        if self
            .live
            .get(name)
            .is_some_and(|l| matches!(l.state, State::Stopping(_)))
        {
            // The end of a stop, not a failure: no restart policy.
            self.finish_stop(name, StopEnd::Exited(exit));
            return;
        }
        let stack = self.stack();
        let now = Instant::now();
        let Some(l) = self.live.get_mut(name) else {
            return;
        };
        l.health = None;
        l.last_exit = Some(exit);
        // Whatever it left in its cgroup goes with it; the cgroup itself is
        // kept for the next run (making one costs more than the restart).
        self.launcher.kill_leftovers(name);
        let ended = if exit == Exit::Code(0) {
            Ended::Success
        } else {
            Ended::Failure
        };
        let c = &l.spec.config;
        let d = restart::decide(
            &restart::Policy::of(c),
            ended,
            ran,
            l.user_stopped,
            &mut l.history,
            now,
        );
        let how = exit.to_string();
        let facts = exit_facts(exit);
        match d {
            Decision::Restart(after) => {
                l.restarts += 1;
                l.state = State::Backoff(now + after);
                event_with(
                    &stack,
                    Kind::Restarting,
                    Facts {
                        after_ms: Some(after.as_millis() as u64),
                        ..facts
                    },
                    format!("{name}: {how}; restarting in {} ms", after.as_millis()),
                );
                self.timers.push(std::cmp::Reverse((
                    now + after,
                    Timer::Restart(name.to_string()),
                )));
            }
            Decision::Stay => {
                l.state = State::Exited(exit);
                event_with(&stack, Kind::Exited, facts, format!("{name}: {how}"));
            }
            Decision::GiveUp(why) => {
                l.state = State::Failed(format!("{how}; {why}"));
                event_with(
                    &stack,
                    Kind::Failed,
                    Facts {
                        reason: Some(why.clone()),
                        ..facts
                    },
                    format!("{name}: failed: {how}; {why}; it stays down"),
                );
            }
        }
        self.hosts_changed();
        // A dependency that completed may let others start.
        self.start_ready();
    }

    /// Whether every dependency of `name` meets its condition.
    pub(super) fn deps_ready(&self, name: &str) -> Result<(), String> {
        let Some(l) = self.live.get(name) else {
            return Err("not known".into());
        };
        for (dep, cond) in &l.spec.config.depends_on {
            let d = self.live.get(dep.as_str());
            let ok = match cond {
                config::Condition::Started => d.is_some_and(|d| d.state == State::Running),
                config::Condition::Healthy => d.is_some_and(|d| {
                    d.state == State::Running && d.health == Some(Health::Healthy)
                }),
                config::Condition::Completed => {
                    d.is_some_and(|d| d.state == State::Exited(Exit::Code(0)))
                }
            };
            if !ok {
                let c = match cond {
                    config::Condition::Started => "started",
                    config::Condition::Healthy => "healthy",
                    config::Condition::Completed => "completed",
                };
                return Err(format!("{dep} ({c})"));
            }
        }
        Ok(())
    }

    pub(super) fn start_when_ready(&mut self, name: &str) {
        match self.deps_ready(name) {
            Ok(()) => self.start(name),
            Err(waiting) => {
                if let Some(l) = self.live.get_mut(name) {
                    l.state = State::Waiting;
                }
                event(
                    &self.stack(),
                    Kind::Waiting,
                    format!("{name}: waiting for {waiting}"),
                );
            }
        }
    }

    /// Container names in start order (dependencies first).
    pub(super) fn start_order(&self) -> Vec<String> {
        self.desired
            .containers
            .iter()
            .map(|c| c.name.clone())
            .collect()
    }

    /// Starts, in dependency order, the waiting containers whose
    /// dependencies are now met.
    pub(super) fn start_ready(&mut self) {
        if self.in_start_ready {
            self.ready_again = true;
            return;
        }
        self.in_start_ready = true;
        // Rounds until one starts nothing: each start leaves `Waiting`, so
        // there are at most as many rounds as waiting containers.
        loop {
            self.ready_again = false;
            for name in self.start_order() {
                let waiting = self
                    .live
                    .get(&name)
                    .is_some_and(|l| l.state == State::Waiting);
                if waiting && self.deps_ready(&name).is_ok() {
                    self.start(&name);
                }
            }
            if !self.ready_again {
                break;
            }
        }
        self.in_start_ready = false;
    }
}
