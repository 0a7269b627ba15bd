//! The mounts a build makes on the host side: a step's root (its layers
//! under a fresh writable layer) that `COPY`, `ADD` and `WORKDIR` write
//! into, and an earlier stage's root that `COPY --from` reads. They are
//! made in a mount namespace of the build's own, so that none is ever
//! seen by the host and all go with the build, however it ends.

use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

/// Moves this process into a mount namespace of its own whose mounts do
/// not propagate back to the host's. Called once, before any thread.
pub fn private_namespace() -> Result<(), String> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| format!("a mount namespace for the build: {e}"))?;
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("make the build's mounts private: {e}"))
}

/// A mount, undone when dropped.
#[derive(Debug)]
pub struct Mounted {
    at: PathBuf,
}

impl Mounted {
    pub fn path(&self) -> &Path {
        &self.at
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.at, MntFlags::MNT_DETACH);
    }
}

/// `lowers` (top first; at least one) under the writable layer `upper`
/// (work folder `work`), on the empty folder `at`.
pub fn overlay(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    at: &Path,
) -> Result<Mounted, String> {
    let lower = lowers
        .iter()
        .map(|l| l.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let data = format!(
        "lowerdir={lower},upperdir={},workdir={}",
        upper.display(),
        work.display()
    );
    nix::mount::mount(
        Some("overlay"),
        at,
        Some("overlay"),
        MsFlags::empty(),
        Some(data.as_str()),
    )
    .map_err(|e| format!("mount the step's root on {}: {e}", at.display()))?;
    Ok(Mounted {
        at: at.to_path_buf(),
    })
}

/// `lowers` (top first) as one read-only tree on the empty folder `at`.
pub fn read_only(lowers: &[PathBuf], at: &Path) -> Result<Mounted, String> {
    let fail = |e: nix::Error| format!("mount a stage's root on {}: {e}", at.display());
    match lowers {
        [] => Err(format!("mount on {}: no layers", at.display())),
        [one] => {
            nix::mount::mount(
                Some(one.as_path()),
                at,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(fail)?;
            let m = Mounted {
                at: at.to_path_buf(),
            };
            nix::mount::mount(
                None::<&str>,
                at,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                None::<&str>,
            )
            .map_err(fail)?;
            Ok(m)
        }
        many => {
            let lower = many
                .iter()
                .map(|l| l.display().to_string())
                .collect::<Vec<_>>()
                .join(":");
            nix::mount::mount(
                Some("overlay"),
                at,
                Some("overlay"),
                MsFlags::MS_RDONLY,
                Some(format!("lowerdir={lower}").as_str()),
            )
            .map_err(fail)?;
            Ok(Mounted {
                at: at.to_path_buf(),
            })
        }
    }
}
