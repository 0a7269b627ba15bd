//! Images: a content-addressed store of blobs (verified by digest on
//! write) and layers unpacked once, safely, for overlayfs to stack.
//! Still to come: OCI layout and docker-archive import, registry pulls,
//! per-container overlay mounts, squashfs/erofs (see the images issue).

pub mod archive;
pub mod diff;
pub mod oci;
#[cfg(feature = "remote")]
pub mod registry;
#[cfg(feature = "remote")]
pub mod registry_env;
pub mod store;
pub mod unpack;
