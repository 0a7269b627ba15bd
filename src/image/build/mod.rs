//! `rkstack build`: Containerfiles built in rkstack's own sandbox into
//! layers of the store. In place so far: the Containerfile reader, the
//! ignore file, and a step's layer made from its overlayfs upper folder;
//! the steps themselves, their cache and the image follow.

pub mod containerfile;
pub mod ignore;
pub mod image;
pub mod layer;
