#!/usr/bin/env python3
"""Start of a container from an image already in the store (layers
unpacked, overlayfs root, writable layer made and removed) against the same
busybox rootfs as a plain directory, and read-only from the image:
`rkstack run ... -- /bin/sh -c 'echo > /f'`, whole process. Two times per
run: start (until the container's command runs: it opens a FIFO the bench
waits on) and whole (until rkstack exits: the layer removed, the cgroup
gone). The three kinds run in turn, N times (default 100; first 5 dropped);
medians. As root; needs busybox-static. `N=300 python3 bench/image-start.py`"""
import os, shutil, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oci_layout import make_layout  # noqa: E402

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=root, check=True)
rk = os.path.join(root, "target/release/rkstack")
n = int(os.environ.get("N", "100"))
work = tempfile.mkdtemp(prefix="rkstack-bench.")
try:
    fs = os.path.join(work, "rootfs")
    for d in ["bin", "etc", "proc", "dev", "sys", "tmp"]:
        os.makedirs(os.path.join(fs, d))
    shutil.copy("/bin/busybox", os.path.join(fs, "bin/busybox"))
    for a in ["sh", "true"]:
        os.symlink("busybox", os.path.join(fs, "bin", a))
    open(os.path.join(fs, "etc/passwd"), "w").write("root:x:0:0:root:/root:/bin/sh\n")
    # The mount point of the FIFO, in the rootfs and so in the image: both
    # start with the same tree (else the folder gets it at its first run and
    # every image start makes it anew in its fresh layer).
    open(os.path.join(fs, "f"), "w").close()
    lay = os.path.join(work, "layout")
    make_layout(fs, lay)
    fifo = os.path.join(work, "started")
    os.mkfifo(fifo)
    base = [rk, "--state-dir", f"{work}/state", "--data-dir", f"{work}/data", "run", "-v", f"{fifo}:/f"]
    image = f"oci:{lay}:v1"
    subprocess.run(base + [image, "--", "/bin/true"], check=True)  # import once
    kinds = [("dir", [fs]), ("image", [image]), ("image, read-only", ["--read-only", image])]
    times = {k: ([], []) for k, _ in kinds}
    for i in range(n):
        for k, args in kinds:
            t0 = time.monotonic()
            p = subprocess.Popen(base + args + ["--", "/bin/sh", "-c", "echo > /f"])
            with open(fifo) as f:
                f.read()
            t1 = time.monotonic()
            if p.wait() != 0:
                sys.exit(f"{k}: rkstack run failed")
            t2 = time.monotonic()
            if i >= 5:
                times[k][0].append(t1 - t0)
                times[k][1].append(t2 - t0)
    med = {k: (statistics.median(s) * 1000, statistics.median(w) * 1000) for k, (s, w) in times.items()}
    d = med["dir"]
    print(f"medians of {n - 5} runs each   start (command runs)   whole (rkstack exits)")
    for k, (s, w) in med.items():
        print(f"{k:18} {s:8.2f} ms ({s / d[0]:.2f}x)    {w:8.2f} ms ({w / d[1]:.2f}x)")
finally:
    shutil.rmtree(work, ignore_errors=True)
