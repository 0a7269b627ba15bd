#!/usr/bin/env python3
"""Where a start's time goes: `rkstack run ROOTFS -- /bin/true`, N times,
each under `strace -f -ttt --seccomp-bpf` tracing only the calls that mark
a phase (so the others run at full speed; the ~30 traced prctl calls of
the capability drop add their own stops), and once per run without strace
for the real total. Prints the median time from rkstack's exec to each
mark, the median gap between marks, and how many cgroup folders each start
makes and removes.

    N=50 python3 bench/start-timeline.py       (root; RK=path for another build)
"""
import os, re, shutil, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(__file__))
from unix_http import busybox_rootfs, rkstack_binary

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N = int(os.environ.get("N", "50"))
CALLS = "execve,clone,clone3,unshare,pivot_root,umount2,seccomp,prctl,exit_group,mkdir,mkdirat,rmdir"

# (label, test on one strace line) in the order a start goes through them.
MARKS = [
    ("rkstack starts", lambda l: "execve(" in l and "rkstack" in l),
    ("cgroups made, stage forked", lambda l: ("clone(" in l or "clone3(" in l) and "CLONE_NEW" not in l),
    ("first process cloned into its namespaces", lambda l: ("clone(" in l or "clone3(" in l) and "CLONE_NEWPID" in l),
    ("root assembled, pivot_root", lambda l: "pivot_root(" in l),
    ("old root detached", lambda l: "umount2(" in l),
    ("cgroup namespace, then identity and capabilities", lambda l: "unshare(CLONE_NEWCGROUP" in l),
    ("seccomp filter loaded", lambda l: "PR_SET_SECCOMP" in l or "seccomp(" in l),
    ("the command exec'd", lambda l: "execve(\"/bin/true\"" in l),
    ("the command exited", lambda l: "exit_group(" in l and "<unfinished" not in l),
    ("rkstack exited", None),
]


def one(rk, fs, out):
    name = f"tl{os.getpid()}x{time.monotonic_ns() % 10**9}"
    cmd = ["strace", "-f", "-ttt", "-qq", "--seccomp-bpf", "-e", f"trace={CALLS}", "-o", out,
           rk, "run", "--name", name, fs, "--", "/bin/true"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lines = [l for l in open(out) if re.match(r"^\d+\s+\d+\.\d+", l)]
    t = lambda l: float(l.split()[1])
    start = t(lines[0])
    found, rest = {}, lines
    for label, test in MARKS[1:-1]:
        for i, l in enumerate(rest):
            if test(l):
                found[label] = (t(l) - start) * 1000
                rest = rest[i + 1:]
                break
    found["rkstack exited"] = (t(lines[-1]) - start) * 1000
    cg = lambda call: sum(1 for l in lines if f"{call}(\"/sys/fs/cgroup" in l or
                          (f"{call}at(" in l and "/sys/fs/cgroup" in l))
    return found, cg("mkdir"), cg("rmdir")


def plain(rk, fs):
    name = f"tp{os.getpid()}x{time.monotonic_ns() % 10**9}"
    t = time.monotonic()
    subprocess.run([rk, "run", "--name", name, fs, "--", "/bin/true"], check=True)
    return (time.monotonic() - t) * 1000


def main():
    if not shutil.which("strace"):
        sys.exit("needs strace (apt-get install strace)")
    rk = rkstack_binary(ROOT)
    work = tempfile.mkdtemp(prefix="rkstack-timeline.")
    try:
        fs = os.path.join(work, "rootfs")
        busybox_rootfs(fs, applets=("true", "sh"))
        runs, mk, rm, totals = [], [], [], []
        for i in range(N):
            f, m, r = one(rk, fs, os.path.join(work, "trace"))
            runs.append(f)
            mk.append(m)
            rm.append(r)
            totals.append(plain(rk, fs))
        print(f"rkstack run ROOTFS -- /bin/true, {N} runs: whole start without strace, median "
              f"{statistics.median(totals):.2f} ms")
        print(f"{'median ms from exec':>20}  {'gap':>6}  phase (under strace)")
        prev = 0.0
        for label, _ in MARKS[1:]:
            xs = [r[label] for r in runs if label in r]
            if not xs:
                print(f"{'-':>20}  {'':>6}  {label} (not seen)")
                continue
            m = statistics.median(xs)
            print(f"{m:>20.2f}  {m - prev:>6.2f}  {label}")
            prev = m
        print(f"cgroup folders per start: {statistics.median(mk):.0f} made, "
              f"{statistics.median(rm):.0f} removed")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
