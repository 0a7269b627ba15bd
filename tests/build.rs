//! `rkstack build`'s parts that touch the kernel, as root: a layer made
//! from a real overlayfs upper folder — whiteouts, an opaque folder, hard
//! links, extended attributes — the same bytes every time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use std::io::Read;
use std::process::Command;

use common::*;
use rkstack::image::build::layer;
use rkstack::image::store::Store;

#[test]
fn a_steps_layer_carries_whiteouts_opaque_folders_links_and_xattrs_the_same_every_time() {
    require_root!();
    let w = tempfile::tempdir().unwrap();
    let d = |p: &str| w.path().join(p);
    for dir in ["lower/etc", "lower/data", "upper", "work", "merged"] {
        std::fs::create_dir_all(d(dir)).unwrap();
    }
    std::fs::write(d("lower/etc/gone"), "old").unwrap();
    std::fs::write(d("lower/etc/kept"), "kept").unwrap();
    std::fs::write(d("lower/data/old"), "old").unwrap();
    // What a RUN step would do, in a mount namespace of its own.
    let script = format!(
        "mount -t overlay overlay -o lowerdir={l},upperdir={u},workdir={wk} {m} && \
         rm {m}/etc/gone && rm -r {m}/data && mkdir {m}/data && echo new > {m}/data/new && \
         echo hello > {m}/etc/file && ln {m}/etc/file {m}/etc/link && ln -s file {m}/etc/sym && \
         mkfifo {m}/etc/fifo && umount {m}",
        l = d("lower").display(),
        u = d("upper").display(),
        wk = d("work").display(),
        m = d("merged").display()
    );
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let file = d("upper/etc/file");
    let c = std::ffi::CString::new(file.to_str().unwrap()).unwrap();
    // SAFETY: NUL-terminated name, path and a value of its length.
    let r = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            c"user.origin".as_ptr(),
            b"test".as_ptr().cast(),
            4,
            0,
        )
    };
    assert_eq!(r, 0, "user xattrs on this filesystem");

    let store = Store::open(&d("store")).unwrap();
    let one = layer::write(&d("upper"), &store, 0).unwrap();
    // Times change, bytes do not: the same layer.
    Command::new("touch").arg(&file).status().unwrap();
    let two = layer::write(&d("upper"), &store, 0).unwrap();
    assert_eq!(one, two);

    let mut gz = Vec::new();
    std::fs::File::open(store.blob_path(&one.blob))
        .unwrap()
        .read_to_end(&mut gz)
        .unwrap();
    assert_eq!(gz.len() as u64, one.size);
    let mut tar_bytes = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut tar_bytes)
        .unwrap();
    assert_eq!(rkstack::image::store::Digest::of(&tar_bytes), one.diff_id);
    let mut ar = tar::Archive::new(&tar_bytes[..]);
    let mut seen = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().display().to_string();
        let kind = e.header().entry_type();
        assert_eq!(e.header().mtime().unwrap(), 0, "{path}");
        let link = e
            .link_name()
            .unwrap()
            .map(|l| l.display().to_string())
            .unwrap_or_default();
        let xattr = e
            .pax_extensions()
            .unwrap()
            .into_iter()
            .flatten()
            .flatten()
            .any(|x| x.key() == Ok("SCHILY.xattr.user.origin") && x.value_bytes() == b"test");
        let mut line = format!("{path} {kind:?}");
        if !link.is_empty() {
            line.push_str(&format!(" {link}"));
        }
        if xattr {
            line.push_str(" xattr");
        }
        seen.push(line);
    }
    eprintln!("{seen:#?}");
    assert_eq!(
        seen,
        [
            "data Directory",
            "data/.wh..wh..opq Regular",
            "data/new Regular",
            "etc Directory",
            "etc/.wh.gone Regular",
            "etc/fifo Fifo",
            "etc/file Regular xattr",
            "etc/link Link etc/file",
            "etc/sym Symlink file",
        ]
    );
}
