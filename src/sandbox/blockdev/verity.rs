//! dm-verity over loop devices, through the device-mapper's ioctls (no
//! `veritysetup` needed on the device): a read-only verity device whose
//! reads fail (EIO) wherever the image differs from its hash tree.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use super::loopdev::{dev_of, open};
use std::path::{Path, PathBuf};

/// `struct dm_ioctl` (linux/dm-ioctl.h), 312 bytes.
#[repr(C)]
#[derive(Clone, Copy)]
struct DmIoctl {
    version: [u32; 3],
    data_size: u32,
    data_start: u32,
    target_count: u32,
    open_count: i32,
    flags: u32,
    event_nr: u32,
    padding: u32,
    dev: u64,
    name: [u8; 128],
    uuid: [u8; 129],
    data: [u8; 7],
}

/// `struct dm_target_spec`, 40 bytes; its parameters follow it.
#[repr(C)]
#[derive(Clone, Copy)]
struct DmTargetSpec {
    sector_start: u64,
    length: u64,
    status: i32,
    next: u32,
    target_type: [u8; 16],
}

const fn iowr(nr: u64) -> u64 {
    (3 << 30) | ((std::mem::size_of::<DmIoctl>() as u64) << 16) | (0xfd << 8) | nr
}
const DM_DEV_CREATE: u64 = iowr(3);
const DM_DEV_REMOVE: u64 = iowr(4);
const DM_DEV_SUSPEND: u64 = iowr(6);
const DM_TABLE_LOAD: u64 = iowr(9);
const DM_READONLY_FLAG: u32 = 1;
const DM_DEFERRED_REMOVE: u32 = 1 << 17;

/// What a hash file's verity superblock says (`veritysetup format`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superblock {
    pub hash_type: u32,
    pub algorithm: String,
    pub data_block_size: u32,
    pub hash_block_size: u32,
    pub data_blocks: u64,
    pub salt: Vec<u8>,
}

/// Reads the 512-byte superblock at the start of a hash file.
pub fn superblock(bytes: &[u8]) -> Result<Superblock, String> {
    if bytes.len() < 512 || &bytes[..8] != b"verity\0\0" {
        return Err("no verity superblock (make it with `veritysetup format`)".into());
    }
    let u32_at =
        |o: usize| u32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
    let version = u32_at(8);
    if version != 1 {
        return Err(format!("verity superblock version {version} (1 is known)"));
    }
    let algorithm: String = bytes[32..64]
        .iter()
        .take_while(|b| **b != 0)
        .map(|b| *b as char)
        .collect();
    let mut blocks = [0u8; 8];
    blocks.copy_from_slice(&bytes[72..80]);
    let salt_size = u16::from_le_bytes([bytes[80], bytes[81]]) as usize;
    if salt_size > 256 {
        return Err(format!("verity salt of {salt_size} bytes (256 at most)"));
    }
    let sb = Superblock {
        hash_type: u32_at(12),
        algorithm,
        data_block_size: u32_at(64),
        hash_block_size: u32_at(68),
        data_blocks: u64::from_le_bytes(blocks),
        salt: bytes[88..88 + salt_size].to_vec(),
    };
    let pow2 = |n: u32| (512..=1 << 20).contains(&n) && n.is_power_of_two();
    if !pow2(sb.data_block_size) || !pow2(sb.hash_block_size) || sb.algorithm.is_empty() {
        return Err("a verity superblock with impossible block sizes or no algorithm".into());
    }
    Ok(sb)
}

/// The verity target's table line for the kernel.
pub fn table(sb: &Superblock, data: (u32, u32), hash: (u32, u32), root_hash: &str) -> String {
    let salt = if sb.salt.is_empty() {
        "-".to_string()
    } else {
        sb.salt.iter().map(|b| format!("{b:02x}")).collect()
    };
    // The hash tree starts after the superblock: hash block 1.
    format!(
        "{} {}:{} {}:{} {} {} {} 1 {} {} {}",
        sb.hash_type,
        data.0,
        data.1,
        hash.0,
        hash.1,
        sb.data_block_size,
        sb.hash_block_size,
        sb.data_blocks,
        sb.algorithm,
        root_hash,
        salt
    )
}

fn header(name: &str, flags: u32, size: usize) -> DmIoctl {
    // SAFETY: all-zero is a valid dm_ioctl.
    let mut h: DmIoctl = unsafe { std::mem::zeroed() };
    h.version = [4, 0, 0];
    h.data_size = size as u32;
    h.data_start = std::mem::size_of::<DmIoctl>() as u32;
    h.flags = flags;
    for (d, s) in h.name.iter_mut().zip(name.bytes().take(127)) {
        *d = s;
    }
    h
}

fn call(control: &OwnedFd, req: u64, buf: &mut [u8]) -> io::Result<DmIoctl> {
    // SAFETY: buf starts with a dm_ioctl and is data_size bytes long.
    if unsafe { libc::ioctl(control.as_raw_fd(), req as _, buf.as_mut_ptr()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel wrote a dm_ioctl at the start of buf.
    Ok(unsafe { std::ptr::read_unaligned(buf.as_ptr().cast::<DmIoctl>()) })
}

fn simple(control: &OwnedFd, req: u64, name: &str, flags: u32) -> io::Result<DmIoctl> {
    let h = header(name, flags, std::mem::size_of::<DmIoctl>());
    let mut buf = vec![0u8; std::mem::size_of::<DmIoctl>()];
    // SAFETY: buf holds exactly one dm_ioctl.
    unsafe { std::ptr::write_unaligned(buf.as_mut_ptr().cast::<DmIoctl>(), h) };
    call(control, req, &mut buf)
}

/// A verity device made over two block devices: its node and an open
/// handle. It is set to go once nothing holds it open any more (the
/// handle, the container's mount).
pub fn verity(
    name: &str,
    data: &Path,
    hash: &Path,
    sb: &Superblock,
    root_hash: &str,
) -> Result<(PathBuf, OwnedFd), String> {
    let control = open(Path::new("/dev/mapper/control"), libc::O_RDWR).map_err(|e| {
        format!("this kernel has no device-mapper (/dev/mapper/control: {e}; the dm-mod and dm-verity modules)")
    })?;
    let (d, h) = (
        dev_of(data).map_err(|e| e.to_string())?,
        dev_of(hash).map_err(|e| e.to_string())?,
    );
    let made = simple(&control, DM_DEV_CREATE, name, DM_READONLY_FLAG)
        .map_err(|e| format!("device-mapper: create {name}: {e}"))?;
    let gone = |why: String| {
        let _ = simple(&control, DM_DEV_REMOVE, name, 0);
        why
    };
    // The table: one verity target over the whole data area.
    let params = table(sb, d, h, root_hash);
    let head = std::mem::size_of::<DmIoctl>();
    let spec_len = std::mem::size_of::<DmTargetSpec>();
    let total = (head + spec_len + params.len() + 1).next_multiple_of(8);
    let mut buf = vec![0u8; total];
    let mut hdr = header(name, DM_READONLY_FLAG, total);
    hdr.target_count = 1;
    let mut spec = DmTargetSpec {
        sector_start: 0,
        length: sb.data_blocks * u64::from(sb.data_block_size) / 512,
        status: 0,
        next: 0,
        target_type: [0; 16],
    };
    for (d, s) in spec.target_type.iter_mut().zip(b"verity") {
        *d = *s;
    }
    // SAFETY: buf is large enough for the header, the spec and the params.
    unsafe {
        std::ptr::write_unaligned(buf.as_mut_ptr().cast::<DmIoctl>(), hdr);
        std::ptr::write_unaligned(buf.as_mut_ptr().add(head).cast::<DmTargetSpec>(), spec);
    }
    buf[head + spec_len..head + spec_len + params.len()].copy_from_slice(params.as_bytes());
    call(&control, DM_TABLE_LOAD, &mut buf)
        .map_err(|e| gone(format!("dm-verity table ({params}): {e}")))?;
    // Resume (a suspend call without the suspend flag) makes it live.
    simple(&control, DM_DEV_SUSPEND, name, 0)
        .map_err(|e| gone(format!("dm-verity: activate {name}: {e}")))?;
    let node = PathBuf::from(format!("/dev/dm-{}", libc::minor(made.dev)));
    let fd = open(&node, libc::O_RDONLY).map_err(|e| gone(format!("{}: {e}", node.display())))?;
    // Goes by itself once the last holder closes it.
    simple(&control, DM_DEV_REMOVE, name, DM_DEFERRED_REMOVE)
        .map_err(|e| format!("dm-verity: deferred removal of {name}: {e}"))?;
    Ok((node, fd))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut b = vec![0u8; 4096];
        b[..8].copy_from_slice(b"verity\0\0");
        b[8..12].copy_from_slice(&1u32.to_le_bytes());
        b[12..16].copy_from_slice(&1u32.to_le_bytes());
        b[32..38].copy_from_slice(b"sha256");
        b[64..68].copy_from_slice(&4096u32.to_le_bytes());
        b[68..72].copy_from_slice(&4096u32.to_le_bytes());
        b[72..80].copy_from_slice(&300u64.to_le_bytes());
        b[80..82].copy_from_slice(&2u16.to_le_bytes());
        b[88..90].copy_from_slice(&[0xab, 0x01]);
        b
    }

    #[test]
    fn the_superblock_gives_the_verity_table() {
        assert_eq!(std::mem::size_of::<DmIoctl>(), 312);
        assert_eq!(std::mem::size_of::<DmTargetSpec>(), 40);
        assert_eq!(DM_DEV_CREATE, 0xc138_fd03);
        let sb = superblock(&sample()).unwrap();
        assert_eq!(sb.data_blocks, 300);
        assert_eq!(
            table(&sb, (7, 0), (7, 1), "00ff"),
            "1 7:0 7:1 4096 4096 300 1 sha256 00ff ab01"
        );
        let mut bad = sample();
        bad[0] = b'x';
        assert!(superblock(&bad).is_err());
        let mut odd = sample();
        odd[64..68].copy_from_slice(&1000u32.to_le_bytes());
        assert!(superblock(&odd).is_err());
    }
}
