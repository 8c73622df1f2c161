#!/usr/bin/env bash
# Build the broker and operator images as OCI archives from release binaries, without Docker or a registry
# (umoci from Debian). The Dockerfiles beside this script stay the documented way for users with Docker;
# this is for machines without a Docker engine, and for the end-to-end test, which imports the archives into
# containerd (`ctr -n k8s.io images import`) and runs them with imagePullPolicy: Never.
#
# Usage: docker/build-oci-images.sh [OUT_DIR]       (default: target/oci)
# Env:   STRATA_BIN_DIR  use already-built release binaries from this dir instead of `cargo build --release`
#        STRATA_IMAGE_TAG image tag (default: the workspace version)
# Output: OUT_DIR/strata-broker.oci.tar (strata/broker:TAG), OUT_DIR/strata-operator.oci.tar (strata/operator:TAG)
#
# Images hold the binary, the shared libraries it links (from this machine: Debian bookworm), and:
#   broker:   the strata CLI beside the broker, busybox (/bin/sh and the few tools the operator's start/tune scripts use), user strata (10001),
#             /var/lib/strata, /var/run/strata, /etc/strata; entrypoint strata-broker.
#   operator: CA certificates, user nonroot (65532); entrypoint strata-operator run.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=$(realpath -m "${1:-target/oci}")
TAG=${STRATA_IMAGE_TAG:-$(sed -n 's/^version = "\(.*\)"/\1/p' broker/Cargo.toml | head -1)}

need=()
command -v umoci >/dev/null || need+=(umoci)
[ -x /bin/busybox ] || need+=(busybox-static)
[ -f /etc/ssl/certs/ca-certificates.crt ] || need+=(ca-certificates)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if [ -z "${STRATA_BIN_DIR:-}" ]; then
  cargo build --release --locked -p strata-broker -p strata-cli -p strata-operator >&2
  STRATA_BIN_DIR=${CARGO_TARGET_DIR:-target}/release
fi

W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
mkdir -p "$OUT"

# Copies a binary and every shared library it loads (as resolved on this machine) into a rootfs.
install_binary() { # rootfs binary
  local root=$1 bin=$2
  install -D -m 0755 "$bin" "$root/usr/local/bin/$(basename "$bin")"
  ldd "$bin" | awk '/=> \// {print $3} /^[ \t]*\// {print $1}' | sort -u | while read -r lib; do
    install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
  done
  # The image must run the binary on its own (loader and libraries included): try it where we can.
  if [ "$(id -u)" = 0 ]; then
    chroot "$root" "/usr/local/bin/$(basename "$bin")" --help >/dev/null \
      || { echo "$(basename "$bin") does not start inside its image" >&2; exit 1; }
  fi
}

base_rootfs() { # rootfs user uid
  local root=$1 user=$2 uid=$3
  mkdir -p "$root"/{etc,tmp,proc,sys,dev,usr/local/bin}
  chmod 1777 "$root/tmp"
  printf 'root:x:0:0:root:/root:/sbin/nologin\n%s:x:%s:%s:%s:/nonexistent:/sbin/nologin\n' "$user" "$uid" "$uid" "$user" > "$root/etc/passwd"
  printf 'root:x:0:\n%s:x:%s:\n' "$user" "$uid" > "$root/etc/group"
}

# image NAME TAG ROOTFS-POPULATE-FN USER CONFIG-ARGS...
image() {
  local name=$1 tag=$2 populate=$3 user=$4; shift 4
  local layout=$W/$name-layout bundle=$W/$name-bundle
  umoci init --layout "$layout"
  umoci new --image "$layout:$tag"
  umoci unpack --rootless --image "$layout:$tag" "$bundle" 2>/dev/null || umoci unpack --image "$layout:$tag" "$bundle"
  "$populate" "$bundle/rootfs"
  umoci repack --image "$layout:$tag" "$bundle"
  umoci config --image "$layout:$tag" --os linux --architecture amd64 --config.user "$user" \
    --config.env PATH=/usr/local/bin:/usr/bin:/bin "$@"
  umoci gc --layout "$layout"
  tar -C "$layout" -cf "$OUT/$name.oci.tar" .
  echo "$OUT/$name.oci.tar ($name:$tag, $(du -h "$OUT/$name.oci.tar" | cut -f1))" >&2
}

populate_broker() {
  local root=$1
  base_rootfs "$root" strata 10001
  install_binary "$root" "$STRATA_BIN_DIR/strata-broker"
  install_binary "$root" "$STRATA_BIN_DIR/strata"
  install -D -m 0755 /bin/busybox "$root/bin/busybox"
  for applet in sh cat sed mv echo ls sleep; do ln -s busybox "$root/bin/$applet"; done
  install -d -o 10001 -g 10001 "$root/var/lib/strata" "$root/var/run/strata" "$root/etc/strata"
}

populate_operator() {
  local root=$1
  base_rootfs "$root" nonroot 65532
  install_binary "$root" "$STRATA_BIN_DIR/strata-operator"
  install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
}

image strata-broker "$TAG" populate_broker 10001:10001 \
  --config.entrypoint /usr/local/bin/strata-broker --config.exposedports 9092/tcp --config.exposedports 9644/tcp
image strata-operator "$TAG" populate_operator 65532:65532 \
  --config.entrypoint /usr/local/bin/strata-operator --config.cmd run --config.exposedports 8080/tcp
