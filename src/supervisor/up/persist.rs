//! What survives a supervisor crash: the state file, written atomically
//! when it changes, and adoption of the containers it names.

use super::*;

use crate::host::state_file::{self, SavedContainer, StateFile};

impl Supervisor {
    /// For `up -d`: once every container runs (or completed), or one failed.
    pub(super) fn report_ready(&mut self) {
        if self.ready.is_none() {
            return;
        }
        let mut failed = None;
        let mut pending = false;
        for (name, l) in &self.live {
            match &l.state {
                State::Running => pending |= l.health == Some(Health::Starting),
                State::Exited(Exit::Code(0)) => {}
                State::Failed(why) => failed = Some(format!("{name}: {why}")),
                State::Exited(e) if l.spec.config.restart == config::RestartPolicy::No => {
                    let why = l.last_error.clone().unwrap_or_else(|| e.to_string());
                    failed = Some(format!("{name}: {why}"));
                }
                _ => pending = true,
            }
        }
        let msg = match (failed, pending) {
            (Some(f), _) => format!("failed: {f}"),
            (None, false) => "ok".to_string(),
            (None, true) => return,
        };
        if let Some(ReadyPipe(fd)) = self.ready.take() {
            let _ = nix::unistd::write(&fd, msg.as_bytes());
        }
    }

    pub(super) fn state_path(&self) -> PathBuf {
        StateFile::path(&self.opts.state_dir, &self.stack())
    }

    /// Saves the live state when it changed.
    pub(super) fn save_state(&mut self) {
        let saved = StateFile {
            stack: self.stack(),
            containers: self
                .live
                .iter()
                .map(|(n, l)| {
                    (
                        n.clone(),
                        SavedContainer {
                            ips: l.ips.clone(),
                            pid: l.pid,
                            starttime: l.starttime,
                            record: l.record.clone(),
                            restarts: l.restarts,
                            user_stopped: l.user_stopped,
                            started_at: l.started_at.filter(|_| l.pid.is_some()),
                            layers: if l.pid.is_some() {
                                l.layers.clone()
                            } else {
                                Vec::new()
                            },
                            failed: match &l.state {
                                State::Failed(why) => Some(why.clone()),
                                _ => None,
                            },
                        },
                    )
                })
                .collect(),
            networks: self.nets.records.clone(),
            published: self.nets.published.clone(),
            placed_in_leaf: self.placed_in_leaf,
            images: {
                let mut v: Vec<String> = self
                    .desired
                    .containers
                    .iter()
                    .filter(|c| {
                        matches!(
                            c.config.image,
                            config::ImageRef::Oci { .. }
                                | config::ImageRef::Tar { .. }
                                | config::ImageRef::Docker { .. }
                                | config::ImageRef::Local { .. }
                        )
                    })
                    .map(|c| c.config.image.to_string())
                    .collect();
                v.sort();
                v.dedup();
                v
            },
        };
        let Ok(text) = saved.to_text() else {
            return;
        };
        if self.last_saved.as_deref() == Some(text.as_str()) {
            return;
        }
        match state_file::write_atomic(&self.state_path(), text.as_bytes()) {
            Ok(()) => self.last_saved = Some(text),
            Err(e) => event(
                &self.stack(),
                Kind::Error,
                format!("cannot save {}: {e}", self.state_path().display()),
            ),
        }
    }

    /// After a crash of a previous supervisor: containers still running as
    /// recorded are adopted as they are; what is stale is cleaned up.
    pub(super) fn adopt(&mut self) {
        let saved = match StateFile::read(&self.opts.state_dir, &self.stack()) {
            Ok(Some(s)) => s,
            Ok(None) => return,
            Err(e) => {
                event(
                    &self.stack(),
                    Kind::Warning,
                    format!(
                        "{}: unreadable ({e}); starting afresh",
                        self.state_path().display()
                    ),
                );
                return;
            }
        };
        let had_networks = !saved.networks.is_empty();
        // Bridges it made are known again, so the first plan keeps, recreates
        // or removes them like any others; one gone meanwhile is made anew.
        for (name, record) in saved.networks {
            let bridge = crate::network::names::bridge(&self.stack(), &name);
            if self.net.link_exists(&bridge) {
                self.nets.records.insert(name, record);
            }
        }
        self.sync_dns();
        // Its nftables table may hold rules the file no longer asks for:
        // the first update replaces or removes it whatever it holds.
        if had_networks {
            self.nets.rules = Some(String::new());
        }
        let mut stopping = Vec::new();
        for (name, sv) in saved.containers {
            let alive = sv
                .pid
                .filter(|p| sv.starttime.is_some_and(|t| self.launcher.alive(*p, t)));
            let spec = self.desired.container(&name).cloned();
            match (alive, spec) {
                (Some(pid), Some(spec)) => {
                    let Ok(mut l) = self.admit(spec) else {
                        continue;
                    };
                    l.pid = Some(pid);
                    l.ips = sv.ips;
                    l.starttime = sv.starttime;
                    l.pidfd = self.launcher.pidfd(pid);
                    l.record = sv.record;
                    l.restarts = sv.restarts;
                    l.user_stopped = sv.user_stopped;
                    l.layers = sv.layers;
                    l.state = State::Running;
                    // Its uptime counts from its real start, not from now.
                    let ago = sv
                        .started_at
                        .zip(crate::time::unix_millis())
                        .map(|(at, now)| Duration::from_millis(now.saturating_sub(at)))
                        .unwrap_or_default();
                    l.started = Instant::now().checked_sub(ago).or(Some(Instant::now()));
                    l.started_at = sv.started_at.or_else(crate::time::unix_millis);
                    l.health = l.spec.config.health.as_ref().map(|_| Health::Starting);
                    if let Some(h) = &l.spec.config.health {
                        self.timers.push(std::cmp::Reverse((
                            Instant::now() + h.interval.0,
                            Timer::HealthCheck(name.clone()),
                        )));
                    }
                    event_with(
                        &self.stack(),
                        Kind::Adopted,
                        Facts::pid(pid),
                        format!("{name}: adopted (pid {pid})"),
                    );
                    if l.user_stopped {
                        // Its stop was under way: it goes on.
                        stopping.push(name.clone());
                    }
                    self.live.insert(name, l);
                }
                (None, Some(spec)) if sv.user_stopped => {
                    // Stopped by a user: it stays stopped (`start` brings it back).
                    let Ok(mut l) = self.admit(spec) else {
                        continue;
                    };
                    l.ips = sv.ips;
                    l.record = sv.record;
                    l.restarts = sv.restarts;
                    l.user_stopped = true;
                    l.state = State::Stopped;
                    event(
                        &self.stack(),
                        Kind::Adopted,
                        format!("{name}: stays stopped (stopped by a user)"),
                    );
                    self.live.insert(name, l);
                }
                (None, Some(spec)) if sv.failed.is_some() => {
                    // Given up on by its restart policy: it stays down
                    // (`start` brings it back), whatever killed the supervisor.
                    let Ok(mut l) = self.admit(spec) else {
                        continue;
                    };
                    let why = sv.failed.unwrap_or_default();
                    l.record = sv.record;
                    l.restarts = sv.restarts;
                    event(
                        &self.stack(),
                        Kind::Adopted,
                        format!("{name}: stays down (failed before this supervisor: {why})"),
                    );
                    l.state = State::Failed(why);
                    self.live.insert(name, l);
                }
                (alive, spec) => {
                    if spec.is_some() && !sv.ips.is_empty() {
                        self.nets.past_ips.insert(name.clone(), sv.ips.clone());
                    }
                    // Dead, or no longer in the file: nothing of it stays.
                    if let Some(pid) = alive {
                        // A container of this stack, recorded with its start time.
                        self.launcher.signal(pid, libc::SIGKILL);
                    }
                    let stack = self.stack();
                    self.nets.ended(&stack, &name, sv.ips.keys());
                    self.launcher.destroy(&name);
                    let _ = std::fs::remove_dir(
                        self.opts
                            .state_dir
                            .join(self.stack())
                            .join("rootfs")
                            .join(&name),
                    );
                    event(
                        &self.stack(),
                        Kind::Adopted,
                        format!("{name}: cleaned up after the previous supervisor"),
                    );
                }
            }
        }
        for name in stopping {
            self.stop(&name);
        }
    }
}
