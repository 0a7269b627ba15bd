//! `rkstack build`: progress on stderr, the image's digest on stdout.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use rkstack::build::{self, BuildError, Network};

use super::{EXIT_FAILED, EXIT_INVALID, Global};

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// The Containerfile (default: CONTEXT/Containerfile, else
    /// CONTEXT/Dockerfile).
    #[arg(short = 'f', long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// Name the image NAME[:TAG], kept as localhost/NAME:TAG (repeatable).
    #[arg(short = 't', long = "tag", value_name = "NAME[:TAG]")]
    tags: Vec<String>,
    /// A value for an ARG (repeatable); KEY alone takes it from the
    /// environment.
    #[arg(long = "build-arg", value_name = "KEY[=VALUE]")]
    build_args: Vec<String>,
    /// The stage to build (default: the last).
    #[arg(long, value_name = "STAGE")]
    target: Option<String>,
    /// The network of RUN steps: none (loopback only) or host.
    #[arg(long, value_name = "MODE", default_value = "none", value_parser = ["none", "host"])]
    network: String,
    /// Run every step: read nothing from the step cache.
    #[arg(long)]
    no_cache: bool,
    /// Also write the image out: oci:DIR[:TAG] (an OCI layout) or
    /// tar:FILE (an OCI layout in a tar archive).
    #[arg(long, value_name = "DEST")]
    output: Option<String>,
    /// The build context: the folder COPY and ADD read.
    context: PathBuf,
}

/// Where `--output` writes.
enum Output {
    Layout(PathBuf, Option<String>),
    Tar(PathBuf),
}

fn output(s: &str) -> Result<Output, String> {
    if let Some(rest) = s.strip_prefix("oci:") {
        let (dir, tag) = match rest.rsplit_once(':') {
            Some((d, t)) if !t.is_empty() && !t.contains('/') => (d, Some(t.to_string())),
            _ => (rest, None),
        };
        return Ok(Output::Layout(PathBuf::from(dir), tag));
    }
    if let Some(f) = s.strip_prefix("tar:") {
        return Ok(Output::Tar(PathBuf::from(f)));
    }
    Err(format!("--output {s}: expected oci:DIR[:TAG] or tar:FILE"))
}

fn build_args(given: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for a in given {
        let (k, v) = match a.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => match std::env::var(a) {
                Ok(v) => (a.clone(), v),
                // Unset in the environment: as docker, not given at all.
                Err(_) => continue,
            },
        };
        if k.is_empty() {
            return Err(format!("--build-arg {a}: expected KEY=VALUE"));
        }
        out.insert(k, v);
    }
    Ok(out)
}

pub fn build(g: &Global, a: BuildArgs) -> anyhow::Result<ExitCode> {
    let invalid = |m: String| {
        eprintln!("rkstack: {m}");
        Ok(ExitCode::from(EXIT_INVALID))
    };
    let args = match build_args(&a.build_args) {
        Ok(x) => x,
        Err(m) => return invalid(m),
    };
    let out = match a.output.as_deref().map(output).transpose() {
        Ok(x) => x,
        Err(m) => return invalid(m),
    };
    let epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) if !s.is_empty() => match s.parse::<u64>() {
            Ok(n) => n,
            Err(_) => {
                return invalid(format!(
                    "SOURCE_DATE_EPOCH={s}: expected seconds since 1970"
                ));
            }
        },
        _ => 0,
    };
    if let Err(m) = build::private_namespace() {
        eprintln!("rkstack: {m}");
        return Ok(ExitCode::from(EXIT_FAILED));
    }
    let o = build::Options {
        context: a.context,
        file: a.file,
        tags: a.tags,
        args,
        target: a.target,
        network: if a.network == "host" {
            Network::Host
        } else {
            Network::None
        },
        no_cache: a.no_cache,
        epoch,
        data_dir: g.data_dir.clone(),
        state_dir: g.state_dir.clone(),
        insecure_registries: g.insecure_registries.clone(),
    };
    let mut progress = std::io::stderr();
    let built = match build::build(&o, &mut progress) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("rkstack: {e}");
            if let BuildError::Run { tail, .. } = &e
                && !tail.is_empty()
            {
                eprintln!("its last lines of output:");
                for l in tail {
                    eprintln!("  {l}");
                }
            }
            let code = match e {
                BuildError::File { .. } => EXIT_INVALID,
                _ => EXIT_FAILED,
            };
            return Ok(ExitCode::from(code));
        }
    };
    if let Some(out) = out {
        let store = rkstack::image::store::Store::open(&g.data_dir.join("images"))?;
        let written = match &out {
            Output::Layout(dir, tag) => {
                rkstack::image::export::to_layout(&store, &built.manifest, dir, tag.as_deref())
            }
            Output::Tar(file) => rkstack::image::export::to_tar(
                &store,
                &built.manifest,
                file,
                built.tags.first().map(String::as_str),
            ),
        };
        if let Err(e) = written {
            eprintln!("rkstack: --output: {e}");
            return Ok(ExitCode::from(EXIT_FAILED));
        }
    }
    eprintln!(
        "built {} ({} steps: {} ran, {} cached){}",
        built.manifest,
        built.steps,
        built.ran,
        built.cached,
        if built.tags.is_empty() {
            String::new()
        } else {
            format!(", named {}", built.tags.join(", "))
        }
    );
    #[allow(clippy::print_stdout)]
    {
        println!("{}", built.manifest);
    }
    Ok(ExitCode::SUCCESS)
}
