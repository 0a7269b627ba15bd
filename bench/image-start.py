#!/usr/bin/env python3
"""Start of a container from an image already in the store (layers
unpacked, overlayfs root, writable layer made and removed) against the same
busybox rootfs as a plain directory: `rkstack run ... -- /bin/true`, whole
process, with hyperfine. As root; needs busybox-static and hyperfine."""
import gzip, hashlib, io, json, os, shutil, subprocess, tarfile, tempfile

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
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name in sorted(os.listdir(fs)):
            t.add(os.path.join(fs, name), arcname=name)
    layer = gzip.compress(buf.getvalue())
    lay = os.path.join(work, "layout")
    os.makedirs(os.path.join(lay, "blobs/sha256"))
    def blob(b):
        h = hashlib.sha256(b).hexdigest()
        open(os.path.join(lay, "blobs/sha256", h), "wb").write(b)
        return "sha256:" + h, len(b)
    ld, ls = blob(layer)
    cd, cs = blob(json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                              "rootfs": {"type": "layers", "diff_ids": []}}).encode())
    md, ms = blob(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                              "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
                              "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": ls}]}).encode())
    open(os.path.join(lay, "oci-layout"), "w").write('{"imageLayoutVersion":"1.0.0"}')
    open(os.path.join(lay, "index.json"), "w").write(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
         "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}))
    base = f"{rk} --state-dir {work}/state --data-dir {work}/data run"
    subprocess.run(f"{base} oci:{lay}:v1 -- /bin/true", shell=True, check=True)  # import once
    subprocess.run(["hyperfine", "-N", "-w", "5", "-r", "60",
                    "-n", "dir", f"{base} {fs} -- /bin/true",
                    "-n", "oci (stored)", f"{base} oci:{lay}:v1 -- /bin/true"], check=True)
finally:
    shutil.rmtree(work, ignore_errors=True)
