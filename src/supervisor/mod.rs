//! Runs containers: lowers the stack file's containers to sandbox specs and
//! drives them. (The event loop of `rkstack up` comes here next.)

pub mod lower;
pub mod run;
pub mod userns;
