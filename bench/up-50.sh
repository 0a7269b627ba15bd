#!/usr/bin/env bash
# Supervisor benchmark: `rkstack up -d` of a 50-container stack (busybox
# sleep) until every container runs, its stop (SIGTERM to the supervisor
# until it has exited, every container stopped), and the supervisor's RSS
# with the 50 running; against 50 `crun run -d` and 50 `crun delete -f` on
# the same rootfs. Needs root, busybox-static and crun.
#   N=1000        that many containers (default 50)
#   NET=1         all of them on one bridge network; rkstack then runs in a
#                 network namespace of its own (unshare -n), so the bench
#                 makes no bridge on the host, and crun is not run
#   BIN=path      another rkstack binary (to compare builds)
#   TMPDIR=dir    where the state and data go (default /tmp; /dev/shm
#                 takes the disk's inode allocation out of the figures)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${N:-50}
net=${NET:-0}
if [ -z "${BIN:-}" ]; then cargo build --release --quiet; fi
bin=${BIN:-$PWD/target/release/rkstack}
work=$(mktemp -d "${TMPDIR:-/tmp}/rkstack-bench.XXXXXX")
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$work/rootfs/bin" "$work/rootfs/etc"
cp /bin/busybox "$work/rootfs/bin/"
ln -s busybox "$work/rootfs/bin/sleep"
echo 'root:x:0:0:root:/root:/bin/sh' > "$work/rootfs/etc/passwd"
{
  echo 'name = "bench50"'
  echo '[defaults]'
  echo "image = \"dir:$work/rootfs\""
  echo 'command = ["/bin/sleep", "1000"]'
  echo 'stop_signal = "SIGKILL"'
  if [ "$net" = 1 ]; then printf '[networks.n]\nsubnet = "10.77.0.0/20"\n'; fi
  for i in $(seq 1 "$n"); do
    echo "[containers.c$i]"
    if [ "$net" = 1 ]; then echo 'networks = ["n"]'; fi
  done
} > "$work/stack.toml"
ms() { python3 -c 'import time; print(time.monotonic_ns() // 1000)'; }

t0=$(ms)
if [ "$net" = 1 ]; then
  out=$(unshare -n "$bin" --state-dir "$work/state" --data-dir "$work/data" up -d "$work/stack.toml")
else
  out=$("$bin" --state-dir "$work/state" --data-dir "$work/data" up -d "$work/stack.toml")
fi
t1=$(ms)
sup=$(echo "$out" | sed -n 's/.*supervisor pid \([0-9]*\).*/\1/p')
rss=$(awk '/VmRSS/ {print $2}' /proc/"$sup"/status)
if [ "$n" -ge 200 ]; then
  # How a start's cost grows with the stack: the gaps between consecutive
  # `started` events, the first hundred against the last (the journal keeps
  # the newest 1,000 events).
  curl -s --max-time 2 --unix-socket "$work/state/bench50.sock" "http://rkstack/v1/events?since=0" | python3 -c '
import datetime, json, sys
t = [datetime.datetime.fromisoformat(e["time"].replace("Z", "+00:00")).timestamp()
     for e in map(json.loads, sys.stdin) if e["kind"] == "started"]
g = [(b - a) * 1000 for a, b in zip(t, t[1:])]
if len(g) >= 200:
    print(f"per start: {sum(g[:100]) / 100:.1f} ms for the first hundred, {sum(g[-100:]) / 100:.1f} ms for the last ({len(t)} starts)")
' || true
fi
fds=$(ls /proc/"$sup"/fd | wc -l); [ -n "${FDS:-}" ] && ls -l /proc/"$sup"/fd | awk "{print \$11}" | sed "s/[0-9]*//g" | sort | uniq -c | sort -rn | head
t2=$(ms)
kill -TERM "$sup"
# Until it has exited (a zombie waiting for init to reap it has exited too).
while [ -e /proc/"$sup" ] && ! grep -q ') Z ' /proc/"$sup"/stat 2>/dev/null; do sleep 0.002; done
t3=$(ms)
echo "rkstack: up of $n containers$([ "$net" = 1 ] && echo ' on one bridge') $(( (t1 - t0) / 1000 )) ms, down $(( (t3 - t2) / 1000 )) ms, supervisor RSS ${rss} KiB and $fds descriptors with $n running"

if [ "$net" != 1 ] && command -v crun >/dev/null; then
  (cd "$work" && crun spec >/dev/null 2>&1 || true)
  python3 - "$work/config.json" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/sleep", "1000"]
json.dump(c, open(p, "w"))
PY
  cat > "$work/crun.sh" <<SH
#!/bin/sh
umount /sys/fs/cgroup/unified 2>/dev/null
cd "$work"
a=\$(python3 -c 'import time; print(time.monotonic_ns() // 1000)')
for i in \$(seq 1 $n); do crun run -d "b\$\$-\$i" >/dev/null; done
b=\$(python3 -c 'import time; print(time.monotonic_ns() // 1000)')
for i in \$(seq 1 $n); do crun delete -f "b\$\$-\$i"; done
c=\$(python3 -c 'import time; print(time.monotonic_ns() // 1000)')
echo "crun: $n × run -d \$(( (b - a) / 1000 )) ms, $n × delete -f \$(( (c - b) / 1000 )) ms"
SH
  chmod +x "$work/crun.sh"
  unshare -m --propagation private "$work/crun.sh"
fi
