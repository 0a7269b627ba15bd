//! A stack file's container made real: its config lowered to a sandbox
//! spec, its image prepared from the store, its user-namespace range, the
//! descriptor limit it inherits — shared by `up` and `run`.

pub mod argv;
pub mod images;
pub mod launcher;
pub mod linux;
pub mod lower;
pub mod nofile;
pub mod run;
mod seccomp_cache;
pub mod userns;

pub use launcher::{Launcher, Start, Started};
pub use linux::LinuxLauncher;
#[cfg(test)]
pub mod fake;
