//! `images`, `pull`, `rmi`: the image store, read and changed by the
//! command itself (no supervisor needed).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use super::output::{human_bytes, table};
use super::{EXIT_FAILED, EXIT_INVALID};

/// `rkstack images`: read from the store itself (no supervisor needed).
pub fn images(data_dir: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let root = data_dir.join("images");
    let refs = if root.is_dir() {
        rkstack::image::store::Store::open(&root)?.references()
    } else {
        Vec::new()
    };
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&refs)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = vec![
        ["REFERENCE", "DIGEST", "SIZE", "IMPORTED"]
            .map(String::from)
            .to_vec(),
    ];
    for r in &refs {
        rows.push(vec![
            r.reference.clone(),
            r.manifest.chars().take(19).collect(),
            human_bytes(r.size),
            r.imported.clone(),
        ]);
    }
    write!(out, "{}", table(&rows))?;
    Ok(ExitCode::SUCCESS)
}

/// `rkstack pull`: fetches an image into the store.
pub fn pull(
    data_dir: &Path,
    reference: &str,
    insecure: &[String],
    creds: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let Some(r) = reference.strip_prefix("docker://") else {
        eprintln!("rkstack: {reference}: expected docker://[REGISTRY/]REPO[:TAG|@DIGEST]");
        return Ok(ExitCode::from(EXIT_INVALID));
    };
    #[cfg(feature = "remote")]
    {
        let root = data_dir.join("images");
        let store = rkstack::image::store::Store::open(&root)?;
        use std::io::IsTerminal;
        let terminal = std::io::stderr().is_terminal();
        // On a terminal one line per blob, redrawn; otherwise a line per blob pulled.
        let progress = move |p: &rkstack::image::registry::Progress| {
            let short: String = p.digest.hex().chars().take(12).collect();
            let total = p
                .total
                .map(|t| format!(" of {}", human_bytes(t)))
                .unwrap_or_default();
            if terminal {
                eprint!(
                    "\r{short}: {}{total}{}",
                    human_bytes(p.done),
                    if p.finished { "\n" } else { "" }
                );
            } else if p.finished {
                eprintln!("pulled {} ({})", p.digest, human_bytes(p.done));
            }
        };
        match rkstack::image::registry::pull_with(
            &store,
            r,
            insecure,
            creds,
            Some(Box::new(progress)),
        ) {
            Ok(image) => {
                let r = rkstack::container::images::remember(&store, reference, &image, None)
                    .map_err(anyhow::Error::msg)?;
                writeln!(
                    std::io::stdout(),
                    "{reference}: {} ({})",
                    r.manifest,
                    human_bytes(r.size)
                )?;
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("rkstack: {reference}: {e}");
                Ok(ExitCode::from(EXIT_FAILED))
            }
        }
    }
    #[cfg(not(feature = "remote"))]
    {
        let _ = (data_dir, r, insecure, creds);
        eprintln!("rkstack: this build cannot pull images (the `remote` feature)");
        Ok(ExitCode::from(EXIT_FAILED))
    }
}

/// Collects what no image and no running container uses; says what that
/// freed (`always`: also when it was nothing).
fn collect(
    store: &rkstack::image::store::Store,
    state_dir: &Path,
    data_dir: &Path,
    always: bool,
) -> std::io::Result<()> {
    let mut keep = rkstack::host::stacks::layers_in_use(state_dir);
    // What the kept generations ran: a rollback runs those very images.
    for m in rkstack::host::stacks::kept_by_generations(data_dir) {
        if let Ok(d) = rkstack::image::store::Digest::parse(&m) {
            keep.extend(store.blobs_of(&d));
        }
    }
    let (n, bytes) = store.collect(&keep);
    if n > 0 || always {
        writeln!(
            std::io::stdout(),
            "freed {} ({n} blobs and layers no image, running container or kept generation uses)",
            human_bytes(bytes)
        )?;
    }
    Ok(())
}

/// `rkstack prune`: the store's collection alone; with `generations`,
/// the generations of stacks that are not running go first (and with
/// them what only they kept).
pub fn prune(state_dir: &Path, data_dir: &Path, generations: bool) -> anyhow::Result<ExitCode> {
    if generations {
        let running: Vec<String> = rkstack::host::stacks::running(state_dir)
            .into_iter()
            .map(|r| r.name)
            .collect();
        for e in std::fs::read_dir(data_dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let dir = e.path().join("generations");
            if dir.is_dir() && !running.contains(&name) {
                std::fs::remove_dir_all(&dir)?;
                writeln!(std::io::stdout(), "forgot the generations of stack {name}")?;
            }
        }
    }
    let root = data_dir.join("images");
    if !root.is_dir() {
        writeln!(std::io::stdout(), "freed 0 B (the store is empty)")?;
        return Ok(ExitCode::SUCCESS);
    }
    let store = rkstack::image::store::Store::open(&root)?;
    collect(&store, state_dir, data_dir, true)?;
    Ok(ExitCode::SUCCESS)
}

/// `rkstack rmi`: forgets references no running stack declares, then
/// collects what no reference uses.
pub fn rmi(state_dir: &Path, data_dir: &Path, refs: &[String]) -> anyhow::Result<ExitCode> {
    let root = data_dir.join("images");
    if !root.is_dir() {
        eprintln!("rkstack: the store is empty ({})", root.display());
        return Ok(ExitCode::from(EXIT_FAILED));
    }
    let store = rkstack::image::store::Store::open(&root)?;
    let used = rkstack::host::stacks::images_in_use(state_dir);
    let kept = rkstack::host::stacks::kept_by_generations(data_dir);
    let mut failed = false;
    for r in refs {
        let r = &known_as(&store, r).unwrap_or_else(|| r.clone());
        let manifest = store.reference(r).map(|rec| rec.manifest);
        if let Some((stack, _)) = used.iter().find(|(_, i)| i == r) {
            eprintln!("rkstack: {r} is used by stack {stack}, which is running; not removed");
            failed = true;
        } else if store.forget(r) {
            writeln!(std::io::stdout(), "removed {r}")?;
            if manifest.is_some_and(|m| kept.contains(&m)) {
                writeln!(
                    std::io::stdout(),
                    "its layers stay: a kept generation ran it (a rollback needs them; rkstack prune --generations forgets stopped stacks' generations)"
                )?;
            }
        } else {
            eprintln!("rkstack: no image {r} in the store (see rkstack images)");
            failed = true;
        }
    }
    collect(&store, state_dir, data_dir, false)?;
    Ok(if failed {
        ExitCode::from(EXIT_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}

/// The reference the store keeps `r` under: `r` as `rkstack images`
/// lists it, or a built image by the name `build -t` gave it (`app:1` is
/// `localhost/app:1`).
fn known_as(store: &rkstack::image::store::Store, r: &str) -> Option<String> {
    let local = rkstack::config::local_name(r).ok();
    [Some(r.to_string()), local]
        .into_iter()
        .flatten()
        .find(|r| store.reference(r).is_some())
}

/// The manifest of `reference` in the store (see [`known_as`]), or a
/// manifest digest the store has.
fn stored(
    store: &rkstack::image::store::Store,
    reference: &str,
) -> Option<rkstack::image::store::Digest> {
    use rkstack::image::store::Digest;
    if let Ok(d) = Digest::parse(reference)
        && store.has(&d)
    {
        return Some(d);
    }
    known_as(store, reference)
        .and_then(|r| store.reference(&r))
        .and_then(|r| Digest::parse(&r.manifest).ok())
}

/// `rkstack push REF docker://REGISTRY/REPO[:TAG]`.
pub fn push(
    data_dir: &Path,
    reference: &str,
    dest: &str,
    insecure: &[String],
    creds: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let Some(to) = dest.strip_prefix("docker://") else {
        eprintln!("rkstack: {dest}: expected docker://REGISTRY/REPO[:TAG]");
        return Ok(ExitCode::from(EXIT_INVALID));
    };
    #[cfg(feature = "remote")]
    {
        let store = rkstack::image::store::Store::open(&data_dir.join("images"))?;
        let Some(manifest) = stored(&store, reference) else {
            eprintln!(
                "rkstack: {reference}: no such image in the store (rkstack images lists them)"
            );
            return Ok(ExitCode::from(EXIT_FAILED));
        };
        match rkstack::image::push::push(
            &store,
            &manifest,
            to,
            insecure,
            creds,
            &mut std::io::stderr(),
        ) {
            Ok(d) => {
                writeln!(std::io::stdout(), "{dest}: {d}")?;
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("rkstack: push {dest}: {e}");
                Ok(ExitCode::from(EXIT_FAILED))
            }
        }
    }
    #[cfg(not(feature = "remote"))]
    {
        let _ = (data_dir, reference, to, insecure, creds, stored);
        eprintln!("rkstack: this rkstack was built without registry support (the remote feature)");
        Ok(ExitCode::from(EXIT_FAILED))
    }
}
