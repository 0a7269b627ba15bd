//! The machine around rkstack, as `up` and `run` both need it.

pub mod lockfile;
