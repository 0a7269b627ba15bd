//! The build's steps, one by one: progress lines (`[3/7] RUN ...`, then
//! `cached` or the time taken), variables expanded as docker expands them
//! (in every instruction but `RUN`, `CMD` and `ENTRYPOINT`, whose shell
//! does it), and for each step that changes files: the cache, or its
//! work in a scratch folder and its layer.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::image::build::containerfile::{self, Cmd, Containerfile, Copy, Instr, Step};
use crate::image::build::ignore::Ignore;
use crate::image::build::image::{Blob, Config, LAYER};
use crate::image::build::{context, layer};
use crate::image::store::Store;

use super::from::State;
use super::{BuildError, Options, cache, copy, from, mount, run};

pub(super) struct Builder<'a> {
    pub o: &'a Options,
    pub cf: &'a Containerfile,
    /// The Containerfile's name, for messages.
    pub file: String,
    pub store: Store,
    /// The store's folder (unpacked layers are below it).
    pub images: PathBuf,
    /// This build's scratch folder.
    pub scratch: PathBuf,
    pub ignore: Ignore,
    pub globals: BTreeMap<String, String>,
    pub built: Vec<Option<State>>,
    pub n: usize,
    pub total: usize,
    pub cached: usize,
    pub ran: usize,
    /// Build arguments some `ARG` declared.
    pub used: BTreeSet<String>,
    /// The stage being built.
    pub current: usize,
    pub out: &'a mut dyn Write,
}

/// Where a step changing files does its work.
struct Dirs {
    upper: PathBuf,
    work: PathBuf,
    root: PathBuf,
    staging: PathBuf,
}

impl Builder<'_> {
    fn err(&self, step: &Step, message: impl Into<String>) -> BuildError {
        step_error(&self.file, step)(message.into())
    }

    fn say(&mut self, text: &str) {
        self.n += 1;
        let _ = writeln!(self.out, "[{}/{}] {text}", self.n, self.total);
        let _ = self.out.flush();
    }

    /// Builds stage `i` (what it needs is built).
    pub fn stage(&mut self, i: usize) -> Result<(), BuildError> {
        let s = &self.cf.stages[i];
        let from = containerfile::expand(&s.from, &self.globals).map_err(|m| BuildError::Step {
            file: self.file.clone(),
            line: s.line,
            text: format!("FROM {}", s.from),
            message: m,
        })?;
        let named = s
            .name
            .as_ref()
            .map(|n| format!(" AS {n}"))
            .unwrap_or_default();
        self.say(&format!("FROM {from}{named}"));
        let mut state = if from.eq_ignore_ascii_case("scratch") {
            State {
                config: Config::scratch(),
                layers: Vec::new(),
                key: cache::base("scratch"),
            }
        } else if let Some(j) = super::stage_index(self.cf, &from, i) {
            self.built[j].clone().ok_or_else(|| {
                BuildError::Setup(format!("stage {from} was not built before it was used"))
            })?
        } else {
            from::image(
                &self.store,
                &self.o.data_dir,
                &self.o.insecure_registries,
                &from,
                self.out,
            )
            .map_err(|m| BuildError::Step {
                file: self.file.clone(),
                line: s.line,
                text: format!("FROM {from}"),
                message: m,
            })?
        };
        let mut args: BTreeMap<String, String> = BTreeMap::new();
        self.current = i;
        for step in &s.steps {
            self.step(&mut state, &mut args, step)?;
        }
        self.built[i] = Some(state);
        Ok(())
    }

    /// The variables an instruction's words are expanded with: the build
    /// arguments in scope under the image's environment.
    fn vars(state: &State, args: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut v = args.clone();
        for e in state.config.env() {
            if let Some((k, val)) = e.split_once('=') {
                v.insert(k.to_string(), val.to_string());
            }
        }
        v
    }

    fn step(
        &mut self,
        state: &mut State,
        args: &mut BTreeMap<String, String>,
        step: &Step,
    ) -> Result<(), BuildError> {
        let vars = Self::vars(state, args);
        let fail = step_error(&self.file, step);
        let ex = |s: &str| containerfile::expand(s, &vars).map_err(&fail);
        let meta = |state: &mut State, text: &str| {
            state.config.note(text, false);
            state.key = cache::key(&state.key, "config", text, "");
        };
        if let Some(text) = configure(&mut state.config, &step.instr, &step.text, &ex, &fail)? {
            self.say(&text);
            meta(state, &text);
            return Ok(());
        }
        match &step.instr {
            Instr::Arg(name, default) => {
                let value = match self.o.args.get(name) {
                    Some(v) => v.clone(),
                    None => match default {
                        Some(d) => ex(d)?,
                        None => self.globals.get(name).cloned().unwrap_or_default(),
                    },
                };
                self.used.insert(name.clone());
                let text = format!("ARG {name}={value:?}");
                self.say(&step.text);
                meta(state, &text);
                args.insert(name.clone(), value);
            }
            Instr::Workdir(w) => {
                let w = ex(w)?;
                state.config.set_workdir(&w);
                let dir = state.config.workdir().unwrap_or_else(|| "/".into());
                self.say(&format!("WORKDIR {dir}"));
                let key = cache::key(
                    &state.key,
                    "WORKDIR",
                    &dir,
                    &state.config.user().unwrap_or_default(),
                );
                self.changing(state, step, key, |b, state, d| {
                    let root = b.mount_step(state, d, step)?;
                    let owner = match state.config.user() {
                        Some(u) => Some(copy::owner(root.path(), &u).map_err(|m| b.err(step, m))?),
                        None => None,
                    };
                    copy::workdir(root.path(), Path::new(&dir), owner)
                        .map_err(|m| b.err(step, m))?;
                    Ok(())
                })?;
            }
            Instr::Run(cmd) => {
                self.say(&step.text);
                let argv = crate::image::build::image::argv(cmd);
                let reads: String = args.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
                let key = cache::key(&state.key, "RUN", &step.text, &reads);
                let mut env = state.config.env();
                for (k, v) in args.iter() {
                    if !env.iter().any(|e| e.split('=').next() == Some(k.as_str())) {
                        env.push(format!("{k}={v}"));
                    }
                }
                if let Cmd::Exec(v) = cmd
                    && v.is_empty()
                {
                    return Err(fail("an empty command".into()));
                }
                self.changing(state, step, key, |b, state, d| {
                    b.run(state, d, step, argv, env)
                })?;
            }
            Instr::Copy(c) | Instr::Add(c) => {
                let add = matches!(step.instr, Instr::Add(_));
                self.copy(state, step, c, add, &vars)?;
            }
            // Taken by `configure` above.
            _ => {}
        }
        Ok(())
    }

    /// A step that changes files, under cache key `key`: from the cache,
    /// or by `work` in fresh scratch folders, whose upper folder becomes
    /// its layer (none when it changed nothing).
    fn changing(
        &mut self,
        state: &mut State,
        step: &Step,
        key: String,
        work: impl FnOnce(&mut Self, &State, &Dirs) -> Result<(), BuildError>,
    ) -> Result<(), BuildError> {
        if !self.o.no_cache
            && let Some(made) = cache::lookup(&self.store, &key)
        {
            self.cached += 1;
            let _ = writeln!(self.out, "  cached");
            apply(state, made, key, &step.text);
            return Ok(());
        }
        let t = Instant::now();
        let base = self.scratch.join(format!("step-{}", self.n));
        let d = Dirs {
            upper: base.join("upper"),
            work: base.join("work"),
            root: base.join("root"),
            staging: base.join("staging"),
        };
        for p in [&d.upper, &d.work, &d.root, &d.staging] {
            std::fs::create_dir_all(p)
                .map_err(|e| self.err(step, format!("{}: {e}", p.display())))?;
        }
        work(self, state, &d)?;
        let empty = std::fs::read_dir(&d.upper).is_ok_and(|mut r| r.next().is_none());
        let made = if empty {
            None
        } else {
            Some(
                layer::write(&d.upper, &self.store, self.o.epoch)
                    .map_err(|e| self.err(step, e.to_string()))?,
            )
        };
        let _ = std::fs::remove_dir_all(&base);
        cache::record(&self.store, &key, &made);
        self.ran += 1;
        let _ = writeln!(self.out, "  done in {:.2}s", t.elapsed().as_secs_f64());
        apply(state, made, key, &step.text);
        Ok(())
    }

    /// The layers so far, top first; an empty folder for an image with
    /// none (overlayfs wants one).
    fn lowers(&self, state: &State, step: &Step) -> Result<Vec<PathBuf>, BuildError> {
        let mut l = state
            .lowers(&self.store, &self.images)
            .map_err(|m| self.err(step, m))?;
        if l.is_empty() {
            let empty = self.scratch.join("empty");
            std::fs::create_dir_all(&empty).map_err(|e| self.err(step, e.to_string()))?;
            l.push(empty);
        }
        Ok(l)
    }

    /// The step's root mounted on `d.root`: its layers under `d.upper`.
    fn mount_step(
        &self,
        state: &State,
        d: &Dirs,
        step: &Step,
    ) -> Result<mount::Mounted, BuildError> {
        let lowers = self.lowers(state, step)?;
        mount::overlay(&lowers, &d.upper, &d.work, &d.root).map_err(|m| self.err(step, m))
    }

    fn run(
        &mut self,
        state: &State,
        d: &Dirs,
        step: &Step,
        argv: Vec<String>,
        env: Vec<String>,
    ) -> Result<(), BuildError> {
        let lowers = self.lowers(state, step)?;
        let seccomp = self.o.state_dir.join("seccomp");
        let r = run::Step {
            argv,
            env,
            user: state.config.user(),
            workdir: PathBuf::from(state.config.workdir().unwrap_or_else(|| "/".into())),
            lowers: lowers.clone(),
            upper: &d.upper,
            work: &d.work,
            staging: &d.staging,
            network: self.o.network,
            seccomp_cache: &seccomp,
        };
        let result = run::run(&r, self.out);
        run::drop_mount_points(&d.upper, &lowers);
        result.map_err(|f| BuildError::Run {
            file: self.file.clone(),
            line: step.line,
            text: step.text.clone(),
            status: f.status,
            tail: f.tail,
        })
    }

    fn copy(
        &mut self,
        state: &mut State,
        step: &Step,
        c: &Copy,
        add: bool,
        vars: &BTreeMap<String, String>,
    ) -> Result<(), BuildError> {
        let fail = step_error(&self.file, step);
        let ex = |s: &str| containerfile::expand(s, vars).map_err(&fail);
        let kind = if add { "ADD" } else { "COPY" };
        let sources: Vec<String> = c.sources.iter().map(|s| ex(s)).collect::<Result<_, _>>()?;
        if add
            && let Some(u) = sources
                .iter()
                .find(|s| s.contains("://") || s.starts_with("git@"))
        {
            return Err(fail(format!(
                "{u}: ADD of a URL is not supported; fetch it beforehand, or in a RUN step with --network host"
            )));
        }
        let dest = ex(&c.dest)?;
        let wd = state.config.workdir().unwrap_or_else(|| "/".into());
        let dest = clean_dest(&wd, &dest);
        let chown = c.chown.as_deref().map(ex).transpose()?;
        let chmod = match c.chmod.as_deref().map(ex).transpose()? {
            Some(m) => Some(copy::mode(&m).map_err(&fail)?),
            None => None,
        };
        let from = c.from.as_deref().map(ex).transpose()?;
        let text = format!(
            "{kind}{}{}{} {} {dest}",
            from.as_ref()
                .map(|f| format!(" --from={f}"))
                .unwrap_or_default(),
            chown
                .as_ref()
                .map(|f| format!(" --chown={f}"))
                .unwrap_or_default(),
            c.chmod
                .as_ref()
                .map(|f| format!(" --chmod={f}"))
                .unwrap_or_default(),
            sources.join(" ")
        );
        self.say(&text);
        // Where the files come from, and what of it keys the cache.
        let (source_state, reads) = match &from {
            None => (None, String::new()),
            Some(f) => {
                let st = match super::stage_index(self.cf, f, self.current) {
                    Some(j) => self.built[j]
                        .clone()
                        .ok_or_else(|| self.err(step, format!("stage {f} is not built")))?,
                    None => from::image(
                        &self.store,
                        &self.o.data_dir,
                        &self.o.insecure_registries,
                        f,
                        self.out,
                    )
                    .map_err(|m| self.err(step, m))?,
                };
                let key = st.key.clone();
                (Some(st), key)
            }
        };
        let from_dir = self.scratch.join(format!("from-{}", self.n));
        let _source_root = match &source_state {
            None => None,
            Some(st) => {
                std::fs::create_dir_all(&from_dir).map_err(|e| self.err(step, e.to_string()))?;
                let lowers = self.lowers(st, step)?;
                Some(mount::read_only(&lowers, &from_dir).map_err(|m| self.err(step, m))?)
            }
        };
        let (src_root, ignore): (PathBuf, Ignore) = match &source_state {
            None => (self.o.context.clone(), self.ignore.clone()),
            Some(_) => (from_dir.clone(), Ignore::default()),
        };
        let mut paths = Vec::new();
        for s in &sources {
            for p in context::resolve(&src_root, s, &ignore)
                .map_err(|e| self.err(step, e.to_string()))?
            {
                if !paths.contains(&p) {
                    paths.push(p);
                }
            }
        }
        if (paths.len() > 1 || sources.len() > 1) && !dest.ends_with('/') {
            return Err(fail(format!(
                "{dest}: copying several files needs a folder: end it with /"
            )));
        }
        let reads = if source_state.is_none() {
            context::digest(&src_root, &paths, &ignore)
                .map_err(|e| self.err(step, e.to_string()))?
        } else {
            format!("{reads} {paths:?}")
        };
        let key = cache::key(&state.key, kind, &text, &reads);
        let keep_owners = source_state.is_some();
        self.changing(state, step, key, |b, state, d| {
            let root = b.mount_step(state, d, step)?;
            let owner = match &chown {
                Some(spec) => Some(copy::owner(root.path(), spec).map_err(|m| b.err(step, m))?),
                None => None,
            };
            let src = copy::Source {
                root: &src_root,
                ignore: &ignore,
                keep_owners,
            };
            let how = copy::Landing {
                owner,
                mode: chmod,
                unpack: add,
            };
            copy::copy(&src, &paths, root.path(), &dest, how).map_err(|m| b.err(step, m))
        })
    }
}

/// An instruction that changes the config alone, applied; the text its
/// progress line (and its part of the cache key) shows. `None` for the
/// others.
fn configure(
    config: &mut Config,
    instr: &Instr,
    text: &str,
    ex: &dyn Fn(&str) -> Result<String, BuildError>,
    fail: &dyn Fn(String) -> BuildError,
) -> Result<Option<String>, BuildError> {
    let mut out = String::new();
    // `KEY=VALUE` pairs, expanded, each given to `set`.
    let mut pairs = |word: &str, pairs: &[(String, String)], set: &mut dyn FnMut(&str, &str)| {
        out.push_str(word);
        for (k, v) in pairs {
            let (k, v) = (ex(k)?, ex(v)?);
            out.push_str(&format!(" {k}={v:?}"));
            set(&k, &v);
        }
        Ok::<_, BuildError>(())
    };
    match instr {
        Instr::Env(p) => pairs("ENV", p, &mut |k, v| config.set_env(k, v))?,
        Instr::Label(p) => pairs("LABEL", p, &mut |k, v| config.set_label(k, v))?,
        Instr::User(u) => {
            let u = ex(u)?;
            config.set_user(&u);
            out = format!("USER {u}");
        }
        Instr::StopSignal(s) => {
            let s = ex(s)?;
            config.set_stop_signal(&s);
            out = format!("STOPSIGNAL {s}");
        }
        Instr::Entrypoint(c) => {
            config.set_entrypoint(crate::image::build::image::argv(c));
            out = text.to_string();
        }
        Instr::Cmd(c) => {
            config.set_cmd(crate::image::build::image::argv(c));
            out = text.to_string();
        }
        Instr::Expose(ports) | Instr::Volume(ports) => {
            let expose = matches!(instr, Instr::Expose(_));
            out.push_str(if expose { "EXPOSE" } else { "VOLUME" });
            for p in ports {
                let p = ex(p)?;
                if expose {
                    let (num, proto) = p.split_once('/').unwrap_or((&p, "tcp"));
                    if num.parse::<u16>().is_err() || !["tcp", "udp", "sctp"].contains(&proto) {
                        return Err(fail(format!("{p}: expected PORT or PORT/tcp|udp|sctp")));
                    }
                    config.expose(&p);
                } else {
                    config.add_volume(&p);
                }
                out.push(' ');
                out.push_str(&p);
            }
        }
        _ => return Ok(None),
    }
    Ok(Some(out))
}

/// The error of `step` in the Containerfile `file`, from its message.
fn step_error(file: &str, step: &Step) -> impl Fn(String) -> BuildError + use<> {
    let (file, line, text) = (file.to_string(), step.line, step.text.clone());
    move |message| BuildError::Step {
        file: file.clone(),
        line,
        text: text.clone(),
        message,
    }
}

/// A step's result on the stage.
fn apply(state: &mut State, made: cache::Made, key: String, step: &str) {
    state.config.note(step, made.is_some());
    if let Some(l) = made {
        state.config.push_layer(&l.diff_id);
        state.layers.push(Blob {
            digest: l.blob,
            size: l.size,
            media_type: LAYER.into(),
        });
    }
    state.key = key;
}

/// A destination as an absolute path inside the image: relative to the
/// working folder, `.` and `..` taken away (never above the root); it
/// names a folder (ends in `/`) when it was written so, or with `.`.
fn clean_dest(workdir: &str, dest: &str) -> String {
    let full = if dest.starts_with('/') {
        dest.to_string()
    } else {
        format!("{workdir}/{dest}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for p in full.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let folder = dest.ends_with('/') || dest == "." || dest.ends_with("/.");
    let mut out = format!("/{}", parts.join("/"));
    if folder && !out.ends_with('/') {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn destinations_are_cleaned_inside_the_image() {
        use super::clean_dest;
        assert_eq!(clean_dest("/srv/app", "./"), "/srv/app/");
        assert_eq!(clean_dest("/srv/app", "."), "/srv/app/");
        assert_eq!(clean_dest("/srv/app", "x"), "/srv/app/x");
        assert_eq!(clean_dest("/", "../../etc/"), "/etc/");
        assert_eq!(clean_dest("/a", "/b/../c"), "/c");
    }
}
