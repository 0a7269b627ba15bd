//! The container's root filesystem: what the init stage prepares while it
//! is still the host's root (the loop and verity devices of a filesystem
//! image, each bind's mount tree, a user namespace's image layers, mount
//! points a user namespace's root could not make), and how the container's
//! first process assembles its root from them (overlayfs layers, the
//! stack file's mounts, the root's own flags).

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::binds;
use super::rootfs::{self, StepResult, errno_err};
use super::spec::{Root, SandboxSpec};

/// Each bind's source as a detached mount tree with its flags set, made
/// by the stage while it is still the host's root (its source opened
/// refusing symlinks; a refusal is the start's error), keyed by its
/// target. The child attaches them: it reaches them even where the data
/// directory is closed to a user namespace's ids, and each is the very
/// file that was checked.
static PREOPENED: std::sync::OnceLock<Vec<(PathBuf, OwnedFd)>> = std::sync::OnceLock::new();

pub(super) fn preopen(spec: &SandboxSpec) -> StepResult<()> {
    let mut held = Vec::new();
    for m in &spec.mounts {
        if let super::spec::MountSpec::Bind {
            source,
            target,
            read_only,
        } = m
            && let Some(tree) =
                binds::bind_tree(source, *read_only, &format!("mount {}", target.display()))?
        {
            held.push((target.clone(), tree));
        }
    }
    let _ = PREOPENED.set(held);
    if spec.user_ns.is_some()
        && let Root::Overlay { lowers, upper } = &spec.root
    {
        let fail = |e: std::io::Error| {
            errno_err(
                "rootfs",
                e.raw_os_error().unwrap_or(0),
                "image layers for a user namespace",
            )
        };
        let lower = match lowers.as_slice() {
            [one] => binds::detached_tree(one),
            many => binds::detached_overlay(many),
        }
        .map_err(fail)?;
        let layer = match upper {
            Some((u, w)) => {
                let (Some(dir), Some(un), Some(wn)) = (u.parent(), u.file_name(), w.file_name())
                else {
                    return Err(fail(std::io::Error::from_raw_os_error(libc::EINVAL)));
                };
                let tree = binds::detached_tree(dir).map_err(fail)?;
                Some((tree, un.to_os_string(), wn.to_os_string()))
            }
            None => None,
        };
        let _ = USERNS_LAYERS.set(UsernsLayers { lower, layer });
    }
    Ok(())
}

/// An image container's layers in a user namespace, made by the stage
/// (the store is closed to the namespace's ids): the image's layers as
/// one read-only tree, and the folder holding its writable layer (with
/// the names of its upper and work folders). The child attaches both in
/// its own mount namespace and stacks its overlay there.
struct UsernsLayers {
    lower: OwnedFd,
    layer: Option<(OwnedFd, std::ffi::OsString, std::ffi::OsString)>,
}

static USERNS_LAYERS: std::sync::OnceLock<UsernsLayers> = std::sync::OnceLock::new();

/// The root of an image container in a user namespace, from the trees
/// the stage made (see [`UsernsLayers`]).
fn userns_overlay(s: &Path, l: &UsernsLayers, discard: bool) -> std::io::Result<PathBuf> {
    scratch(s, &["lower", "layer", "upper", "work", "root"])?;
    binds::attach_tree(&l.lower, &s.join("lower"))?;
    let (upper, work) = match &l.layer {
        Some((tree, u, w)) => {
            binds::attach_tree(tree, &s.join("layer"))?;
            (s.join("layer").join(u), s.join("layer").join(w))
        }
        None => (s.join("upper"), s.join("work")),
    };
    let root = s.join("root");
    mount_overlay(
        &root,
        &s.join("lower").display().to_string(),
        &upper,
        &work,
        discard,
    )?;
    Ok(root)
}

/// The stage's tree for the bind onto `target`, if it made one.
fn preopened(path: &Path) -> Option<&'static OwnedFd> {
    PREOPENED
        .get()?
        .iter()
        .find(|(p, _)| p == path)
        .map(|(_, fd)| fd)
}

/// The loop device of a filesystem-image root, attached by the stage.
static LOOP_DEV: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Attaches a filesystem image to a loop device (kept by the returned
/// handles until this stage exits; the device goes with the container's
/// mount), through a dm-verity device when the image has a root hash, and
/// lets the container's device cgroup (v1) open just that one.
pub(super) fn attach_image(spec: &SandboxSpec) -> StepResult<Vec<OwnedFd>> {
    let Root::Image { file, verity, .. } = &spec.root else {
        return Ok(Vec::new());
    };
    let err = |e: std::io::Error| {
        errno_err(
            "rootfs",
            e.raw_os_error().unwrap_or(0),
            format!("loop device for {}", file.display()),
        )
    };
    let (mut dev, fd) = super::blockdev::loopdev::attach(file).map_err(err)?;
    let mut holds = vec![fd];
    if let Some(v) = verity {
        let (node, held) = verify(file, &dev, v)?;
        holds.extend(held);
        dev = node;
    }
    let (major, minor) = super::blockdev::loopdev::dev_of(&dev).map_err(err)?;
    let rule = format!("b {major}:{minor} r");
    for procs in &spec.cgroup_procs {
        if let Some(allow) = procs.parent().map(|d| d.join("devices.allow"))
            && allow.exists()
        {
            std::fs::write(&allow, &rule).map_err(err)?;
        }
    }
    let _ = LOOP_DEV.set(dev);
    Ok(holds)
}

/// The image on loop device `dev` read through dm-verity with its hash
/// tree: the verity device's node and what holds it (and the hash tree's
/// loop device). An image that does not match is refused here.
fn verify(
    file: &Path,
    dev: &Path,
    v: &super::spec::VeritySpec,
) -> StepResult<(PathBuf, Vec<OwnedFd>)> {
    let fail = |errno: i32, what: String| {
        errno_err("verity", errno, format!("{}: {what}", file.display()))
    };
    let mut head = vec![0u8; 4096];
    let n = std::fs::File::open(&v.hash_file)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .map_err(|e| {
            fail(
                e.raw_os_error().unwrap_or(0),
                format!("hash tree {}: {e}", v.hash_file.display()),
            )
        })?;
    let sb = super::blockdev::verity::superblock(&head[..n])
        .map_err(|e| fail(libc::EINVAL, format!("{}: {e}", v.hash_file.display())))?;
    let (hash_dev, hash_fd) = super::blockdev::loopdev::attach(&v.hash_file)
        .map_err(|e| fail(e.raw_os_error().unwrap_or(0), format!("loop device: {e}")))?;
    let name = format!(
        "rkstack-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    let (node, dm_fd) = super::blockdev::verity::verity(&name, dev, &hash_dev, &sb, &v.root_hash)
        .map_err(|e| fail(libc::ENODEV, e))?;
    // The first block, read now: a wrong root hash (or a changed image)
    // fails here rather than as a mount error.
    let mut first = vec![0u8; sb.data_block_size as usize];
    // SAFETY: reading into our buffer from our descriptor.
    let r = unsafe { libc::pread(dm_fd.as_raw_fd(), first.as_mut_ptr().cast(), first.len(), 0) };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        return Err(fail(
            e.raw_os_error().unwrap_or(0),
            "the image does not match its verity root hash (or its hash tree); refused".into(),
        ));
    }
    Ok((node, vec![hash_fd, dm_fd]))
}

/// Root of a user namespace owns nothing in a directory rootfs, so the mount
/// points it will need are made now, while we are the host's root (resolved
/// inside the rootfs just as the child will).
pub(super) fn precreate_mountpoints(spec: &SandboxSpec) -> StepResult<()> {
    let Root::Dir(dir) = &spec.root else {
        return Ok(());
    };
    let Ok(root) = rootfs::open_root(dir) else {
        return Ok(());
    };
    let mut targets: Vec<(PathBuf, bool)> = ["/proc", "/dev", "/sys"]
        .iter()
        .map(|p| (PathBuf::from(p), false))
        .collect();
    for m in &spec.mounts {
        match m {
            super::spec::MountSpec::Bind { source, target, .. } => {
                targets.push((
                    target.clone(),
                    std::fs::metadata(source).is_ok_and(|m| !m.is_dir()),
                ));
            }
            super::spec::MountSpec::Tmpfs { target, .. } => targets.push((target.clone(), false)),
        }
    }
    for (t, file) in targets {
        rootfs::mountpoint(&root, &t, file).map_err(|e| {
            errno_err(
                format!("mount {}", t.display()),
                e.raw_os_error().unwrap_or(0),
                format!("mount point {}", t.display()),
            )
        })?;
    }
    Ok(())
}

pub(super) fn mount_target(m: &super::spec::MountSpec) -> &Path {
    match m {
        super::spec::MountSpec::Bind { target, .. }
        | super::spec::MountSpec::Tmpfs { target, .. } => target,
    }
}

/// The stack file's own mounts, in the root being assembled.
pub(super) fn user_mounts(root: &OwnedFd, mounts: &[&super::spec::MountSpec]) -> StepResult<()> {
    for m in mounts {
        match m {
            super::spec::MountSpec::Bind {
                source,
                target,
                read_only,
            } => binds::bind(
                root,
                source,
                preopened(target),
                target,
                *read_only,
                &format!("mount {}", target.display()),
            )?,
            super::spec::MountSpec::Tmpfs { target, size, mode } => rootfs::tmpfs(
                root,
                target,
                *size,
                *mode,
                &format!("mount {}", target.display()),
            )?,
        }
    }
    Ok(())
}

/// An overlayfs mount of `lower` (its lowerdir list) under the writable
/// layer `upper` (work folder `work`) on `target`. A layer thrown away
/// after the run is mounted `volatile` (Linux 5.10+): its teardown then
/// skips the sync of the whole filesystem under it, milliseconds at every
/// exit. A kernel without the option mounts it as any other.
fn mount_overlay(
    target: &Path,
    lower: &str,
    upper: &Path,
    work: &Path,
    discard: bool,
) -> std::io::Result<()> {
    let data = format!(
        "lowerdir={lower},upperdir={},workdir={}",
        upper.display(),
        work.display()
    );
    let mount = |d: &str| rootfs::mount(Some("overlay"), target, Some("overlay"), 0, Some(d));
    if discard {
        match mount(&format!("{data},volatile")) {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            done => return done,
        }
    }
    mount(&data)
}

/// `lower` under a writable layer, assembled on the staging folder `s`:
/// the container's own layer (`upper`), or, where it has none, a private
/// one in a scratch tmpfs that holds just the mount points the root lacks
/// (the root is sealed read-only after; nothing is ever made in `lower`).
/// Returns the root's path.
fn layered(
    s: &Path,
    lower: &str,
    upper: Option<&(PathBuf, PathBuf)>,
    discard: bool,
) -> std::io::Result<PathBuf> {
    match upper {
        Some((u, w)) => {
            mount_overlay(s, lower, u, w, discard)?;
            Ok(s.to_path_buf())
        }
        None => {
            scratch(s, &["upper", "work", "root"])?;
            let root = s.join("root");
            mount_overlay(&root, lower, &s.join("upper"), &s.join("work"), discard)?;
            Ok(root)
        }
    }
}

/// A small private tmpfs on `at` with these folders: mount points of a
/// root assembled from layers.
fn scratch(at: &Path, dirs: &[&str]) -> std::io::Result<()> {
    rootfs::mount(
        Some("tmpfs"),
        at,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("mode=755,size=1m"),
    )?;
    for d in dirs {
        std::fs::create_dir(at.join(d))?;
    }
    Ok(())
}

/// Builds the new root on the staging directory and returns its path.
pub(super) fn assemble_root(spec: &SandboxSpec) -> StepResult<PathBuf> {
    match &spec.root {
        Root::Dir(dir) => {
            let meta = std::fs::metadata(dir).map_err(|e| {
                errno_err(
                    "rootfs",
                    e.raw_os_error().unwrap_or(0),
                    dir.display().to_string(),
                )
            })?;
            if !meta.is_dir() {
                return Err(errno_err(
                    "rootfs",
                    libc::ENOTDIR,
                    dir.display().to_string(),
                ));
            }
            rootfs::mount(
                Some(&dir.to_string_lossy()),
                &spec.staging,
                None,
                libc::MS_BIND | libc::MS_REC,
                None,
            )
            .map_err(|e| {
                errno_err(
                    "rootfs",
                    e.raw_os_error().unwrap_or(0),
                    dir.display().to_string(),
                )
            })?;
            Ok(spec.staging.clone())
        }
        Root::Overlay { lowers, upper } => {
            let lower = lowers
                .iter()
                .map(|l| l.display().to_string())
                .collect::<Vec<_>>()
                .join(":");
            match USERNS_LAYERS.get() {
                Some(l) => userns_overlay(&spec.staging, l, spec.discard_layer),
                None => layered(&spec.staging, &lower, upper.as_ref(), spec.discard_layer),
            }
            .map_err(|e| {
                errno_err(
                    "rootfs",
                    e.raw_os_error().unwrap_or(0),
                    "image layers (overlayfs)",
                )
            })
        }
        Root::Image {
            file,
            fstype,
            upper,
            ..
        } => {
            let what = format!("{fstype} image {}", file.display());
            let fail = |e: std::io::Error| {
                errno_err("rootfs", e.raw_os_error().unwrap_or(0), what.clone())
            };
            // Attached by the stage, before this process was in the
            // container's device cgroup (which then allows just that device).
            let dev = LOOP_DEV
                .get()
                .ok_or_else(|| fail(std::io::Error::from_raw_os_error(libc::ENXIO)))?
                .to_string_lossy()
                .into_owned();
            // The image below the container's own layer (or, read-only, a
            // scratch one for mount points): a small private tmpfs holds the
            // mount points.
            let s = &spec.staging;
            scratch(s, &["lower", "root", "upper", "work"]).map_err(fail)?;
            rootfs::mount(
                Some(&dev),
                &s.join("lower"),
                Some(fstype),
                libc::MS_RDONLY,
                None,
            )
            .map_err(fail)?;
            let (u, w) = match upper {
                Some((u, w)) => (u.clone(), w.clone()),
                None => (s.join("upper"), s.join("work")),
            };
            let lower = s.join("lower").display().to_string();
            mount_overlay(&s.join("root"), &lower, &u, &w, spec.discard_layer).map_err(fail)?;
            Ok(s.join("root"))
        }
        Root::Host => {
            // The host's root read-only under a small private tmpfs layer, so
            // that mount points can be made without touching the host.
            layered(&spec.staging, "/", None, false).map_err(|e| {
                errno_err(
                    "rootfs",
                    e.raw_os_error().unwrap_or(0),
                    "overlay of the host's /",
                )
            })
        }
    }
}

/// The root's own mount flags: `nodev` always (device nodes exist only as
/// the runtime's bind mounts, so a node made inside can never be opened,
/// cgroup v2 or not), read-only when asked (always for the host's root).
pub(super) fn seal_root(root: &Path, read_only: bool) -> StepResult<()> {
    let mut flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_NODEV;
    if read_only {
        flags |= libc::MS_RDONLY;
    }
    rootfs::remount_keeping_locked(root, flags).map_err(|e| {
        errno_err(
            "rootfs flags",
            e.raw_os_error().unwrap_or(0),
            if read_only { "read-only" } else { "nodev" },
        )
    })
}
