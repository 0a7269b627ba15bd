//! Block devices behind filesystem images: loop devices for `squashfs:`
//! and `erofs:` images and their hash trees, and the dm-verity device
//! that checks an image against its root hash.

pub mod loopdev;
pub mod verity;
