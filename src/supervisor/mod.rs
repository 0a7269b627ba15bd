//! Runs containers: lowers the stack file's containers to sandbox specs,
//! `rkstack run` (one container) and `rkstack up` (a stack, in `up`).

pub mod binds;
pub mod events;
pub mod logs;
pub mod pid1;
pub mod preflight;
pub mod private;
pub mod restart;
pub mod selflog;
pub mod unit;
pub mod up;
