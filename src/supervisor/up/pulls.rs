//! Image pulls in the background: a `rkstack pull` child per image, the
//! containers waiting for it started (or failed) when it ends.

use super::*;

/// An image pull in the background: the loop goes on (requests, restarts,
/// reloads) while a `rkstack pull` child fetches it; containers waiting for
/// it are in [`State::Pulling`].
pub(super) struct PullJob {
    /// The image reference as the stack file names it (`docker://...`).
    pub(super) image: String,
    /// The child's output, read for the error when it fails.
    pub(super) log: PathBuf,
    pub(super) since: Instant,
}

impl Supervisor {
    /// Puts `name` in [`State::Pulling`] and pulls `image` in the
    /// background, unless a pull of it is under way already.
    pub(super) fn pull_for(&mut self, name: &str, image: String) {
        let stack = self.stack();
        if let Some(l) = self.live.get_mut(name) {
            l.state = State::Pulling;
        }
        if self.children.pulling(&image) {
            event(
                &stack,
                Kind::Waiting,
                format!("{name}: waiting for the pull of {image}"),
            );
            return;
        }
        let build = self
            .live
            .get(name)
            .and_then(|l| l.spec.config.build.clone());
        match self.spawn_pull(&image, build.as_ref()) {
            Ok((pid, log)) => {
                event(
                    &stack,
                    Kind::Pulling,
                    format!(
                        "{name}: {} {image} (pid {pid})",
                        if build.is_some() {
                            "building"
                        } else {
                            "pulling"
                        }
                    ),
                );
                self.children.insert(
                    pid,
                    Child::Pull(PullJob {
                        image,
                        log,
                        since: Instant::now(),
                    }),
                );
            }
            Err(e) => self.pull_failed(name, &format!("pull {image}: {e}")),
        }
    }

    /// Starts `rkstack pull IMAGE` (this very binary) with the supervisor's
    /// data dir and registries, its output to a file; for an image with a
    /// `build`, `rkstack build` of it.
    pub(super) fn spawn_pull(
        &self,
        image: &str,
        build: Option<&config::Build>,
    ) -> Result<(i32, PathBuf), String> {
        let Some(b) = build else {
            return self.spawn_rkstack(image, &["pull", image]);
        };
        let mut args: Vec<String> = vec![
            "--state-dir".into(),
            self.opts.state_dir.display().to_string(),
            "build".into(),
            "-t".into(),
            image.to_string(),
        ];
        if let Some(f) = &b.file {
            args.extend(["-f".into(), f.display().to_string()]);
        }
        for (k, v) in &b.args {
            args.extend(["--build-arg".into(), format!("{k}={v}")]);
        }
        if let Some(t) = &b.target {
            args.extend(["--target".into(), t.clone()]);
        }
        args.push(b.context.display().to_string());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.spawn_rkstack(image, &args)
    }

    /// Starts this very binary with the supervisor's data dir and
    /// registries and `args`, its output to a file named after `key`.
    pub(super) fn spawn_rkstack(&self, key: &str, args: &[&str]) -> Result<(i32, PathBuf), String> {
        let dir = self.opts.state_dir.join(self.stack()).join("pulls");
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let log = dir.join(format!(
            "{}.log",
            crate::image::store::Digest::of(key.as_bytes()).hex()
        ));
        let out = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("{}: {e}", log.display()))?;
        use std::os::unix::process::CommandExt;
        let mut cmd = std::process::Command::new("/proc/self/exe");
        cmd.arg0("rkstack")
            .arg("--data-dir")
            .arg(&self.opts.data_dir);
        for r in &self.opts.insecure_registries {
            cmd.arg("--insecure-registry").arg(r);
        }
        cmd.args(args)
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err);
        // SAFETY: only sigemptyset and sigprocmask, async-signal-safe,
        // between fork and exec: the loop's blocked signals (they come
        // through its signalfd) must not stay blocked in the pull.
        unsafe {
            cmd.pre_exec(|| {
                use nix::sys::signal::{SigSet, SigmaskHow, sigprocmask};
                sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)?;
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("rkstack {}: {e}", args.first().copied().unwrap_or_default()))?;
        // Reaped by the loop's waitpid (SIGCHLD), like every child.
        let pid = child.id() as i32;
        drop(child);
        Ok((pid, log))
    }

    /// A pull ended: its containers start, or fail as a failed start does
    /// (their restart policy tries again, with a new pull).
    pub(super) fn on_pull_done(&mut self, job: PullJob, exit: Exit) {
        let stack = self.stack();
        let output = std::fs::read_to_string(&job.log).unwrap_or_default();
        let _ = std::fs::remove_file(&job.log);
        let waiting: Vec<String> = self
            .live
            .iter()
            .filter(|(_, l)| {
                l.state == State::Pulling && l.spec.config.image.to_string() == job.image
            })
            .map(|(n, _)| n.clone())
            .collect();
        if exit == Exit::Code(0) {
            event(
                &stack,
                Kind::Pulled,
                format!(
                    "pulled {} in {:.1} s",
                    job.image,
                    job.since.elapsed().as_secs_f64()
                ),
            );
            for name in waiting {
                if let Some(l) = self.live.get_mut(&name) {
                    l.pulled = true;
                }
                self.start(&name);
            }
            self.staged(&job.image, None);
            return;
        }
        let why = last_words(&output, exit);
        event_with(
            &stack,
            Kind::PullFailed,
            Facts::reason(why.clone()),
            format!("pull of {} failed: {why}", job.image),
        );
        for name in waiting {
            self.pull_failed(&name, &format!("pull {}: {why}", job.image));
        }
        self.staged(&job.image, Some(&why));
    }

    pub(super) fn pull_failed(&mut self, name: &str, why: &str) {
        if let Some(l) = self.live.get_mut(name) {
            let now = Instant::now();
            l.history.started(now, l.spec.config.start_limit.as_ref());
            l.last_error = Some(format!("failed to start: {why}"));
        }
        event(
            &self.stack(),
            Kind::StartFailed,
            format!("{name}: failed to start: {why}"),
        );
        self.after_exit(name, Exit::Code(127), Duration::ZERO);
    }

    /// Ends pulls under way (the stack stops); what they fetched stays in
    /// the store's scratch folder, and the next pull resumes it.
    pub(super) fn end_pulls(&mut self) {
        self.end_staging();
        for (pid, job) in self.children.take_pulls() {
            // The pull process we started: ended and reaped (how it ended
            // does not matter here).
            let pid = nix::unistd::Pid::from_raw(pid);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let _ = nix::sys::wait::waitpid(pid, None);
            let _ = std::fs::remove_file(&job.log);
        }
        let _ = std::fs::remove_dir(self.opts.state_dir.join(self.stack()).join("pulls"));
    }
}

/// What a child rkstack said last (its error), or how it ended.
pub(super) fn last_words(output: &str, exit: Exit) -> String {
    output
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|l| l.trim_start_matches("rkstack: ").to_string())
        .unwrap_or_else(|| exit.to_string())
}
