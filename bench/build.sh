#!/usr/bin/env bash
# rkstack build against buildah (Debian's, 1.28), side by side: one
# multi-stage Containerfile (COPY, several RUNs, ENV, USER, CMD) built by
# both from the same base (a busybox OCI layout made here), each with its
# own fresh store. Times a cold build, a rebuild with nothing changed and
# a rebuild after one copied file changed; then compares the two root
# filesystems (every path's type, mode, owner and content) as a container
# of each image sees them. Needs root; installs buildah with apt-get if
# it is missing (the tests do not need it).
#   bench/build.sh            # ROUNDS=3 by default: the best of 3 per figure
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
command -v buildah >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah >/dev/null; }
cargo build --release -q
RK=$PWD/target/release/rkstack
# Lowercase: buildah names an oci: image after its path.
W=/tmp/rk-bench-build-$$
rm -rf "$W" && mkdir -p "$W"
# buildah leaves its storage's overlayfs mounts behind when a step fails.
cleanup() {
  mount | awk -v w="$W" 'index($3, w) == 1 { print $3 }' | sort -r | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
  [ -n "${KEEP:-}" ] || rm -rf "$W"
}
trap cleanup EXIT
BB=$(command -v busybox)

# The base: a busybox root as a one-layer OCI layout (made by rkstack
# build from scratch, which gives its config the layer's diff_id).
R=$W/base-ctx/root
mkdir -p "$R/bin" "$R/etc" "$R/tmp"
cp "$BB" "$R/bin/busybox"
for a in sh ls cat echo mkdir cp rm sed find stat md5sum sort id true sleep chmod chown gzip tar wc cut; do
  ln -s busybox "$R/bin/$a"
done
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$R/etc/passwd"
printf 'root:x:0:\n' > "$R/etc/group"
printf 'hello\n' > "$R/etc/motd"
chmod 1777 "$R/tmp"
printf 'FROM scratch\nCOPY root/ /\n' > "$W/base-ctx/Containerfile"
"$RK" --data-dir "$W/base-data" --state-dir "$W/base-state" build --output "oci:$W/base:base" "$W/base-ctx" >/dev/null 2>&1

# The context: an app of 300 small files and 4 MiB of data.
C=$W/ctx
mkdir -p "$C/app/src" "$C/data"
for i in $(seq 1 300); do printf 'line %s\n' "$i" > "$C/app/src/f$i.txt"; done
head -c 4194304 /dev/urandom > "$C/data/blob.bin"
printf 'node_modules\n*.tmp\n' > "$C/.dockerignore"
touch "$C/app/ignored.tmp"
cat > "$C/Containerfile" <<EOF
FROM oci:$W/base:base AS build
RUN mkdir -p /out && for f in /bin/*; do echo "\$f" >> /out/list; done
COPY app/ /src/app/
RUN cat /src/app/src/*.txt | wc -l > /out/lines && gzip -c /out/list > /out/list.gz

FROM oci:$W/base:base
ENV APP_HOME=/srv/app LANG=C.UTF-8
RUN echo 'app:x:1000:1000:app:/srv/app:/bin/sh' >> /etc/passwd && echo 'app:x:1000:' >> /etc/group && mkdir -p /srv/app
WORKDIR /srv/app
COPY --from=build /out/ ./out/
COPY data/ ./data/
COPY app/ ./app/
RUN rm -f /etc/motd; chown -R app:app /srv/app && echo ready > /srv/app/state
USER app
CMD ["/bin/cat", "/srv/app/state"]
EOF

now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.2f}')"; }
best() { sort -n | head -1; }

rk_build() { "$RK" --data-dir "$W/rk-data" --state-dir "$W/rk-state" build -t bench:1 "$C" >/dev/null 2>&1; }
bah() { buildah --root "$W/bah-root" --runroot "$W/bah-run" --storage-driver overlay "$@"; }
bah_build() { bah bud --quiet --isolation chroot --layers -t bench:1 -f "$C/Containerfile" "$C" >/dev/null 2>&1; }

declare -A T
for tool in rk bah; do
  for kind in cold same one; do
    for r in $(seq 1 "$ROUNDS"); do
      if [ "$kind" = cold ]; then
        rm -rf "$W/rk-data" "$W/rk-state"
        bah rmi -a -f >/dev/null 2>&1 || true
        rm -rf "$W/bah-root" "$W/bah-run"
      fi
      [ "$kind" = one ] && printf 'changed %s\n' "$r$RANDOM" > "$C/app/src/f7.txt"
      t0=$(now)
      if [ "$tool" = rk ]; then rk_build; else bah_build; fi
      t1=$(now)
      echo "$(secs "$t0" "$t1")" >> "$W/$tool-$kind"
    done
    T[$tool-$kind]=$(best < "$W/$tool-$kind")
  done
done

printf '%-34s %10s %10s %8s\n' "build of the same Containerfile" "rkstack" "buildah" "ratio"
for kind in cold same one; do
  case $kind in cold) what="cold (empty store)";; same) what="again, nothing changed";; one) what="again, one copied file changed";; esac
  printf '%-34s %9ss %9ss %8s\n' "$what" "${T[rk-$kind]}" "${T[bah-$kind]}" \
    "$(python3 -c "print(f'{${T[rk-$kind]} / ${T[bah-$kind]}:.2f}x')")"
done

# The two root filesystems, as a container of each image lists them.
"$RK" --data-dir "$W/rk-data" --state-dir "$W/rk-state" build -t bench:1 --output "oci:$W/rk-out:bench" "$C" >/dev/null 2>&1
bah push --quiet bench:1 "oci:$W/bah-out:bench" >/dev/null 2>&1
LIST='cd / && find / -xdev ! -path /proc ! -path /sys ! -path /dev | sort | while read -r f; do s=$(stat -c "%F %a %u:%g" "$f"); if [ -f "$f" ] && [ ! -L "$f" ]; then s="$s $(md5sum < "$f" | cut -c1-32)"; fi; echo "$f $s"; done'
for who in rk bah; do
  "$RK" --data-dir "$W/rk-data" --state-dir "$W/rk-state" run --user 0 --name "cmp-$who-$$" "oci:$W/$who-out:bench" -- /bin/sh -c "$LIST" > "$W/$who.list"
done
if diff -u "$W/bah.list" "$W/rk.list" > "$W/fs.diff"; then
  echo "root filesystems: the same ($(wc -l < "$W/rk.list") paths: type, mode, owner, content)"
else
  echo "root filesystems: $(wc -l < "$W/rk.list") paths in rkstack's, $(wc -l < "$W/bah.list") in buildah's; they differ in (- buildah, + rkstack):"
  grep '^[-+][^-+]' "$W/fs.diff" | head -40
fi
