//! Control requests, answered by the event loop: the same operations the
//! stack file, signals and timers cause, with their outcome sent back.

use super::*;
use crate::control::{ContainerMetrics, ContainerState, ErrorKind, Metrics, Reply};

impl State {
    /// The API's name for it.
    pub(super) fn word(&self) -> ContainerState {
        match self {
            State::Waiting => ContainerState::Waiting,
            State::Pulling => ContainerState::Pulling,
            State::Running => ContainerState::Running,
            State::Backoff(_) => ContainerState::Backoff,
            State::Exited(_) => ContainerState::Exited,
            State::Failed(_) => ContainerState::Failed,
            State::Stopping(_) => ContainerState::Stopping,
            State::Stopped => ContainerState::Stopped,
        }
    }
}

/// When a request is answered.
enum Answer {
    Now(Result<Reply, ControlError>),
    /// Once this container's stop has finished.
    AfterStop(String),
    /// A reload: once its plan is carried out.
    Reload,
    /// An apply: once its generation is committed or rolled back.
    Apply(crate::control::Apply),
}

impl Supervisor {
    fn info(&self, name: &str, l: &Live) -> ContainerInfo {
        let running = l.state == State::Running;
        let usage = if running {
            self.launcher.usage(name)
        } else {
            Default::default()
        };
        ContainerInfo {
            name: name.to_string(),
            image: l.spec.config.image.to_string(),
            ports: l.spec.config.ports.iter().map(|p| p.to_string()).collect(),
            state: l.state.word(),
            pid: l.pid.filter(|_| running),
            restarts: l.restarts,
            health: l.health,
            uptime_seconds: l.started.filter(|_| running).map(|s| s.elapsed().as_secs()),
            ips: l.ips.clone(),
            memory_bytes: usage.memory_bytes,
            cpu_seconds: usage.cpu_seconds,
            pids: usage.pids,
            last_exit: l.last_exit,
            error: match &l.state {
                State::Failed(why) => Some(why.clone()),
                _ => l.last_error.clone(),
            },
            user_stopped: l.user_stopped,
        }
    }

    /// The containers in start order (those not set up yet included).
    fn list(&self) -> Vec<ContainerInfo> {
        self.desired
            .containers
            .iter()
            .map(|c| match self.live.get(&c.name) {
                Some(l) => self.info(&c.name, l),
                None => ContainerInfo {
                    image: c.config.image.to_string(),
                    ports: c.config.ports.iter().map(|p| p.to_string()).collect(),
                    ..ContainerInfo::created(&c.name)
                },
            })
            .collect()
    }

    pub(super) fn one(&self, name: &str) -> Result<Reply, ControlError> {
        Reply::json(&self.info_of(name)?)
    }

    fn info_of(&self, name: &str) -> Result<ContainerInfo, ControlError> {
        self.list()
            .into_iter()
            .find(|i| i.name == name)
            .ok_or_else(|| ControlError::no_container(name))
    }

    /// Answers one request, now or when what it asked for is done. True
    /// when the supervisor is to stop (`down`).
    pub(super) fn on_request(&mut self, r: Request) -> bool {
        let down = matches!(r.command, Command::Down);
        match self.answer(r.command) {
            Answer::Now(answer) => {
                let _ = r.reply.send(answer);
            }
            Answer::AfterStop(name) => self.after_stop.push((name, Then::Reply(r.reply))),
            Answer::Reload => self.reload_for("API", Some(r.reply)),
            Answer::Apply(a) => self.apply(a, r.reply),
        }
        down
    }

    fn known(&self, name: &str) -> Result<(), ControlError> {
        if self.desired.container(name).is_some() {
            Ok(())
        } else {
            Err(ControlError::no_container(name))
        }
    }

    fn answer(&mut self, command: Command) -> Answer {
        let stack = self.stack();
        match command {
            Command::Stop(name) => {
                if let Err(e) = self.known(&name) {
                    return Answer::Now(Err(e));
                }
                event(&stack, Kind::Requested, format!("{name}: stop requested"));
                if self.stop(&name) {
                    // Answered once it has stopped; the loop goes on.
                    Answer::AfterStop(name)
                } else {
                    Answer::Now(self.one(&name))
                }
            }
            Command::Start(name) => {
                if let Err(e) = self.known(&name) {
                    return Answer::Now(Err(e));
                }
                let running = self
                    .live
                    .get(&name)
                    .is_some_and(|l| l.state == State::Running);
                if running {
                    return Answer::Now(self.one(&name));
                }
                event(&stack, Kind::Requested, format!("{name}: start requested"));
                // One being stopped starts once it has ended.
                match self.when_stopped(&name, Then::StartByUser) {
                    Ok(()) => Answer::AfterStop(name),
                    Err(_) => {
                        self.start_by_user(&name);
                        Answer::Now(self.one(&name))
                    }
                }
            }
            Command::Restart(name) => {
                if let Err(e) = self.known(&name) {
                    return Answer::Now(Err(e));
                }
                event(
                    &stack,
                    Kind::Requested,
                    format!("{name}: restart requested"),
                );
                if self.stop(&name) {
                    // Started, and answered, once it has ended.
                    self.after_stop.push((name.clone(), Then::StartByUser));
                    Answer::AfterStop(name)
                } else {
                    self.start_by_user(&name);
                    Answer::Now(self.one(&name))
                }
            }
            Command::Reload => Answer::Reload,
            Command::Apply(a) => Answer::Apply(a),
            command => Answer::Now(self.answer_now(command)),
        }
    }

    /// The requests answered at once.
    fn answer_now(&mut self, command: Command) -> Result<Reply, ControlError> {
        let stack = self.stack();
        match command {
            Command::Health => {
                let running = self
                    .live
                    .values()
                    .filter(|l| l.state == State::Running)
                    .count();
                Reply::json(&serde_json::json!({
                    "status": "ok",
                    "stack": stack,
                    "pid": std::process::id(),
                    "containers": self.desired.containers.len(),
                    "running": running,
                    "file": self.opts.file,
                }))
            }
            Command::List => Reply::json(&self.list()),
            Command::Inspect(name) => {
                #[derive(serde::Serialize)]
                struct Inspected<'a> {
                    #[serde(flatten)]
                    info: ContainerInfo,
                    spec_hash: &'a str,
                    /// In the stack file's own keys, defaults applied.
                    config: config::render::Value,
                }
                let c = self
                    .desired
                    .container(&name)
                    .ok_or_else(|| ControlError::no_container(&name))?;
                Reply::json(&Inspected {
                    info: self.info_of(&name)?,
                    spec_hash: &c.hash,
                    config: config::render::container(&c.config),
                })
            }
            Command::Stop(_)
            | Command::Start(_)
            | Command::Restart(_)
            | Command::Reload
            | Command::Apply(_) => Err(ControlError::internal("answered elsewhere")),
            Command::Plan(file) => {
                let file = file.unwrap_or_else(|| self.opts.file.clone());
                let running = self.desired.stack.clone();
                let (_, plan) = self.plan_from(&file, |name| {
                    format!(
                        "{} is stack {name}, not the running stack {running}",
                        file.display()
                    )
                })?;
                Reply::json(&serde_json::json!({ "plan": plan.to_string(), "ops": plan }))
            }
            Command::Down => Reply::json(&serde_json::json!({
                "stopping": true,
                "pid": std::process::id(),
                // The stops' events come after this one.
                "events_after": crate::supervisor::events::last_seq(),
            })),
            Command::Metrics => Ok(Reply::Metrics(Box::new(self.metrics()))),
            Command::Exec(e) => self.exec(e),
            Command::Rollback(to) => self.rollback(to),
            Command::Generations => self.generations(),
            Command::Diff(name) => {
                let c = self
                    .desired
                    .container(&name)
                    .ok_or_else(|| ControlError::no_container(&name))?;
                match crate::container::images::prepare(
                    &c.config,
                    &self.opts.data_dir,
                    &self.stack(),
                    &self.opts.insecure_registries,
                    false,
                ) {
                    Ok(Some(fs)) => match &fs.upper {
                        Some((upper, _)) => {
                            Reply::json(&crate::image::diff::diff(upper, &fs.lowers))
                        }
                        None => Err(ControlError::conflict(format!(
                            "{name} is read_only: it has no writable layer"
                        ))),
                    },
                    Ok(None) => Err(ControlError::conflict(format!(
                        "{name} runs {}: only containers of an image from the store (oci:) have a writable layer of their own",
                        c.config.image
                    ))),
                    Err(e) => Err(ControlError::internal(e)),
                }
            }
        }
    }

    /// A user's `start`: clears a `stop`, a failure and the backoff history.
    pub(super) fn start_by_user(&mut self, name: &str) {
        if let Some(l) = self.live.get_mut(name) {
            l.user_stopped = false;
            l.history = History::default();
            l.state = State::Stopped;
        } else if let Some(spec) = self.desired.container(name).cloned() {
            match self.admit(spec) {
                Ok(l) => {
                    self.live.insert(name.to_string(), l);
                }
                Err(e) => {
                    event(
                        &self.stack(),
                        Kind::StartFailed,
                        format!("{name}: cannot be set up: {e}"),
                    );
                    return;
                }
            }
        }
        self.start(name);
    }

    fn exec(&mut self, e: crate::control::Exec) -> Result<Reply, ControlError> {
        self.known(&e.container)?;
        let cache = self.opts.state_dir.join("seccomp");
        let l = self
            .live
            .get(&e.container)
            .filter(|l| l.state == State::Running)
            .ok_or_else(|| ControlError::conflict(format!("{} is not running", e.container)))?;
        let pid = l
            .pid
            .ok_or_else(|| ControlError::conflict(format!("{} is not running", e.container)))?;
        let mut spec = lower::exec_spec(
            &l.spec.config,
            pid,
            e.command,
            self.launcher.procs_files(&e.container),
            Some(&cache),
        )
        .map_err(|err| ControlError::internal(err.to_string()))?;
        spec.env.extend(e.env);
        if let (None, Some(u)) = (&l.spec.config.user, &l.image_user) {
            spec.user = crate::container::lower::image_user(u);
        }
        spec.terminal = e
            .terminal
            .map(|(rows, cols)| crate::sandbox::spec::TermSize { rows, cols });
        let oom_base = self.launcher.oom_kills(&e.container);
        let [i, o, er] = e.stdio;
        let child = self
            .launcher
            .exec(&spec, Stdio3::Fds(i, o, er))
            .map_err(|err| {
                // As docker and podman tell them apart (their exit codes
                // 127 and 126).
                let kind = if err.contains("exec: no such file or directory") {
                    ErrorKind::CommandNotFound
                } else if err.contains("exec: permission denied")
                    || err.contains("exec: exec format error")
                {
                    ErrorKind::CommandNotExecutable
                } else {
                    ErrorKind::ExecFailed
                };
                ControlError::new(kind, err)
            })?;
        self.children.insert(
            child,
            Child::Exec {
                waiter: e.exit,
                container: e.container,
                oom_base,
            },
        );
        Reply::json(&serde_json::json!({ "pid": child }))
    }

    /// The figures of the metrics (`api/` writes their text).
    pub(super) fn metrics(&self) -> Metrics {
        let containers = self
            .list()
            .into_iter()
            .map(|info| {
                let live = self.live.get(&info.name);
                // Kept on the wall clock at the start (and through adoption).
                let started_at = live
                    .filter(|l| l.state == State::Running)
                    .and_then(|l| l.started_at)
                    .map(|ms| ms as f64 / 1000.0);
                ContainerMetrics {
                    oom_kills: live.map(|_| self.launcher.oom_kills(&info.name)),
                    memory_limit: live.and_then(|l| l.spec.limits.memory),
                    started_at,
                    info,
                }
            })
            .collect();
        Metrics {
            stack: self.stack().to_string(),
            containers,
            reloads: self.reloads,
            last_reload_ok: self.last_reload_ok,
        }
    }
}
