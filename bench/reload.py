#!/usr/bin/env python3
"""Supervisor reaction times, whole process, as root:
- crash -> running again: SIGKILL a container (restart = always, no backoff)
  until the supervisor's state shows its new process;
- file saved -> changed container running: rename a new stack file over the
  old one (as editors do) until the recreated container runs;
compared with a cold start (`rkstack run ROOTFS -- /bin/true`). Medians of 20.
NET=1 puts the container on a bridge network (run it inside `unshare -n`):
the difference in crash -> running is the network setup per container.
IMAGE=oci runs it from an OCI layout of the same rootfs (imported once):
crash -> running then restarts it on its kept writable layer, and a save
recreates it from the stored image on a new one.
Needs busybox-static; builds a busybox rootfs in a temporary folder."""
import json, os, shutil, signal, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oci_layout import make_layout  # noqa: E402

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=root, check=True)
rk = os.path.join(root, "target/release/rkstack")
work = tempfile.mkdtemp(prefix="rkstack-bench.")
try:
    fs = os.path.join(work, "rootfs")
    os.makedirs(os.path.join(fs, "bin"))
    os.makedirs(os.path.join(fs, "etc"))
    shutil.copy("/bin/busybox", os.path.join(fs, "bin/busybox"))
    os.symlink("busybox", os.path.join(fs, "bin/sleep"))
    os.symlink("busybox", os.path.join(fs, "bin/true"))
    open(os.path.join(fs, "etc/passwd"), "w").write("root:x:0:0:root:/root:/bin/sh\n")
    for d in ["proc", "dev", "sys", "tmp"]:
        os.makedirs(os.path.join(fs, d))
    image = f"dir:{fs}"
    if os.environ.get("IMAGE") == "oci":
        make_layout(fs, os.path.join(work, "layout"))
        image = f"oci:{work}/layout:v1"
    stack = os.path.join(work, "stack.toml")

    def write(arg):
        tmp = stack + ".tmp"
        net = '[networks.n]\nsubnet = "10.199.0.0/24"\n' if os.environ.get("NET") else ""
        joins = 'networks = ["n"]\n' if net else ""
        open(tmp, "w").write(
            f'name = "bench-rl"\n{net}[containers.app]\n'
            f'image = "{image}"\ncommand = ["/bin/sleep", "{arg}"]\n'
            'restart = "always"\nstop_signal = "SIGKILL"\n'
            'restart_backoff = { initial = "0", max = "0" }\n' + joins
        )
        os.rename(tmp, stack)

    state = os.path.join(work, "state/bench-rl/state.json")

    def pid():
        try:
            return json.load(open(state))["containers"]["app"]["pid"]
        except Exception:
            return None

    def wait_new(old):
        while True:
            p = pid()
            if p and p != old:
                return p
            time.sleep(0.0005)

    write(1000)
    sup = subprocess.Popen([rk, "--state-dir", os.path.join(work, "state"), "--data-dir", os.path.join(work, "data"), "up", stack],
                           stderr=subprocess.DEVNULL)
    cur = wait_new(None)
    crash, save = [], []
    for i in range(20):
        t = time.monotonic()
        os.kill(cur, signal.SIGKILL)
        cur = wait_new(cur)
        crash.append(time.monotonic() - t)
    for i in range(20):
        t = time.monotonic()
        write(2000 + i)
        cur = wait_new(cur)
        save.append(time.monotonic() - t)
    sup.send_signal(signal.SIGTERM)
    sup.wait()
    cold = []
    for i in range(20):
        t = time.monotonic()
        subprocess.run([rk, "--state-dir", os.path.join(work, "state"), "run", fs, "--", "/bin/true"], check=True)
        cold.append(time.monotonic() - t)
    m = lambda v: statistics.median(v) * 1000
    print(f"cold start (rkstack run, whole process) {m(cold):.1f} ms")
    print(f"crash -> running again                  {m(crash):.1f} ms ({m(crash) / m(cold):.2f}x a cold start)")
    print(f"file saved -> new container running     {m(save):.1f} ms (cold start + {m(save) - m(cold):.1f} ms)")
finally:
    shutil.rmtree(work, ignore_errors=True)
