# Shared by the appliance scenarios: the kernel (a Debian cloud kernel
# package, unpacked, not installed), its modules, initramfs packing and
# booting qemu under software emulation. Sourced by run.sh.

# Everything made is cached here, between runs on the same machine.
CACHE=${APPLIANCE_CACHE:-$ROOT/target/appliance}
mkdir -p "$CACHE"

# The machine's architecture: amd64 (x86_64) or arm64 (aarch64, booted
# under emulation; its packages need `dpkg --add-architecture arm64`).
ARCH=${ARCH:-amd64}

# The kernel: vmlinuz and its modules under $CACHE/kernel/<version>.
fetch_kernel() {
  local pkg meta=linux-image-cloud-$ARCH
  find_pkg() { apt-cache depends "$meta:$ARCH" 2>/dev/null | sed -n 's/.*Depends: \(linux-image-[0-9][^:]*\).*/\1/p' | head -1; }
  pkg=$(find_pkg)
  if [ -z "$pkg" ]; then
    apt-get update -qq >&2 || true
    pkg=$(find_pkg)
  fi
  [ -n "$pkg" ] || { echo "no $meta in apt's lists (apt-get update? dpkg --add-architecture $ARCH?)" >&2; return 1; }
  KVER=${pkg#linux-image-}
  KDIR=$CACHE/kernel/$KVER
  if [ ! -f "$KDIR/vmlinuz" ]; then
    local tmp=$KDIR.tmp.$$
    rm -rf "$tmp" && mkdir -p "$tmp"
    (cd "$tmp" && apt-get download "$pkg:$ARCH" >/dev/null 2>&1 && dpkg -x ./*.deb x) || {
      echo "could not download $pkg" >&2; rm -rf "$tmp"; return 1; }
    mkdir -p "$tmp/k"
    mv "$tmp/x/boot/vmlinuz-$KVER" "$tmp/k/vmlinuz"
    mv "$tmp/x/lib/modules/$KVER" "$tmp/k/modules"
    # Whole or absent: another run may be fetching it too.
    mv -T "$tmp/k" "$KDIR" 2>/dev/null || true
    rm -rf "$tmp"
  fi
}

# The .ko files of the named modules and everything they depend on, in
# load order (dependencies first), one path per line.
modules_for() {
  local seen="" out=""
  _visit() {
    local m=$1 f dep
    case " $seen " in *" $m "*) return;; esac
    seen="$seen $m"
    f=$(find "$KDIR/modules/kernel" -name "$m.ko" -o -name "${m//_/-}.ko" | head -1)
    [ -n "$f" ] || { echo "module $m: not in $KVER (built in?)" >&2; return 0; }
    for dep in $(strings -a "$f" | sed -n 's/^depends=//p' | tr ',' ' '); do
      _visit "$dep"
    done
    out="$out $f"
  }
  for m in "$@"; do _visit "$m"; done
  printf '%s\n' $out
}

# Copies the modules (with dependencies) into $1/lib/modules and writes
# $1/etc/modules.order, the insmod order.
install_modules() {
  local root=$1; shift
  mkdir -p "$root/lib/modules" "$root/etc"
  : > "$root/etc/modules.order"
  for f in $(modules_for "$@"); do
    cp "$f" "$root/lib/modules/"
    echo "/lib/modules/$(basename "$f")" >> "$root/etc/modules.order"
  done
}

# The static busybox of $ARCH: the host's, or Debian's busybox-static of
# that architecture, unpacked once.
busybox_bin() {
  if [ "$ARCH" = amd64 ]; then command -v busybox; return; fi
  local bb=$CACHE/busybox-$ARCH/bin/busybox
  if [ ! -x "$bb" ]; then
    local tmp=$CACHE/busybox-$ARCH.tmp.$$
    mkdir -p "$tmp"
    (cd "$tmp" && apt-get download "busybox-static:$ARCH" >/dev/null 2>&1 && dpkg -x ./*.deb x) || {
      echo "could not download busybox-static:$ARCH" >&2; rm -rf "$tmp"; return 1; }
    mkdir -p "$CACHE/busybox-$ARCH/bin"
    mv "$tmp/x/bin/busybox" "$bb"
    rm -rf "$tmp"
  fi
  echo "$bb"
}

# A root with busybox and its applets: $1.
install_busybox() {
  local root=$1
  mkdir -p "$root/bin" "$root/sbin" "$root/etc" "$root/proc" "$root/sys" "$root/dev" "$root/tmp" "$root/run"
  cp "$(busybox_bin)" "$root/bin/busybox"
  # The applet list from the host's busybox (the same package).
  for a in $(busybox --list); do
    [ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"
  done
}

# Packs folder $1 as a newc cpio at $2 (with /dev/console for the init's
# output).
pack_initramfs() {
  local root=$1 out=$2
  mkdir -p "$root/dev"
  [ -e "$root/dev/console" ] || mknod -m 600 "$root/dev/console" c 5 1
  [ -e "$root/dev/null" ] || mknod -m 666 "$root/dev/null" c 1 3
  (cd "$root" && find . -print0 | cpio --null -o -H newc --quiet) > "$out.tmp"
  mv "$out.tmp" "$out"
}

# Boots kernel + initramfs $1 with kernel arguments $2; the serial console
# goes to $3. Waits for the machine to power off, at most $4 seconds.
# MEM: the machine's memory in MiB.
boot() {
  local initrd=$1 append=$2 console=$3 limit=$4
  local qemu=(qemu-system-x86_64 -machine q35 -cpu max) tty=ttyS0
  if [ "$ARCH" = arm64 ]; then
    qemu=(qemu-system-aarch64 -machine virt -cpu max)
    tty=ttyAMA0
  fi
  timeout "$limit" "${qemu[@]}" -smp 2 -m "${MEM:-768}" \
    -nographic -no-reboot -nic none \
    -kernel "$KDIR/vmlinuz" -initrd "$initrd" \
    -append "console=$tty panic=-1 $append" \
    -serial "file:$console" -monitor none -display none \
    </dev/null >/dev/null 2>&1
}

# Whether the guest kernel oopsed in its memcg-aware list_lru (console $1):
# a race in Linux before 6.13 between adding an object to a cgroup's LRU
# and that memory cgroup going offline (the xarray slot is cleared while
# the object still names the cgroup; upstream reworked list_lru in 6.13).
# It is the kernel's, not the probe's: the scenario boots once more, and
# says so with the oops' first lines.
kernel_race() {
  local console=$1
  tr -d '\r' < "$console" | grep -q 'Call trace:\|Call Trace:' || return 1
  tr -d '\r' < "$console" | grep -A3 'Call trace:\|Call Trace:' | grep -q 'list_lru_add' || return 1
  echo "the guest kernel oopsed in list_lru_add (a memcg race of kernels before 6.13); booting again:" >&2
  tr -d '\r' < "$console" | grep -m1 -B2 -A8 'Call trace:\|Call Trace:' >&2
  return 0
}
