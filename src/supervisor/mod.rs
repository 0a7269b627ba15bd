//! Runs containers: lowers the stack file's containers to sandbox specs and
//! drives them. (The event loop of `rkstack up` comes here next.)

pub mod logs;
pub mod lower;
pub mod restart;
pub mod run;
pub mod up;
pub mod userns;
