//! Capabilities: the bounding set is cut to exactly the configured set; root
//! gets it as permitted and effective, other users get none (as Docker does);
//! inheritable and ambient stay empty.

use std::collections::HashSet;

use caps::{CapSet, Capability};

use super::channel::StepError;
use super::rootfs::errno_err;

fn parse(names: &[String]) -> Result<HashSet<Capability>, StepError> {
    names
        .iter()
        .map(|n| {
            n.parse::<Capability>()
                .map_err(|_| errno_err("capabilities", libc::EINVAL, n.clone()))
        })
        .collect()
}

pub fn apply(names: &[String], root: bool) -> Result<(), StepError> {
    // Nothing can hand out a capability the runtime does not hold itself
    // (`add = ["ALL"]` where rkstack runs without CAP_SYS_RESOURCE, say).
    let held = caps::read(None, CapSet::Permitted).unwrap_or_default();
    let want: HashSet<Capability> = parse(names)?
        .into_iter()
        .filter(|c| held.contains(c))
        .collect();
    let err = |what: &str, e: caps::errors::CapsError| {
        errno_err("capabilities", 0, format!("{what}: {e}"))
    };
    // Changing to a non-root uid cleared the effective set (permitted was
    // kept); dropping from the bounding set needs CAP_SETPCAP effective.
    caps::set(None, CapSet::Effective, &held).map_err(|e| err("raise effective", e))?;
    for c in caps::all() {
        if !want.contains(&c) {
            // Capabilities the kernel does not know cannot be dropped; skip them.
            if let Err(e) = caps::drop(None, CapSet::Bounding, c) {
                if caps::has_cap(None, CapSet::Bounding, c).unwrap_or(false) {
                    return Err(err("bounding", e));
                }
            }
        }
    }
    let empty = HashSet::new();
    // One call (clearing capability by capability was a call for each).
    // SAFETY: plain prctl without pointers.
    let cleared = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
    // Kernels without ambient capabilities (EINVAL) have nothing to clear.
    if cleared != 0 && errno != libc::EINVAL {
        return Err(errno_err("capabilities", errno, "clear ambient"));
    }
    caps::set(None, CapSet::Inheritable, &empty).map_err(|e| err("inheritable", e))?;
    let keep = if root { &want } else { &empty };
    caps::set(None, CapSet::Effective, keep).map_err(|e| err("effective", e))?;
    caps::set(None, CapSet::Permitted, keep).map_err(|e| err("permitted", e))?;
    Ok(())
}
