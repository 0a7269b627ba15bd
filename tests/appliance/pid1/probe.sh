#!/bin/sh
# Checks rkstack as PID 1 from the appliance's side (not in a container):
# prints "PROBE ok NAME" or "PROBE fail NAME: WHY" per check, then
# "PROBE done", and asks PID 1 to power the machine off.
export PATH=/bin
. /etc/rkstack/probe-lib.sh
restarts_of() { rk ps 2>/dev/null | awk -v n="$1" '$1 == n { print $4 }'; }
both_running() { [ -n "$(pid_of db)" ] && [ -n "$(pid_of web)" ]; }

if wait_for 60 both_running; then ok "stack-up"; else fail stack-up "$(rkstack ps 2>&1)"; fi

# Pure cgroup v2, mounted by rkstack.
if grep -q " /sys/fs/cgroup cgroup2 " /proc/mounts && ! grep -q " cgroup " /proc/mounts; then
  ok cgroup2
else
  fail cgroup2 "$(grep cgroup /proc/mounts)"
fi
check_limit() {
  got=$(cat "/sys/fs/cgroup/rkstack/demo/$1/$2" 2>&1)
  if [ "$got" = "$3" ]; then ok "limit-$1-$2"; else fail "limit-$1-$2" "want $3, got $got"; fi
}
check_limit db memory.max 67108864
check_limit db pids.max 64
check_limit db cpu.max "50000 100000"
check_limit web memory.max 33554432
check_limit web pids.max 32
check_limit web cpu.max "25000 100000"
# Each container's process is in its own cgroup.
db=$(pid_of db)
if grep -q "^0::/rkstack/demo/db$" "/proc/$db/cgroup"; then ok cgroup-of-db; else fail cgroup-of-db "$(cat /proc/$db/cgroup)"; fi

# A container killed comes back.
kill -9 "$db"
new_db() { p=$(pid_of db); [ -n "$p" ] && [ "$p" != "$db" ]; }
if wait_for 20 new_db && [ "$(restarts_of db)" = 1 ]; then ok restart; else fail restart "$(rkstack ps 2>&1)"; fi

# Orphans (double forks from outside any container) are reaped by PID 1.
i=0
while [ $i -lt 50 ]; do (sleep 0.2 &); i=$((i + 1)); done
sleep 2
# Zombies left to PID 1 (others are their parents' to reap: a container's
# shell between its child's exit and its wait, slow under emulation).
orphan_zombies() {
  n=0
  for s in /proc/[0-9]*/status; do
    if grep -q "^State:.*Z" "$s" 2>/dev/null && grep -q "^PPid:[[:space:]]*1$" "$s" 2>/dev/null; then
      n=$((n + 1))
    fi
  done
  echo $n
}
none_left() { [ "$(orphan_zombies)" = 0 ]; }
if wait_for 10 none_left; then ok orphans-reaped; else fail orphans-reaped "$(orphan_zombies) zombies of PID 1"; fi

# An edit of the stack file: web is recreated with the new value, db is not touched.
db=$(pid_of db)
web=$(pid_of web)
sed -i 's/VERSION = "1"/VERSION = "2"/' /etc/rkstack/stack.toml
new_web() { p=$(pid_of web); [ -n "$p" ] && [ "$p" != "$web" ]; }
if wait_for 20 new_web && [ "$(pid_of db)" = "$db" ]; then ok reload-only-what-changed; else fail reload-only-what-changed "$(rkstack ps 2>&1)"; fi
v=$(rkstack exec web -- /bin/sh -c 'echo $VERSION' 2>&1)
if [ "$v" = 2 ]; then ok exec-sees-new-env; else fail exec-sees-new-env "$v"; fi

# dm-verity: the image with its root hash runs; with a wrong one it is refused.
sealed_up() { [ -n "$(pid_of sealed)" ]; }
if wait_for 20 sealed_up && rk logs sealed 2>&1 | grep -q "sealed: verified"; then ok verity-runs; else fail verity-runs "$(rk inspect sealed 2>&1 | head -20)"; fi
refused() { rk inspect tampered 2>/dev/null | grep -q "does not match its verity root hash"; }
if wait_for 20 refused && ! rk logs tampered 2>&1 | grep -q "tampered: ran"; then ok verity-refuses; else fail verity-refuses "$(rk inspect tampered 2>&1 | head -20)"; fi
# Stopped, the container takes its verity and loop devices along.
rk stop sealed > /dev/null 2>&1
devices_gone() { ! ls /sys/block | grep -q "^dm-" && ! grep -qs app.sqfs /sys/block/loop*/loop/backing_file; }
if wait_for 10 devices_gone; then ok verity-devices-go; else fail verity-devices-go "$(ls /sys/block)"; fi

echo "PROBE done"
# SIGTERM to PID 1: the stack stops (web, then db) and the machine powers off.
kill -TERM 1
