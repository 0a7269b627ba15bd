//! Images: a content-addressed store of blobs (verified by digest on
//! write) and layers unpacked once, safely, for overlayfs to stack; OCI
//! layouts, docker archives, registry pulls, and bundles that carry a
//! stack file with its images to devices offline.

pub mod archive;
pub mod build;
pub mod bundle;
pub mod diff;
pub mod export;
pub mod oci;
#[cfg(feature = "remote")]
pub mod push;
#[cfg(feature = "remote")]
pub mod registry;
#[cfg(feature = "remote")]
pub mod registry_env;
pub mod store;
pub mod unpack;
