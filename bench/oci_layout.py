"""An OCI image layout of a root filesystem folder (one gzip layer, tag
v1), for the benchmarks that compare image roots with plain folders."""
import gzip, hashlib, io, json, os, tarfile


def make_layout(fs, lay):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name in sorted(os.listdir(fs)):
            t.add(os.path.join(fs, name), arcname=name)
    layer = gzip.compress(buf.getvalue())
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
