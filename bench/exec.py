#!/usr/bin/env python3
"""`exec` latency under `up`, whole round trip over the API's unix socket:
POST /v1/containers/app/exec {"command": ["/bin/true"]} until the streamed
answer ends (the process entered the container, ran and was reaped).
Medians and p90 of N (default 200). BIN=path runs another rkstack binary
(e.g. an older build) instead of this tree's release build, so two can be
compared on one machine. Needs busybox-static; builds a busybox rootfs in a
temporary folder."""
import json, os, shutil, statistics, subprocess, sys, tempfile, time

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(root, "bench"))
from unix_http import UnixConn, rkstack_binary  # noqa: E402
rk = rkstack_binary(root)
n = int(os.environ.get("N", "200"))


work = tempfile.mkdtemp(prefix="rkstack-bench.")
sup = None
try:
    fs = os.path.join(work, "rootfs")
    for d in ["bin", "etc", "proc", "dev", "sys", "tmp"]:
        os.makedirs(os.path.join(fs, d))
    shutil.copy("/bin/busybox", os.path.join(fs, "bin/busybox"))
    for a in ["sleep", "true"]:
        os.symlink("busybox", os.path.join(fs, "bin", a))
    open(os.path.join(fs, "etc/passwd"), "w").write("root:x:0:0:root:/root:/bin/sh\n")
    stack = os.path.join(work, "stack.toml")
    open(stack, "w").write(
        f'name = "bench-exec"\n[containers.app]\nimage = "dir:{fs}"\n'
        'command = ["/bin/sleep", "100000"]\nstop_signal = "SIGKILL"\n'
    )
    state = os.path.join(work, "state")
    sup = subprocess.Popen([rk, "--state-dir", state, "--data-dir", os.path.join(work, "data"), "up", stack],
                           stderr=subprocess.DEVNULL)
    sock = os.path.join(state, "bench-exec.sock")
    deadline = time.monotonic() + 20
    while not os.path.exists(sock) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)
    body = json.dumps({"command": ["/bin/true"]})
    times = []
    for i in range(n + 10):
        c = UnixConn(sock)
        t = time.monotonic()
        c.request("POST", "/v1/containers/app/exec", body, {"content-type": "application/json"})
        r = c.getresponse()
        out = r.read()
        dt = time.monotonic() - t
        c.close()
        if r.status != 200 or not out.rstrip().endswith(b'{"exit":0}'):
            sys.exit(f"exec failed: {r.status} {out[:300]!r}")
        if i >= 10:
            times.append(dt * 1000)
    times.sort()
    print(f"{rk}: exec of /bin/true, {n} runs: median {statistics.median(times):.2f} ms, "
          f"p90 {times[int(n * 0.9)]:.2f} ms, min {times[0]:.2f} ms")
finally:
    if sup:
        sup.terminate()
        sup.wait()
    shutil.rmtree(work, ignore_errors=True)
