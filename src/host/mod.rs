//! The machine around rkstack, as `up`, `run` and the other commands all
//! need it: the stack lock, the stacks running here, their state files.

pub mod generations;
pub mod journal;
pub mod lockfile;
pub mod stacks;
pub mod state_file;
