# What both probes share (installed as /etc/rkstack/probe-lib.sh). Each
# check prints "PROBE ok NAME" or "PROBE fail NAME: WHY"; run.sh reads them
# from the serial console.
ok() { echo "PROBE ok $1"; }
fail() { echo "PROBE fail $1: $2"; }
# rk ARGS: the stack's rkstack CLI.
rk() { rkstack --stack demo "$@"; }
# pid_of NAME: the container's pid while `rkstack ps` shows it running.
pid_of() { rk ps 2>/dev/null | awk -v n="$1" '$1 == n && $2 == "running" { print $3 }'; }
# wait_for SECONDS COMMAND...: until the command succeeds.
wait_for() {
  t=$1; shift
  i=0
  while [ "$i" -lt $((t * 10)) ]; do
    "$@" && return 0
    sleep 0.1
    i=$((i + 1))
  done
  return 1
}
