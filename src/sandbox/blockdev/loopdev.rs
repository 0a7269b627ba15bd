//! Read-only loop devices for filesystem images (squashfs, erofs), set to
//! detach themselves when their last user goes (the container's mount).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

// linux/loop.h
const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_SET_FD: libc::c_ulong = 0x4C00;
const LOOP_SET_STATUS64: libc::c_ulong = 0x4C04;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LO_FLAGS_READ_ONLY: u32 = 1;
const LO_FLAGS_AUTOCLEAR: u32 = 4;

/// `struct loop_info64`.
#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

/// `struct loop_config`.
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// The (major, minor) numbers of a device node.
pub(crate) fn dev_of(path: &Path) -> io::Result<(u32, u32)> {
    let rdev = std::os::unix::fs::MetadataExt::rdev(&std::fs::metadata(path)?);
    Ok((libc::major(rdev), libc::minor(rdev)))
}

/// Opens a device node (close-on-exec).
pub(crate) fn open(path: &Path, flags: i32) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).unwrap_or_default();
    // SAFETY: NUL-terminated path; the result is checked.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor, ours.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Attaches `file` read-only to a free loop device; returns the device's
/// path and an open handle (the device detaches itself once the handle and
/// every mount of it are gone).
pub fn attach(file: &Path) -> io::Result<(PathBuf, OwnedFd)> {
    let backing = open(file, libc::O_RDONLY)?;
    let control = open(Path::new("/dev/loop-control"), libc::O_RDWR)?;
    for _ in 0..16 {
        // SAFETY: plain ioctl on the control device.
        let n = unsafe { libc::ioctl(control.as_raw_fd(), LOOP_CTL_GET_FREE as _) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let dev = PathBuf::from(format!("/dev/loop{n}"));
        let loopfd = open(&dev, libc::O_RDONLY)?;
        // SAFETY: an all-zero loop_config is valid; the fields are set below.
        let mut cfg: LoopConfig = unsafe { std::mem::zeroed() };
        cfg.fd = backing.as_raw_fd() as u32;
        cfg.info.lo_flags = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR;
        // SAFETY: cfg is a valid loop_config for the call.
        let r = unsafe { libc::ioctl(loopfd.as_raw_fd(), LOOP_CONFIGURE as _, &cfg) };
        if r == 0 {
            return Ok((dev, loopfd));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            // Taken meanwhile by someone else: another one.
            Some(libc::EBUSY) => continue,
            // Kernels before 5.8: the two-step way.
            Some(libc::EINVAL) | Some(libc::ENOTTY) => {
                // SAFETY: plain ioctls with valid arguments.
                unsafe {
                    if libc::ioctl(loopfd.as_raw_fd(), LOOP_SET_FD as _, backing.as_raw_fd()) < 0 {
                        let e = io::Error::last_os_error();
                        if e.raw_os_error() == Some(libc::EBUSY) {
                            continue;
                        }
                        return Err(e);
                    }
                    if libc::ioctl(loopfd.as_raw_fd(), LOOP_SET_STATUS64 as _, &cfg.info) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                return Ok((dev, loopfd));
            }
            _ => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::WouldBlock,
        "no free loop device",
    ))
}
