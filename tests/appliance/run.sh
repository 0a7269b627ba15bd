#!/usr/bin/env bash
# Boots an appliance scenario in qemu (software emulation) and checks what
# its probe printed on the serial console.
#   run.sh pid1 [arm64]
#                    rkstack as the init of an initramfs image (amd64, or
#                    arm64 cross-built and emulated)
#   run.sh base SUITE
#                    only the Debian base of `systemd SUITE` (cached)
#   run.sh systemd [SUITE]
#                    rkstack@demo.service under systemd: Debian trixie
#                    (systemd 257, the default) or bookworm (systemd 252)
# Needs root (mknod), qemu-system-x86, cpio, binutils, busybox-static and
# apt's package lists (the kernel comes from Debian's cloud kernel package).
# Prints the console's tail and exits 1 when a check failed.
set -euo pipefail
trap 'echo "run.sh: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/tests/appliance
. "$HERE/lib.sh"

scenario=${1:?usage: run.sh pid1 | systemd [SUITE]}

# The static, minimal build the appliance runs (see the README; the
# release profile: the `embedded` one makes the same code smaller, and
# takes minutes longer to build).
static_rkstack() {
  local target=x86_64-unknown-linux-gnu
  local env=(LIBSECCOMP_LINK_TYPE=static LIBSECCOMP_LIB_PATH=/usr/lib/x86_64-linux-gnu)
  if [ "$ARCH" = arm64 ]; then
    # Cross-built: the rustup target, Debian's gcc-aarch64-linux-gnu and
    # libseccomp-dev:arm64.
    target=aarch64-unknown-linux-gnu
    env=(LIBSECCOMP_LINK_TYPE=static LIBSECCOMP_LIB_PATH=/usr/lib/aarch64-linux-gnu
      CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
      CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc)
  fi
  (cd "$ROOT" && env "${env[@]}" RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --quiet --release --no-default-features --target $target --target-dir target/static) >&2
  echo "$ROOT/target/static/$target/release/rkstack"
}

# Checks the console $1: every "PROBE ok" in $2 present, no "PROBE fail",
# "PROBE done"; then the lines in $3 (one pattern a line) in that order.
verify() {
  local raw=$1 want=$2 order=$3 bad=0 at=0 n console
  # The serial console ends its lines with CR LF.
  console=$raw.txt
  tr -d '\r' < "$raw" > "$console"
  for c in $want; do
    grep -q "PROBE ok $c\$" "$console" || { echo "check $c: not passed" >&2; bad=1; }
  done
  if grep -q "PROBE fail" "$console"; then grep "PROBE fail" "$console" >&2; bad=1; fi
  grep -q "PROBE done" "$console" || { echo "the probe did not finish" >&2; bad=1; }
  while IFS= read -r pat; do
    [ -n "$pat" ] || continue
    n=$(tail -n +$((at + 1)) "$console" | grep -n -m1 -- "$pat" | cut -d: -f1 || true)
    if [ -z "$n" ]; then
      echo "expected, in this order: '$pat' (after line $at)" >&2; bad=1
    else
      at=$((at + n))
    fi
  done <<< "$order"
  if [ $bad = 1 ]; then
    echo "---- console (last 60 lines) ----" >&2
    tail -n 60 "$console" >&2
    return 1
  fi
}

# Debian $1 with systemd, from the machine's configured mirror, made once
# (under $CACHE/$1).
make_base() {
  local suite=$1 base=$CACHE/$1 mirror
  if [ ! -x "$base/sbin/init" ]; then
    # The first Debian archive apt uses (deb822 URIs: or one-line deb).
    mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null |
      sed -n -e 's|^URIs:[[:space:]]*\([^[:space:]]*/debian/\{0,1\}\)[[:space:]]*$|\1|p' \
        -e 's|^deb[[:space:]]\{1,\}\(\[[^]]*\][[:space:]]\{1,\}\)\{0,1\}\([^[:space:]]*/debian/\{0,1\}\)[[:space:]].*|\2|p' |
      head -1 || true)
    rm -rf "$base.tmp"
    echo "debootstrap $suite from ${mirror:-http://deb.debian.org/debian}" >&2
    debootstrap --variant=minbase --include=systemd,systemd-sysv "$suite" "$base.tmp" "${mirror:-http://deb.debian.org/debian}" > "$CACHE/debootstrap-$suite.log" 2>&1 || {
      tail -n 20 "$CACHE/debootstrap-$suite.log" >&2; exit 1; }
    rm -rf "$base.tmp/var/cache/apt/archives"/*.deb
    mv "$base.tmp" "$base"
  fi
}

case $scenario in
base)
  # Only the Debian base of a systemd scenario (made ahead, beside other work).
  make_base "${2:?run.sh base SUITE}"
  ;;
pid1)
  ARCH=${2:-amd64}
  fetch_kernel
  bin=$(static_rkstack)
  stage=$CACHE/pid1.root
  rm -rf "$stage" && mkdir -p "$stage"
  install_busybox "$stage"
  install_modules "$stage" loop squashfs overlay dm_verity veth bridge
  cp "$bin" "$stage/bin/rkstack"
  cp "$HERE/pid1/init" "$stage/init"
  cp "$HERE/pid1/probe.sh" "$stage/bin/probe.sh"
  mkdir -p "$stage/etc/rkstack"
  # A squashfs image of busybox and its dm-verity hash tree.
  install_busybox "$CACHE/app.root"
  mkdir -p "$stage/images"
  mksquashfs "$CACHE/app.root" "$stage/images/app.sqfs" -quiet -noappend -no-progress >&2
  rm -rf "$CACHE/app.root"
  hash=$(veritysetup format "$stage/images/app.sqfs" "$stage/images/app.sqfs.verity" | sed -n 's/^Root hash:[[:space:]]*//p')
  sed -e "s/@ROOT_HASH@/$hash/" -e "s/@WRONG_HASH@/$(echo "$hash" | tr '0-9a-f' 'f0-9a-e')/" \
    "$HERE/pid1/stack.toml" > "$stage/etc/rkstack/stack.toml"
  cp "$HERE/probe-lib.sh" "$stage/etc/rkstack/probe-lib.sh"
  # The containers' root: busybox.
  install_busybox "$stage/rootfs"
  pack_initramfs "$stage" "$CACHE/pid1.cpio"
  console=$CACHE/pid1-$ARCH.console
  for attempt in 1 2; do
    : > "$console"
    started=$(date +%s)
    if ! boot "$CACHE/pid1.cpio" "rdinit=/init" "$console" 300; then
      echo "the machine did not power off within 300 s" >&2
      tail -n 60 "$console" >&2
      exit 1
    fi
    echo "pid1 ($ARCH): booted, checked and powered off in $(( $(date +%s) - started )) s"
    [ $attempt = 1 ] && kernel_race "$console" || break
  done
  verify "$console" \
    "stack-up verity-runs verity-refuses verity-devices-go cgroup2 limit-db-memory.max limit-db-pids.max limit-db-cpu.max limit-web-memory.max limit-web-pids.max limit-web-cpu.max cgroup-of-db restart orphans-reaped reload-only-what-changed exec-sees-new-env" \
    "PROBE done
web: stopped
db: stopped
stack stopped
rkstack: powering off
reboot: Power down"
  ;;
systemd)
  suite=${2:-trixie}
  fetch_kernel
  bin=$(static_rkstack)
  make_base "$suite"
  base=$CACHE/$suite
  stage=$CACHE/systemd-$suite.root
  rm -rf "$stage" && cp -a "$base" "$stage"
  install -m 755 "$bin" "$stage/usr/local/bin/rkstack"
  install -m 644 "$ROOT/contrib/systemd/rkstack@.service" "$stage/etc/systemd/system/rkstack@.service"
  mkdir -p "$stage/etc/systemd/system/multi-user.target.wants" "$stage/etc/systemd/system/rkstack@demo.service.d"
  ln -sf /etc/systemd/system/rkstack@.service "$stage/etc/systemd/system/multi-user.target.wants/rkstack@demo.service"
  install -m 644 "$HERE/systemd/test.conf" "$stage/etc/systemd/system/rkstack@demo.service.d/test.conf"
  mkdir -p "$stage/etc/rkstack"
  install -m 644 "$HERE/systemd/demo.toml" "$stage/etc/rkstack/demo.toml"
  install -m 644 "$HERE/probe-lib.sh" "$stage/etc/rkstack/probe-lib.sh"
  install -m 755 "$HERE/systemd/probe.sh" "$stage/usr/local/bin/probe.sh"
  install -m 644 "$HERE/systemd/probe.service" "$stage/etc/systemd/system/probe.service"
  ln -sf /etc/systemd/system/probe.service "$stage/etc/systemd/system/multi-user.target.wants/probe.service"
  # No logins on the console the probe writes to.
  for u in serial-getty@ttyS0.service getty@tty1.service; do
    ln -sf /dev/null "$stage/etc/systemd/system/$u"
  done
  echo appliance > "$stage/etc/hostname"
  # systemd before 254 cannot start the next supervisor beside running
  # containers: there a watchdog restart starts them anew.
  sd=$(chroot "$stage" /usr/lib/systemd/systemd --version | sed -n '1s/^systemd \([0-9]*\).*/\1/p')
  if [ "${sd:-0}" -ge 254 ]; then echo adopt; else echo restart; fi > "$stage/etc/rkstack/watchdog-expect"
  install_busybox "$stage/srv/rootfs"
  pack_initramfs "$stage" "$CACHE/systemd.cpio"
  rm -rf "$stage"
  console=$CACHE/systemd-$suite.console
  for attempt in 1 2; do
    : > "$console"
    started=$(date +%s)
    if ! MEM=2048 boot "$CACHE/systemd.cpio" "rdinit=/sbin/init" "$console" 400; then
      echo "the machine did not power off within 400 s" >&2
      tr -d '\r' < "$console" | tail -n 60 >&2
      exit 1
    fi
    echo "systemd $sd ($suite): booted, checked and powered off in $(( $(date +%s) - started )) s"
    [ $attempt = 1 ] && kernel_race "$console" || break
  done
  verify "$console" \
    "active-after-ready supervisor-leaf containers-in-the-unit nothing-outside journal-events journal-output reload broken-file-keeps-the-stack watchdog-restart stop-leaves-nothing" \
    "PROBE done
reboot: Power down"
  ;;
*)
  echo "unknown scenario $scenario" >&2; exit 2;;
esac
