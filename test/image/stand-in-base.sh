#!/bin/sh
# Makes the STAND-IN for node:<major>-bookworm-slim that CI builds the Dockerfile on, where no registry is reachable:
# Debian 12 from debootstrap --variant=minbase, slimmed as Debian's own bookworm-slim image is, plus the Node.js,
# npm and Node headers of the machine this runs on, laid out as the official image lays them out (/usr/local).
# It stands in for the official image in the build and nothing else: it is not published and not a base to ship.
#   test/image/stand-in-base.sh IMAGE_NAME [WORKDIR]        (root; podman, debootstrap; DEBIAN_MIRROR to override)
set -eu

NAME="${1:?usage: stand-in-base.sh IMAGE_NAME [WORKDIR]}"
WORK="${2:-$(mktemp -d)}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
ROOT="$WORK/rootfs"
mkdir -p "$WORK"

NODE="$(readlink -f "$(command -v node)")"
PREFIX="$(dirname "$(dirname "$NODE")")"          # /usr for Debian's or NodeSource's package, /usr/local for the tarball
NPM_DIR="$PREFIX/lib/node_modules/npm"
VERSION="$("$NODE" -p process.versions.node)"
[ -f "$PREFIX/include/node/node_api.h" ] || { echo "stand-in-base: no Node headers in $PREFIX/include/node" >&2; exit 1; }
[ -f "$NPM_DIR/bin/npm-cli.js" ] || { echo "stand-in-base: no npm in $NPM_DIR" >&2; exit 1; }

rm -rf "$ROOT"
debootstrap --variant=minbase bookworm "$ROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
  { tail -20 "$WORK/debootstrap.log" >&2; exit 1; }

# What Debian's official bookworm-slim image configures (debuerreotype's --slimify and its apt settings): no docs,
# man pages or translations installed by later apt-get runs, no package cache kept, the same three suites.
cat >"$ROOT/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EOF
cat >"$ROOT/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
echo 'Acquire::Languages "none";' >"$ROOT/etc/apt/apt.conf.d/docker-no-languages"
printf 'Acquire::GzipIndexes "true";\nAcquire::CompressionTypes::Order:: "gz";\n' >"$ROOT/etc/apt/apt.conf.d/docker-gzip-indexes"
printf 'Apt::AutoRemove::SuggestsImportant "false";\n' >"$ROOT/etc/apt/apt.conf.d/docker-autoremove-suggests"
rm -f "$ROOT/etc/apt/sources.list"
cat >"$ROOT/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
find "$ROOT/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete
find "$ROOT/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$ROOT/usr/share/man/"* "$ROOT/usr/share/info/"* "$ROOT/usr/share/locale/"* "$ROOT/usr/share/groff/"* "$ROOT/usr/share/lintian/"*
rm -rf "$ROOT/var/lib/apt/lists/"* "$ROOT/var/cache/apt/"* "$ROOT/var/cache/debconf/"*-old "$ROOT/var/log/"*
rm -f "$ROOT/etc/hostname" "$ROOT/etc/resolv.conf"

# Node.js as the official image installs it: /usr/local/bin/node, npm and corepack under /usr/local/lib/node_modules,
# the headers node-gyp builds against under /usr/local/include/node, and the user node (1000:1000).
install -D -m 0755 "$NODE" "$ROOT/usr/local/bin/node"
ln -s node "$ROOT/usr/local/bin/nodejs"
mkdir -p "$ROOT/usr/local/lib/node_modules" "$ROOT/usr/local/include"
cp -a "$NPM_DIR" "$ROOT/usr/local/lib/node_modules/npm"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$ROOT/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$ROOT/usr/local/bin/npx"
if [ -d "$PREFIX/lib/node_modules/corepack" ]; then
  cp -a "$PREFIX/lib/node_modules/corepack" "$ROOT/usr/local/lib/node_modules/corepack"
  ln -s ../lib/node_modules/corepack/dist/corepack.js "$ROOT/usr/local/bin/corepack"
fi
cp -a "$PREFIX/include/node" "$ROOT/usr/local/include/node"
chroot "$ROOT" groupadd --gid 1000 node
chroot "$ROOT" useradd --uid 1000 --gid node --shell /bin/bash --create-home node
env -u NODE_EXTRA_CA_CERTS chroot "$ROOT" /usr/local/bin/node -e 'process.exit(0)' || { echo "stand-in-base: node does not run in the root filesystem" >&2; exit 1; }

tar -C "$ROOT" --numeric-owner -cf - . | podman import \
  --change 'CMD ["node"]' \
  --change "ENV NODE_VERSION=$VERSION" \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change "LABEL org.opencontainers.image.description=\"CI stand-in for node:${VERSION%%.*}-bookworm-slim (Debian 12 minbase + this machine's Node.js $VERSION); not for shipping\"" \
  --message "stand-in for node:${VERSION%%.*}-bookworm-slim" - "$NAME" >/dev/null
rm -rf "$ROOT"
echo "stand-in-base: $NAME (Node.js $VERSION, Debian bookworm minbase from $MIRROR)"
