#!/usr/bin/env python3
"""Start of a container from an image already in the store (layers
unpacked, overlayfs root, writable layer made and removed) against the same
busybox rootfs as a plain directory: `rkstack run ... -- /bin/true`, whole
process, with hyperfine. As root; needs busybox-static and hyperfine."""
import os, shutil, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oci_layout import make_layout  # noqa: E402

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=root, check=True)
rk = os.path.join(root, "target/release/rkstack")
work = tempfile.mkdtemp(prefix="rkstack-bench.")
try:
    fs = os.path.join(work, "rootfs")
    for d in ["bin", "etc", "proc", "dev", "sys", "tmp"]:
        os.makedirs(os.path.join(fs, d))
    shutil.copy("/bin/busybox", os.path.join(fs, "bin/busybox"))
    for a in ["sh", "true"]:
        os.symlink("busybox", os.path.join(fs, "bin", a))
    open(os.path.join(fs, "etc/passwd"), "w").write("root:x:0:0:root:/root:/bin/sh\n")
    lay = os.path.join(work, "layout")
    make_layout(fs, lay)
    base = f"{rk} --state-dir {work}/state --data-dir {work}/data run"
    subprocess.run(f"{base} oci:{lay}:v1 -- /bin/true", shell=True, check=True)  # import once
    subprocess.run(["hyperfine", "-N", "-w", "5", "-r", "60",
                    "-n", "dir", f"{base} {fs} -- /bin/true",
                    "-n", "oci (stored)", f"{base} oci:{lay}:v1 -- /bin/true"], check=True)
finally:
    shutil.rmtree(work, ignore_errors=True)
