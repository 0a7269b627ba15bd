//! `rkstack build`: a Containerfile built in rkstack's own sandbox into
//! layers of the image store. The stages the target needs are built in
//! order; each step that changes files (`RUN`, `COPY`, `ADD`, a `WORKDIR`
//! that is not there yet) makes one layer from its overlayfs upper folder,
//! or takes it from the step cache; the others change the config only.
//! Nothing of the machine or the time goes into the image: one context
//! gives one digest anywhere (`SOURCE_DATE_EPOCH`, default 0).
//!
//! The Containerfile reader, the context, the ignore file, layers and the
//! image config are `image::build`'s; here is what runs them.

mod cache;
mod copy;
mod from;
mod mount;
mod run;
mod steps;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::image::build::containerfile::{self, Containerfile, Instr};
use crate::image::build::context;
use crate::image::store::{Digest, Store};

pub use mount::private_namespace;
pub use run::Network;

/// What to build and how.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub context: PathBuf,
    /// The Containerfile (default: `Containerfile`, else `Dockerfile`, in
    /// the context).
    pub file: Option<PathBuf>,
    /// Names to give the image (`NAME[:TAG]`, kept as `localhost/...`).
    pub tags: Vec<String>,
    /// `--build-arg`s.
    pub args: BTreeMap<String, String>,
    /// The stage to build (default: the last).
    pub target: Option<String>,
    pub network: Network,
    /// Run every step, reading nothing from the cache (what the steps make
    /// is still recorded in it).
    pub no_cache: bool,
    /// `SOURCE_DATE_EPOCH`: file times after it become it; the image's
    /// `created`.
    pub epoch: u64,
    pub data_dir: PathBuf,
    pub state_dir: PathBuf,
    pub insecure_registries: Vec<String>,
}

/// A finished build.
#[derive(Debug, Clone)]
pub struct Built {
    pub manifest: Digest,
    /// Steps counted in the progress lines (`FROM`s too).
    pub steps: usize,
    /// Of the steps that change files: how many came from the cache, how
    /// many ran.
    pub cached: usize,
    pub ran: usize,
    /// The names it was given (`localhost/NAME:TAG`).
    pub tags: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{0}")]
    Setup(String),
    #[error("{file}: {message}")]
    File { file: String, message: String },
    #[error("{file}:{line}: {text}: {message}")]
    Step {
        file: String,
        line: usize,
        text: String,
        message: String,
    },
    #[error("{file}:{line}: {text}: the command failed ({status})")]
    Run {
        file: String,
        line: usize,
        text: String,
        status: String,
        /// Its last lines of output.
        tail: Vec<String>,
    },
}

fn read_file(file: &Path) -> Result<String, BuildError> {
    let bytes = context::read_containerfile(file).map_err(|message| BuildError::File {
        file: file.display().to_string(),
        message,
    })?;
    String::from_utf8(bytes).map_err(|_| BuildError::File {
        file: file.display().to_string(),
        message: "not UTF-8 text".into(),
    })
}

/// The index of the stage `name` (its `AS` name, any case, or its number)
/// among those before `before`.
fn stage_index(cf: &Containerfile, name: &str, before: usize) -> Option<usize> {
    if let Ok(i) = name.parse::<usize>() {
        return (i < before).then_some(i);
    }
    cf.stages[..before].iter().rposition(|s| {
        s.name
            .as_deref()
            .is_some_and(|n| n.eq_ignore_ascii_case(name))
    })
}

/// The stages `target` needs (itself, what it starts from, what it copies
/// from), by index.
fn needed(
    cf: &Containerfile,
    target: usize,
    globals: &BTreeMap<String, String>,
) -> BTreeSet<usize> {
    let mut out = BTreeSet::new();
    let mut todo = vec![target];
    while let Some(i) = todo.pop() {
        if !out.insert(i) {
            continue;
        }
        let s = &cf.stages[i];
        let from = containerfile::expand(&s.from, globals).unwrap_or_default();
        todo.extend(stage_index(cf, &from, i));
        for step in &s.steps {
            if let Instr::Copy(c) = &step.instr
                && let Some(f) = &c.from
            {
                todo.extend(stage_index(cf, f, i));
            }
        }
    }
    out
}

/// The build arguments known before the first `FROM`, with their values.
fn global_args(cf: &Containerfile, given: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut out = predefined();
    for (name, default) in &cf.global_args {
        let v = given
            .get(name)
            .cloned()
            .or_else(|| {
                default
                    .as_ref()
                    .map(|d| containerfile::expand(d, &out).unwrap_or_default())
            })
            .or_else(|| out.get(name).cloned())
            .unwrap_or_default();
        out.insert(name.clone(), v);
    }
    out
}

/// What buildkit defines for every build: the platform built on and for
/// (here, always this machine's).
fn predefined() -> BTreeMap<String, String> {
    let arch = crate::image::oci::host_arch();
    let platform = format!("linux/{arch}");
    [
        ("TARGETOS", "linux".to_string()),
        ("TARGETARCH", arch.to_string()),
        ("TARGETPLATFORM", platform.clone()),
        ("BUILDOS", "linux".to_string()),
        ("BUILDARCH", arch.to_string()),
        ("BUILDPLATFORM", platform),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Builds the image `o` describes; progress and the steps' output go to
/// `out`. Needs root, and a process that may still make a mount namespace
/// of its own (see [`private_namespace`], called by the caller first).
pub fn build(o: &Options, out: &mut dyn Write) -> Result<Built, BuildError> {
    let file = o
        .file
        .clone()
        .unwrap_or_else(|| context::default_file(&o.context));
    let shown = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| file.display().to_string());
    if !o.context.is_dir() {
        return Err(BuildError::Setup(format!(
            "{}: the build context must be a folder",
            o.context.display()
        )));
    }
    for t in &o.tags {
        crate::config::local_name(t).map_err(BuildError::Setup)?;
    }
    // What this build reads, as the names it gives record (a stack's
    // `build` is out of date when its context no longer gives this); a
    // build that names nothing records nothing.
    let inputs = if o.tags.is_empty() {
        None
    } else {
        context::inputs(&o.context, o.file.as_deref(), &o.args, o.target.as_deref()).ok()
    };
    let text = read_file(&file)?;
    let cf = containerfile::parse(&text).map_err(|e| BuildError::File {
        file: shown.clone(),
        message: e.to_string(),
    })?;
    if cf.stages.is_empty() {
        return Err(BuildError::File {
            file: shown,
            message: "no FROM: nothing to build".into(),
        });
    }
    let target = match &o.target {
        None => cf.stages.len() - 1,
        Some(t) => stage_index(&cf, t, cf.stages.len()).ok_or_else(|| {
            let names: Vec<&str> = cf.stages.iter().filter_map(|s| s.name.as_deref()).collect();
            BuildError::Setup(format!(
                "--target {t}: no such stage (stages: {})",
                if names.is_empty() {
                    "none named".to_string()
                } else {
                    names.join(", ")
                }
            ))
        })?,
    };
    let globals = global_args(&cf, &o.args);
    let needed = needed(&cf, target, &globals);
    let images = o.data_dir.join("images");
    let store = Store::open(&images).map_err(|e| BuildError::Setup(e.to_string()))?;
    let scratch_parent = o.data_dir.join("build");
    std::fs::create_dir_all(&scratch_parent)
        .map_err(|e| BuildError::Setup(format!("{}: {e}", scratch_parent.display())))?;
    let scratch = tempfile::Builder::new()
        .prefix("build-")
        .tempdir_in(&scratch_parent)
        .map_err(|e| BuildError::Setup(format!("{}: {e}", scratch_parent.display())))?;
    let mut b = steps::Builder {
        o,
        cf: &cf,
        file: shown,
        store,
        images,
        scratch: scratch.path().to_path_buf(),
        ignore: context::ignore_of(&o.context),
        globals,
        built: vec![None; cf.stages.len()],
        n: 0,
        total: needed.iter().map(|i| 1 + cf.stages[*i].steps.len()).sum(),
        cached: 0,
        ran: 0,
        used: BTreeSet::new(),
        current: 0,
        out,
    };
    for i in needed {
        b.stage(i)?;
    }
    let unused: Vec<&String> = o.args.keys().filter(|k| !b.used.contains(*k)).collect();
    if !unused.is_empty() {
        let _ = writeln!(
            b.out,
            "warning: build arguments not used by any ARG: {}",
            unused
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let state = b.built[target]
        .take()
        .ok_or_else(|| BuildError::Setup("the target stage was not built".into()))?;
    let manifest = state
        .config
        .write(&b.store, &state.layers, o.epoch)
        .map_err(|e| BuildError::Setup(e.to_string()))?;
    let mut tags = Vec::new();
    if !o.tags.is_empty() {
        let image = crate::image::oci::from_store(&b.store, &manifest)
            .map_err(|e| BuildError::Setup(e.to_string()))?;
        for t in &o.tags {
            let name = crate::config::local_name(t).map_err(BuildError::Setup)?;
            crate::container::images::remember(&b.store, &name, &image, inputs.clone())
                .map_err(BuildError::Setup)?;
            tags.push(name);
        }
    }
    // Root-owned files of the steps' layers go with the scratch folder.
    drop(scratch);
    Ok(Built {
        manifest,
        steps: b.n,
        cached: b.cached,
        ran: b.ran,
        tags,
    })
}
