#!/bin/sh
# Run in the Dockerfile's distroless-root stage: copies into OUT what the distroless variant needs at run time and
# nothing else: node, iptables-restore/ip6tables-restore (nft backend, for the remora-init container) with their
# extensions, /usr/bin/env (the `remora` symlink's "#!/usr/bin/env -S node" line; not a shell), the shared libraries
# all of them load (found with ldd), and a minimal /etc (users root and remora 1337, nsswitch). No shell, no apt.
#   sh scripts/distroless-root.sh OUT
set -eu
OUT="${1:?usage: distroless-root.sh OUT}"
LIBDIR=/usr/lib/x86_64-linux-gnu
[ -d "$LIBDIR" ] || LIBDIR="/usr/lib/$(uname -m)-linux-gnu"

mkdir -p "$OUT/usr/bin" "$OUT/usr/sbin" "$OUT/usr/local/bin" "$OUT/etc" "$OUT/tmp" "$OUT/run" "$OUT/app"
chmod 1777 "$OUT/tmp"
# Debian 12 has merged /usr: keep its top-level links so that paths in ELF headers (/lib64/ld-linux-x86-64.so.2) hold.
for d in bin sbin lib lib64; do if [ -L "/$d" ]; then ln -s "$(readlink "/$d")" "$OUT/$d"; fi; done

# copy FILE: the file at its real path, and every symlink on the way to it, as in the build image. Directories are
# resolved first, so nothing is copied below a top-level link (/lib64/ld-linux… lands in /usr/lib64).
copy() {
  p="$1"
  while :; do
    p="$(readlink -f "$(dirname "$p")")/$(basename "$p")"
    mkdir -p "$OUT$(dirname "$p")"
    if [ ! -L "$p" ]; then
      [ -e "$OUT$p" ] || cp -p "$p" "$OUT$p"
      return 0
    fi
    [ -L "$OUT$p" ] || cp -P "$p" "$OUT$p"
    t="$(readlink "$p")"
    case "$t" in /*) p="$t" ;; *) p="$(dirname "$p")/$t" ;; esac
  done
}
# with_libs FILE: the file and the shared libraries it loads.
with_libs() {
  copy "$1"
  ldd "$1" 2>/dev/null | awk '/=> \//{print $3} /^\t\/[^ ]+ \(/{print $1}' | while read -r lib; do copy "$lib"; done
}

with_libs /usr/local/bin/node
with_libs /usr/bin/env
for tool in iptables-restore ip6tables-restore iptables ip6tables iptables-save ip6tables-save; do
  with_libs "/usr/sbin/$tool"
done
# The extensions iptables loads for -m owner, -j REDIRECT and the rest (copy() kept the alternatives links the tools
# resolve through: /usr/sbin/iptables-restore → /etc/alternatives/… → iptables-nft-restore → xtables-nft-multi).
for ext in "$LIBDIR"/xtables/*.so; do with_libs "$ext"; done
# Extensions read a few protocol and connlabel tables; keep the files the package ships.
for f in /etc/protocols /etc/ethertypes; do if [ -f "$f" ]; then copy "$f"; fi; done
if [ -d /etc/xtables ]; then cp -a /etc/xtables "$OUT/etc/xtables"; fi

# `remora` on PATH, as in the slim image (the Dockerfile copies the app to /app after this stage).
ln -s /app/dist/cli.js "$OUT/usr/local/bin/remora"

cat >"$OUT/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
remora:x:1337:1337:remora:/nonexistent:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
EOF
cat >"$OUT/etc/group" <<'EOF'
root:x:0:
remora:x:1337:
nogroup:x:65534:
EOF
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$OUT/etc/nsswitch.conf"
echo "distroless-root: $(du -sh "$OUT" | cut -f1) in $OUT"
