//! `bundle` and `keygen`: a signed file with a stack and its images, for
//! devices offline or on slow links; and the key pair that signs it.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use rkstack::image::bundle::{self, Signer};
use rkstack::image::store::Store;

use super::EXIT_FAILED;

/// `rkstack bundle FILE -o OUT [--sign KEY] [--since OLD]`.
pub fn bundle(
    data_dir: &Path,
    file: &Path,
    out: &Path,
    sign: Option<&Path>,
    since: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let text = rkstack::config::read_text(file)?;
    let stack = rkstack::config::parse(&text, file)?;
    let root = data_dir.join("images");
    let store = Store::open(&root)?;
    let mut images = std::collections::BTreeMap::new();
    for c in stack.containers.values() {
        if !matches!(
            c.image,
            rkstack::config::ImageRef::Docker { .. } | rkstack::config::ImageRef::Local { .. }
        ) {
            continue;
        }
        let key = c.image.to_string();
        let Some(r) = store.reference(&key) else {
            eprintln!(
                "rkstack: {}: {key} is not in the store; rkstack pull it first",
                c.name
            );
            return Ok(ExitCode::from(EXIT_FAILED));
        };
        images.insert(key, r.manifest);
    }
    let base = since.map(bundle::read_index).transpose()?;
    let signer = sign.map(|key| Signer {
        key: key.to_path_buf(),
        password: std::env::var("RKSTACK_SIGN_PASSWORD").ok(),
    });
    // Written beside the output and renamed: a bundle is whole or absent.
    let tmp = out.with_extension("rkb.partial");
    let f = std::fs::File::create(&tmp)?;
    let w = std::io::BufWriter::with_capacity(1 << 20, f);
    let index = match bundle::write(
        w,
        &store,
        stack.name.as_str(),
        &text,
        images,
        base.as_ref(),
        signer.as_ref(),
    ) {
        Ok(i) => i,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e.into());
        }
    };
    std::fs::rename(&tmp, out)?;
    let size = std::fs::metadata(out)?.len();
    let carried = match &base {
        Some(b) => {
            let had: std::collections::BTreeSet<&str> =
                b.blobs.iter().map(|x| x.digest.as_str()).collect();
            index
                .blobs
                .iter()
                .filter(|x| !had.contains(x.digest.as_str()))
                .count()
        }
        None => index.blobs.len(),
    };
    writeln!(
        std::io::stdout(),
        "{}: stack {}, {} image(s), {carried} of {} blob(s){}, {} bytes{}",
        out.display(),
        index.stack,
        index.images.len(),
        index.blobs.len(),
        if base.is_some() { " (a delta)" } else { "" },
        size,
        if sign.is_some() { ", signed" } else { "" }
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `rkstack keygen -o PREFIX`: PREFIX.pub (for devices'
/// /etc/rkstack/trusted.d/) and PREFIX.key (mode 0600, for the signer).
pub fn keygen(prefix: &Path) -> anyhow::Result<ExitCode> {
    use std::os::unix::fs::OpenOptionsExt;
    let (pk, sk) = bundle::keygen()?;
    let public = prefix.with_extension("pub");
    let secret = prefix.with_extension("key");
    for p in [&public, &secret] {
        if p.exists() {
            eprintln!("rkstack: {} exists; not overwritten", p.display());
            return Ok(ExitCode::from(EXIT_FAILED));
        }
    }
    std::fs::write(&public, pk)?;
    let mut f = std::fs::File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&secret)?;
    f.write_all(sk.as_bytes())?;
    writeln!(
        std::io::stdout(),
        "{} (copy it to devices' /etc/rkstack/trusted.d/), {} (keep it private)",
        public.display(),
        secret.display()
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Whether `path` is a bundle (a tar whose first entry is the index).
pub fn is_bundle(path: &Path) -> bool {
    let mut head = [0u8; 100];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .is_ok_and(|()| {
            head.starts_with(bundle::INDEX.as_bytes()) && head[bundle::INDEX.len()] == 0
        })
}

/// Takes a bundle into this device's store — its signature checked against
/// the keys in `trusted` first, every blob by its digest — and returns its
/// stack file.
pub fn receive(data_dir: &Path, trusted: &Path, path: &Path) -> anyhow::Result<(String, String)> {
    let store = Store::open(&data_dir.join("images"))?;
    let keys = bundle::trusted_keys(trusted)?;
    let f = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(path)?);
    let got = bundle::receive(f, &store, &keys)
        .map_err(|e| anyhow::anyhow!("{}: {e}; nothing was changed", path.display()))?;
    rkstack::container::images::remember_bundle(&store, &got.index)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok((got.index.stack, got.stack_text))
}
