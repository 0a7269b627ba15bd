//! A container's root filesystem from an image: the image imported into
//! the store (once), its layers unpacked (once, shared), and the
//! container's own writable layer under `DATA/STACK/containers/NAME/`
//! (kept across restarts, discarded when the container is recreated).

use std::path::{Path, PathBuf};

use crate::config::{Container, ImageRef};
use crate::image::{oci, store::Store};

/// The layers of a container's root, and what its image sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFs {
    /// Top first.
    pub lowers: Vec<PathBuf>,
    /// `(upper, work)`; none for a read-only container.
    pub upper: Option<(PathBuf, PathBuf)>,
    pub defaults: oci::Defaults,
    pub manifest: String,
    /// A filesystem image to mount instead of layers: (file, fstype).
    pub block: Option<(PathBuf, &'static str)>,
}

/// The container's writable layer folder.
pub fn container_dir(data_dir: &Path, stack: &str, name: &str) -> PathBuf {
    data_dir.join(stack).join("containers").join(name)
}

/// Takes a container's writable layer away at once and removes it in a
/// child process, so that a large layer (a container that wrote many
/// files) never holds up the supervisor's loop: restarts, reloads and the
/// API go on meanwhile. The layer is renamed into `containers/.trash/`
/// (names never start with a dot); the child empties that folder, so what
/// a removal cut short (a crash, a power cut) goes with the next one.
pub fn discard_layer(data_dir: &Path, stack: &str, name: &str) {
    let dir = container_dir(data_dir, stack, name);
    if std::fs::symlink_metadata(&dir).is_err() {
        return; // none (a container of a folder, or never started)
    }
    let trash = trash_dir(data_dir, stack);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let moved = std::fs::create_dir_all(&trash)
        .and_then(|()| std::fs::rename(&dir, trash.join(format!("{name}-{nanos}"))));
    match moved {
        Ok(()) => empty_in_background(&trash),
        // Cannot be moved (a strange data folder): removed here, as before.
        Err(_) => {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

fn trash_dir(data_dir: &Path, stack: &str) -> PathBuf {
    data_dir.join(stack).join("containers").join(".trash")
}

/// Finishes, in the background, removals a previous supervisor of the
/// stack left unfinished.
pub fn empty_trash(data_dir: &Path, stack: &str) {
    let trash = trash_dir(data_dir, stack);
    if std::fs::read_dir(&trash).is_ok_and(|mut d| d.next().is_some()) {
        empty_in_background(&trash);
    }
}

/// Removes what is in `trash` in a child process (reaped by the loop's
/// waitpid, like every child); here if there can be none.
fn empty_in_background(trash: &Path) {
    let empty = || {
        for e in std::fs::read_dir(trash).into_iter().flatten().flatten() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    };
    // SAFETY: the supervisor is single-threaded (its API runs on the
    // loop's own thread), so the child may allocate; it closes what it
    // inherited (a stack's lock must not outlive the supervisor in it),
    // removes files and leaves with _exit, running nothing of the parent.
    match unsafe { libc::fork() } {
        0 => {
            // SAFETY: plain syscalls in the child.
            unsafe {
                libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
            }
            empty();
            // SAFETY: leave without the parent's exit handlers.
            unsafe { libc::_exit(0) }
        }
        -1 => empty(),
        _ => {}
    }
}

/// The identity (manifest digest) of each container's image where it has
/// one, for the spec hash: a layout whose tag now names another image
/// recreates its containers. An image that cannot be read has none here
/// (starting the container reports why).
pub fn ids(
    stack: &crate::config::Stack,
    data_dir: &Path,
) -> std::collections::BTreeMap<String, String> {
    // Pulled images: what the store says their reference names now (a new
    // `rkstack pull` of the tag changes it).
    let root = data_dir.join("images");
    let pulled: std::collections::BTreeMap<String, String> = if root.is_dir() {
        Store::open(&root)
            .map(|s| {
                s.references()
                    .into_iter()
                    .map(|r| (r.reference, r.manifest))
                    .collect()
            })
            .unwrap_or_default()
    } else {
        Default::default()
    };
    stack
        .containers
        .values()
        .filter_map(|c| match &c.image {
            ImageRef::Oci { layout, tag } => oci::resolve(layout, tag.as_deref())
                .ok()
                .map(|d| (c.name.to_string(), d.to_string())),
            // A built image is what its build reads: a changed context
            // is another image (built before the container is recreated).
            ImageRef::Local { .. } if c.build.is_some() => {
                build_inputs(c).map(|id| (c.name.to_string(), id))
            }
            ImageRef::Docker { .. } | ImageRef::Local { .. } => pulled
                .get(&c.image.to_string())
                .map(|m| (c.name.to_string(), m.clone())),
            // A file image: its identity on disk (rewritten or replaced, it
            // is another image), without reading it all at every reload.
            ImageRef::Tar { path } | ImageRef::Squashfs { path } | ImageRef::Erofs { path } => {
                file_identity(path).map(|id| (c.name.to_string(), id))
            }
            _ => None,
        })
        .collect()
}

/// A file as it is on disk now (inode, size, modification time): rewritten
/// or replaced, it has another identity.
fn file_identity(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(format!(
        "file:{}:{}:{}.{}",
        m.ino(),
        m.len(),
        m.mtime(),
        m.mtime_nsec()
    ))
}

/// What an image is read from, for the store's record of it: an OCI
/// layout's index (a new tag or image rewrites it), an archive file. None
/// for pulled images (the record itself is their source).
fn source_of(image: &ImageRef) -> Option<String> {
    match image {
        ImageRef::Oci { layout, .. } => file_identity(&layout.join("index.json")),
        ImageRef::Tar { path } => file_identity(path),
        _ => None,
    }
}

/// `c` as it runs when pinned to the image `digest` (a rollback runs the
/// very image its generation ran, not what the tag names now): its
/// `docker://` reference names the digest, read from the store, never
/// pulled. Other images are left as they are.
pub fn pinned(c: &Container, digest: &str) -> Container {
    let ImageRef::Docker { reference } = &c.image else {
        return c.clone();
    };
    let name = reference.split('@').next().unwrap_or(reference);
    // A tag is after the last ':' that follows the last '/' (a registry's
    // port is before it).
    let slash = name.rfind('/').map_or(0, |i| i + 1);
    let name = match name[slash..].rfind(':') {
        Some(i) => &name[..slash + i],
        None => name,
    };
    let mut out = c.clone();
    out.image = ImageRef::Docker {
        reference: format!("{name}@{digest}"),
    };
    out.pull_policy = crate::config::PullPolicy::Never;
    out
}

/// What the build of `c`'s image reads, as a digest (see
/// [`crate::image::build::context::inputs`]); none when it has no build
/// or its context cannot be read.
fn build_inputs(c: &Container) -> Option<String> {
    let b = c.build.as_ref()?;
    crate::image::build::context::inputs(
        &b.context,
        b.file.as_deref(),
        &b.args,
        b.target.as_deref(),
    )
    .ok()
}

/// Whether starting `c` first needs its image built: it has a `build`
/// and the store has no image of that name built from what its context
/// holds now. Returns the image's name.
fn build_needed(c: &Container, data_dir: &Path) -> Option<String> {
    let ImageRef::Local { name } = &c.image else {
        return None;
    };
    c.build.as_ref()?;
    let root = data_dir.join("images");
    let built = Store::open(&root)
        .ok()
        .and_then(|s| s.reference(name))
        .and_then(|r| r.source);
    match (built, build_inputs(c)) {
        (Some(b), Some(now)) if b == now => None,
        _ => Some(name.clone()),
    }
}

/// Whether starting `c` first needs a pull of its `docker://` image (or a
/// build of its `localhost/` one, see [`build_needed`]), by its
/// `pull_policy`: `missing` when the store has no image for the reference,
/// `always` once per created container (`pulled`: done already; a restart
/// uses the image it was created from). Returns the reference to pull.
pub fn pull_needed(c: &Container, data_dir: &Path, pulled: bool) -> Option<String> {
    use crate::config::PullPolicy;
    if c.build.is_some() {
        return if pulled {
            None
        } else {
            build_needed(c, data_dir)
        };
    }
    let ImageRef::Docker { .. } = &c.image else {
        return None;
    };
    if !cfg!(feature = "remote") {
        return None; // prepare says this build cannot pull
    }
    match c.pull_policy {
        PullPolicy::Never => None,
        PullPolicy::Always if !pulled => Some(c.image.to_string()),
        _ => {
            let key = c.image.to_string();
            let root = data_dir.join("images");
            let stored = root.is_dir()
                && Store::open(&root)
                    .map(|s| s.reference(&key).is_some())
                    .unwrap_or(false);
            (!stored).then_some(key)
        }
    }
}

/// Prepares the image of `c`, if it has one from the store (`oci:`, `tar:`).
/// A `docker://` image is pulled here only when `may_pull` (the supervisor
/// pulls in the background first, see [`pull_needed`], and passes false).
pub fn prepare(
    c: &Container,
    data_dir: &Path,
    stack: &str,
    insecure: &[String],
    may_pull: bool,
) -> Result<Option<ImageFs>, String> {
    let block = match &c.image {
        ImageRef::Squashfs { path } => Some((path.clone(), "squashfs")),
        ImageRef::Erofs { path } => Some((path.clone(), "erofs")),
        ImageRef::Oci { .. }
        | ImageRef::Tar { .. }
        | ImageRef::Docker { .. }
        | ImageRef::Local { .. } => None,
        _ => return Ok(None),
    };
    if let Some((file, _)) = &block {
        if !file.is_file() {
            return Err(format!(
                "image {}: {}: no such file",
                c.image,
                file.display()
            ));
        }
        return Ok(Some(ImageFs {
            lowers: Vec::new(),
            upper: upper_of(c, data_dir, stack)?,
            defaults: oci::Defaults::default(),
            manifest: c.image.to_string(),
            block,
        }));
    }
    let root = data_dir.join("images");
    let store = Store::open(&root).map_err(|e| e.to_string())?;
    let key = c.image.to_string();
    // Every start after the first: the store's record, while the layout or
    // archive it was read from is unchanged.
    let source = source_of(&c.image);
    let recorded = match &c.image {
        // A built image: its record is all there is of it.
        ImageRef::Local { .. } => store.reference(&key).and_then(|r| r.image()),
        _ => source.as_ref().and_then(|src| {
            store
                .reference(&key)
                .filter(|r| r.source.as_ref() == Some(src))
                .and_then(|r| r.image())
        }),
    };
    let lowers_of = |image: &oci::Image| -> Result<Vec<PathBuf>, String> {
        image
            .layers
            .iter()
            .rev()
            .map(|(d, media)| {
                oci::layer_dir(&store, &root, d, media)
                    .map_err(|e| format!("image {}: {e}", c.image))
            })
            .collect()
    };
    // A recorded layer that is gone from the store (removed by hand) is
    // taken from the source again.
    let (image, lowers) = match recorded.and_then(|i| lowers_of(&i).ok().map(|l| (i, l))) {
        Some(found) => found,
        None => {
            let (image, new) = match &c.image {
                ImageRef::Oci { layout, tag } => {
                    oci::import(&store, layout, tag.as_deref()).map(|i| (i, true))
                }
                ImageRef::Tar { path } => {
                    crate::image::archive::import(&store, &root, path, None).map(|i| (i, true))
                }
                ImageRef::Docker { reference } => {
                    return_pulled(&store, c, reference, insecure, may_pull)
                }
                ImageRef::Local { name } => {
                    return Err(format!(
                        "image {name}: no such image here; build it with rkstack build -t {}",
                        name.trim_start_matches("localhost/")
                    ));
                }
                _ => return Ok(None),
            }
            .map_err(|e| format!("image {}: {e}", c.image))?;
            if new {
                remember(&store, &key, &image, source)?;
            }
            let lowers = lowers_of(&image)?;
            (image, lowers)
        }
    };
    if lowers.is_empty() {
        return Err(format!("image {}: it has no layers", c.image));
    }
    Ok(Some(ImageFs {
        lowers,
        upper: upper_of(c, data_dir, stack)?,
        defaults: image.defaults,
        manifest: image.manifest.to_string(),
        block: None,
    }))
}

/// The container's writable layer and overlayfs work folder (none when it
/// is read-only).
fn upper_of(
    c: &Container,
    data_dir: &Path,
    stack: &str,
) -> Result<Option<(PathBuf, PathBuf)>, String> {
    if c.read_only {
        return Ok(None);
    }
    let base = container_dir(data_dir, stack, c.name.as_str());
    let (u, w) = (base.join("upper"), base.join("work"));
    let fail = |d: &Path, e: std::io::Error| format!("{}: {e}", d.display());
    std::fs::create_dir_all(&base).map_err(|e| fail(&base, e))?;
    for d in [&u, &w] {
        match std::fs::create_dir(d) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(fail(d, e)),
            _ => {}
        }
    }
    Ok(Some((u, w)))
}

/// Records the images a bundle brought under their references (as a pull
/// would), once every blob of them is in the store.
pub fn remember_bundle(store: &Store, index: &crate::image::bundle::Index) -> Result<(), String> {
    for (reference, manifest) in &index.images {
        let d = crate::image::store::Digest::parse(manifest).map_err(|e| e.to_string())?;
        let image =
            crate::image::oci::from_store(store, &d).map_err(|e| format!("{reference}: {e}"))?;
        remember(store, reference, &image, None)?;
    }
    Ok(())
}

/// Records in the store what `reference` names now, read from `source`
/// (see [`source_of`]), unless it is recorded so already; returns the
/// record.
pub fn remember(
    store: &Store,
    reference: &str,
    image: &oci::Image,
    source: Option<String>,
) -> Result<crate::image::store::RefRecord, String> {
    let manifest = image.manifest.to_string();
    let blobs: Vec<String> = image.blobs.iter().map(|d| d.to_string()).collect();
    let layers: Vec<(String, String)> = image
        .layers
        .iter()
        .map(|(d, m)| (d.to_string(), m.clone()))
        .collect();
    let known = store.reference(reference);
    if let Some(k) = known.as_ref().filter(|k| {
        k.manifest == manifest
            && k.blobs == blobs
            && k.layers == layers
            && k.defaults.as_ref() == Some(&image.defaults)
            && k.source == source
    }) {
        return Ok(k.clone());
    }
    let size = image
        .layers
        .iter()
        .filter_map(|(d, _)| std::fs::metadata(store.blob_path(d)).ok())
        .map(|m| m.len())
        .sum();
    // The same image read again (its layout rewritten, a record of an
    // older version): imported when it first was.
    let imported = known
        .filter(|k| k.manifest == manifest)
        .map(|k| k.imported)
        .unwrap_or_else(|| crate::time::timestamp(std::time::SystemTime::now()));
    let record = crate::image::store::RefRecord {
        reference: reference.to_string(),
        manifest,
        size,
        imported,
        blobs,
        layers,
        defaults: Some(image.defaults.clone()),
        source,
    };
    store.record(&record).map_err(|e| e.to_string())?;
    Ok(record)
}

/// The image of a `docker://` reference: the one recorded in the store, or
/// pulled, as the container's `pull_policy` says; and whether the store's
/// record of it is still to be written (pulled now, or a record of an
/// older version without the image in it).
fn return_pulled(
    store: &Store,
    c: &Container,
    reference: &str,
    insecure: &[String],
    may_pull: bool,
) -> Result<(oci::Image, bool), crate::image::oci::ImageError> {
    use crate::config::PullPolicy;
    use crate::image::oci::ImageError;
    let key = c.image.to_string();
    let known = store.reference(&key);
    let stored = |r: &crate::image::store::RefRecord| -> Result<(oci::Image, bool), ImageError> {
        if let Some(image) = r.image() {
            return Ok((image, false));
        }
        let d = crate::image::store::Digest::parse(&r.manifest)?;
        pull::from_store(store, &d).map(|i| (i, true))
    };
    match (c.pull_policy, &known) {
        (PullPolicy::Never, Some(r)) | (PullPolicy::Missing, Some(r)) => stored(r),
        (_, Some(r)) if !may_pull => stored(r),
        // A reference by digest whose manifest the store holds (a pinned
        // image): that image, whatever record names it.
        (_, None) if by_digest(reference).is_some_and(|d| store.has(&d)) => {
            let d = by_digest(reference).ok_or_else(|| ImageError::Layout {
                path: PathBuf::from(&key),
                what: "no digest".into(),
            })?;
            pull::from_store(store, &d).map(|i| (i, false))
        }
        (_, None) if !may_pull => Err(ImageError::Layout {
            path: PathBuf::from(key),
            what: "not in the store (was it removed while the container started?)".into(),
        }),
        (PullPolicy::Never, None) => Err(ImageError::Layout {
            path: PathBuf::from(key),
            what: "not in the store, and pull_policy is never (rkstack pull it first)".into(),
        }),
        // Credentials from the Docker client's config of the user running rkstack.
        _ => pull::pull(store, reference, insecure, None).map(|i| (i, true)),
    }
}

/// The digest a `NAME@sha256:...` reference names.
fn by_digest(reference: &str) -> Option<crate::image::store::Digest> {
    let (_, d) = reference.rsplit_once('@')?;
    crate::image::store::Digest::parse(d).ok()
}

#[cfg(feature = "remote")]
use crate::image::registry as pull;

#[cfg(not(feature = "remote"))]
mod pull {
    use crate::image::oci::{Image, ImageError};
    use crate::image::store::{Digest, Store};
    fn off() -> ImageError {
        ImageError::Layout {
            path: std::path::PathBuf::from("registry"),
            what: "this build cannot pull images (the `remote` feature)".into(),
        }
    }
    pub fn pull(_: &Store, _: &str, _: &[String], _: Option<&str>) -> Result<Image, ImageError> {
        Err(off())
    }
    pub fn from_store(store: &Store, manifest: &Digest) -> Result<Image, ImageError> {
        crate::image::oci::from_store(store, manifest)
    }
}
