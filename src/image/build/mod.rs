//! `rkstack build`: Containerfiles built in rkstack's own sandbox into
//! layers of the store. This is its first part, the Containerfile reader;
//! the steps, their cache and the layers follow.

pub mod containerfile;
