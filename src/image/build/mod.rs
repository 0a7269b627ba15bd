//! `rkstack build`: Containerfiles built in rkstack's own sandbox into
//! layers of the store. In place so far: the Containerfile reader, the
//! ignore file, the context as COPY sees it (and the digest of what a step
//! reads, for its cache), a step's layer made from its overlayfs upper
//! folder, and the image's config and manifest; the executor follows.

pub mod containerfile;
pub mod context;
pub mod ignore;
pub mod image;
pub mod layer;
