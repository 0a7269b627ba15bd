#!/usr/bin/env bash
# Whole-process start-up benchmark: `rkstack run ROOTFS -- /bin/true` against
# `crun run` of an equivalent OCI bundle on the same busybox rootfs, and the
# floor of a bare `unshare` of all namespaces. Prints medians; the commands
# run in turn, one run of each per round (bench/interleave.py), so that a
# drifting machine slows them alike.
# Needs root, busybox-static and crun (installed when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-100}
need=()
command -v crun >/dev/null || need+=(crun)
[ -x /bin/busybox ] || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
cargo build --release --quiet
# The appliance build (fat LTO, size-optimised) that devices run.
cargo build --profile embedded --quiet
work=$(mktemp -d /tmp/rkstack-bench.XXXXXX)
# rkstack's state folder (a run's name lock) on a tmpfs,
# where a device has /run; this host's /run is on its disk.
state=$(mktemp -d /dev/shm/rkstack-bench.XXXXXX)
trap 'rm -rf "$work" "$state"' EXIT
mkdir -p "$work/rootfs/bin" "$work/rootfs/etc"
cp /bin/busybox "$work/rootfs/bin/"
ln -s busybox "$work/rootfs/bin/true"
ln -s busybox "$work/rootfs/bin/sh"
echo 'root:x:0:0:root:/root:/bin/sh' > "$work/rootfs/etc/passwd"

# crun: its default spec (namespaces, Docker-like caps and masks, no seccomp
# profile) with the same command. crun 1.8 refuses this host's hybrid cgroup
# layout, so it runs in a private mount namespace with the cgroup2 mount hidden.
(cd "$work" && crun spec >/dev/null 2>&1 || crun spec)
python3 - "$work/config.json" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
c["root"]["readonly"] = False
json.dump(c, open(p, "w"))
PY
cat > "$work/crun.sh" <<SH
#!/bin/sh
umount /sys/fs/cgroup/unified 2>/dev/null
cd "$work" && exec crun run "bench\$\$"
SH
chmod +x "$work/crun.sh"

python3 bench/interleave.py "$runs" "$work/out.json" \
  "rkstack=target/release/rkstack run $work/rootfs -- /bin/true" \
  "rkstack, state on tmpfs=target/release/rkstack --state-dir $state run $work/rootfs -- /bin/true" \
  "embedded build=target/embedded/rkstack run $work/rootfs -- /bin/true" \
  "embedded, state on tmpfs=target/embedded/rkstack --state-dir $state run $work/rootfs -- /bin/true" \
  "unshare floor=unshare --fork --pid --mount --uts --ipc --net --cgroup --mount-proc /bin/true"
# crun in a series of its own: each of its runs leaves the kernel work
# (the RCU grace period its cgroup move waits for, its groups' release)
# that lands in whatever runs next, and would slow the floor comparison.
python3 bench/interleave.py "$runs" "$work/crun.json" \
  "rkstack=target/release/rkstack run $work/rootfs -- /bin/true" \
  "crun=unshare -m --propagation private $work/crun.sh" \
  "crun wrapper floor=unshare -m --propagation private /bin/true"

# rkstack on pure cgroup v2 (its first process born in its group): the runs
# happen in a private mount namespace where this host's v1 mounts are hidden
# and the cgroup2 hierarchy is at /sys/fs/cgroup; the floor is measured there too.
cat > "$work/v2.sh" <<'SH'
#!/bin/sh
mount --make-rprivate / && umount -R /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup && exec "$@"
SH
chmod +x "$work/v2.sh"
unshare -m "$work/v2.sh" python3 bench/interleave.py "$runs" "$work/v2.json" \
  "rkstack on v2=target/release/rkstack run $work/rootfs -- /bin/true" \
  "rkstack, state on tmpfs, v2=target/release/rkstack --state-dir $state run $work/rootfs -- /bin/true" \
  "embedded build on v2=target/embedded/rkstack run $work/rootfs -- /bin/true" \
  "embedded, state on tmpfs, v2=target/embedded/rkstack --state-dir $state run $work/rootfs -- /bin/true" \
  "unshare floor on v2=unshare --fork --pid --mount --uts --ipc --net --cgroup --mount-proc /bin/true"
python3 - "$work/out.json" "$work/v2.json" "$work/crun.json" <<'PY'
import json, sys
sets = [{x["command"]: sorted(x["times"]) for x in json.load(open(f))["results"]} for f in sys.argv[1:]]
meds = [{k: v[len(v) // 2] * 1000 for k, v in s.items()} for s in sets]
for title, med in zip(["cgroup v1 (this host)", "cgroup v2"], meds[:2]):
    floor = next(v for k, v in med.items() if k.startswith("unshare floor"))
    print(title)
    for k, v in med.items():
        ratio = f"  {v / floor:.2f}x the floor" if not k.startswith(("unshare", "crun")) else ""
        print(f"  {k:32s} median {v:6.2f} ms{ratio}")
c = meds[2]
crun = c["crun"] - c["crun wrapper floor"]
print(f"beside crun (v1): rkstack {c['rkstack']:.2f} ms, crun without its wrapper {crun:.2f} ms;"
      f" rkstack / crun = {c['rkstack'] / crun:.2f}")
PY
