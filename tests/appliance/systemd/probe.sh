#!/bin/sh
# Checks rkstack@demo under systemd: "PROBE ok NAME" or "PROBE fail NAME:
# WHY" per check, then "PROBE done", then powers the machine off.
export PATH=/usr/local/bin:$PATH
. /etc/rkstack/probe-lib.sh
prop() { systemctl show -p "$1" --value rkstack@demo.service; }
unit=/sys/fs/cgroup$(prop ControlGroup)

# Type=notify: this runs after the unit is active, so the stack was up by then.
db=$(pid_of db); web=$(pid_of web)
if [ "$(prop Type)" = notify ] && [ "$(prop ActiveState)" = active ] && [ -n "$db" ] && [ -n "$web" ]; then
  ok active-after-ready
else
  fail active-after-ready "$(prop Type) $(prop ActiveState) $(rk ps 2>&1)"
fi

# Delegate=yes: rkstack in a supervisor leaf, containers beside it, inside the unit.
main=$(prop MainPID)
if [ "$(cat /proc/$main/cgroup)" = "0::$(prop ControlGroup)/supervisor" ]; then ok supervisor-leaf; else fail supervisor-leaf "$(cat /proc/$main/cgroup)"; fi
if [ "$(cat /proc/$db/cgroup)" = "0::$(prop ControlGroup)/db" ] && [ "$(cat $unit/db/memory.max)" = 67108864 ]; then
  ok containers-in-the-unit
else
  fail containers-in-the-unit "$(cat /proc/$db/cgroup) $(cat $unit/db/memory.max 2>&1)"
fi
if [ ! -e /sys/fs/cgroup/rkstack ]; then ok nothing-outside; else fail nothing-outside "$(ls /sys/fs/cgroup/rkstack)"; fi

# Native journal: rkstack's events with their fields; web's output (logging
# driver journald) line by line with its priority, and in its log file too.
jr() { journalctl --no-pager "$@" 2>&1; }
if jr -o verbose -u rkstack@demo EVENT=started CONTAINER=web | grep -q 'STACK=demo'; then
  ok journal-events
else
  fail journal-events "$(jr -o verbose -u rkstack@demo -n 20)"
fi
in_journal() { jr -o verbose CONTAINER_NAME=web STACK=demo | grep -q 'MESSAGE=web warns' && jr -o cat -t web -p 6 | grep -q 'web says hello'; }
if wait_for 10 in_journal && rk logs web 2>&1 | grep -q 'web says hello'; then
  ok journal-output
else
  fail journal-output "$(jr -o verbose CONTAINER_NAME=web -n 10) | $(rk logs web 2>&1 | tail -3)"
fi

# systemctl reload after an edit applies it; a broken file fails the reload and changes nothing.
sed -i 's/VERSION = "1"/VERSION = "2"/' /etc/rkstack/demo.toml
new_web() { p=$(pid_of web); [ -n "$p" ] && [ "$p" != "$web" ]; }
if systemctl reload rkstack@demo && wait_for 20 new_web && [ "$(pid_of db)" = "$db" ]; then
  ok reload
else
  fail reload "$(systemctl status rkstack@demo 2>&1 | tail -5)"
fi
web=$(pid_of web)
cp /etc/rkstack/demo.toml /tmp/demo.toml
echo 'bogus = [' >> /etc/rkstack/demo.toml
if ! systemctl reload rkstack@demo 2>/dev/null && [ "$(pid_of web)" = "$web" ] && [ "$(pid_of db)" = "$db" ] && [ "$(prop ActiveState)" = active ]; then
  ok broken-file-keeps-the-stack
else
  fail broken-file-keeps-the-stack "$(systemctl status rkstack@demo 2>&1 | tail -5)"
fi
cp /tmp/demo.toml /etc/rkstack/demo.toml

# The watchdog: a stopped loop gets the unit restarted; the containers are
# adopted (systemd 254+), or started anew where systemd cannot start the
# next supervisor beside them.
expect=$(cat /etc/rkstack/watchdog-expect)
kill -STOP "$main"
restarted() { m=$(prop MainPID); [ "$m" != "$main" ] && [ "$m" != 0 ] && [ "$(prop ActiveState)" = active ] && [ -n "$(pid_of db)" ] && [ -n "$(pid_of web)" ]; }
if ! wait_for 90 restarted; then
  fail watchdog-restart "$(systemctl status rkstack@demo 2>&1 | tail -8) $(rk ps 2>&1)"
elif [ "$expect" = adopt ] && { [ "$(pid_of db)" != "$db" ] || [ "$(pid_of web)" != "$web" ]; }; then
  fail watchdog-restart "containers restarted, not adopted: $(rk ps 2>&1)"
elif [ "$expect" = restart ] && [ "$(pid_of db)" = "$db" ]; then
  fail watchdog-restart "expected new containers: $(rk ps 2>&1)"
else
  ok watchdog-restart
  echo "PROBE watchdog: containers $([ "$(pid_of db)" = "$db" ] && echo adopted || echo started anew)"
fi
db=$(pid_of db); web=$(pid_of web)

# systemctl stop leaves nothing in the unit.
systemctl stop rkstack@demo
left=$(cat $(find "$unit" -name cgroup.procs 2>/dev/null) 2>/dev/null)
if [ -z "$left" ] && [ ! -e "/proc/$db" ] && [ ! -e "/proc/$web" ]; then ok stop-leaves-nothing; else fail stop-leaves-nothing "$left"; fi

echo "PROBE done"
systemctl poweroff
