#!/usr/bin/env bash
# Pull throughput: a 50 MB image (one incompressible layer) from Debian's
# docker-registry on loopback, `rkstack pull` into an empty store against
# `skopeo copy` of the same image to a local dir, each 5 times. As root;
# needs docker-registry, skopeo, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=$PWD/target/release/rkstack
work=$(mktemp -d /tmp/rkstack-bench.XXXXXX)
reg_pid=
cleanup() { [ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s/reg\nhttp:\n  addr: 127.0.0.1:%s\nlog:\n  level: error\n' "$work" "$port" > "$work/config.yml"
docker-registry serve "$work/config.yml" >/dev/null 2>&1 & reg_pid=$!
until python3 -c "import socket; socket.create_connection(('127.0.0.1',$port))" 2>/dev/null; do sleep 0.05; done
python3 - "$work/layout" <<'PY'
import hashlib, io, json, os, sys, tarfile
lay = sys.argv[1]; os.makedirs(lay + "/blobs/sha256")
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w") as t:
    data = os.urandom(50 << 20)
    i = tarfile.TarInfo("big"); i.size = len(data); t.addfile(i, io.BytesIO(data))
def blob(b):
    h = hashlib.sha256(b).hexdigest(); open(f"{lay}/blobs/sha256/{h}", "wb").write(b); return "sha256:" + h, len(b)
layer = buf.getvalue(); ld, ls = blob(layer)
cd, cs = blob(json.dumps({"architecture": "amd64", "os": "linux", "config": {}, "rootfs": {"type": "layers", "diff_ids": [ld]}}).encode())
md, ms = blob(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": ls}]}).encode())
open(lay + "/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
open(lay + "/index.json", "w").write(json.dumps({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": md, "size": ms, "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}))
PY
skopeo copy --quiet --dest-tls-verify=false --dest-compress=false "oci:$work/layout:v1" "docker://127.0.0.1:$port/big:v1"
size=$(du -sb "$work/layout/blobs" | cut -f1)
ms() { python3 -c 'import time; print(time.monotonic_ns() // 1000000)'; }
for i in 1 2 3 4 5; do
  rm -rf "$work/store" "$work/skopeo"
  t0=$(ms); "$bin" --data-dir "$work/store" --insecure-registry "127.0.0.1:$port" pull "docker://127.0.0.1:$port/big:v1" >/dev/null; t1=$(ms)
  skopeo copy --quiet --src-tls-verify=false "docker://127.0.0.1:$port/big:v1" "dir:$work/skopeo"; t2=$(ms)
  echo "rkstack $((t1 - t0)) ms ($(( size / 1000 / (t1 - t0) )) MB/s)   skopeo $((t2 - t1)) ms ($(( size / 1000 / (t2 - t1) )) MB/s)"
done
