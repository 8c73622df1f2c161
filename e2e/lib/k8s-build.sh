# shellcheck shell=bash
# Builds Kubernetes v1.20.2 binaries from Debian bookworm's `kubernetes` source package (no registry holds
# release binaries for these machines) with Debian's Go, and publishes them atomically into a cache dir.
# Sourced by build-kube-apiserver.sh and node/build-node.sh. A cold build takes ~10 min on 2 cores, 1.4 GB peak.

K8S_VERSION=1.20.2
K8S_DEB_VERSION=1.20.5+really1.20.2-1.1+deb12u1

# k8s_build OUT "cmd/a cmd/b" [AFTER]: builds the targets into OUT/bin (the tree's _output/bin files of the
# same names); AFTER, if given, runs in the source tree with OUT/bin as its argument before publishing.
k8s_build() {
  local out=$1 what=$2 after=${3:-}
  export DEBIAN_FRONTEND=noninteractive
  if ! grep -rqs "^Types:.*deb-src\|^deb-src" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    cat > /etc/apt/sources.list.d/strata-debian-src.sources <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends golang-go dpkg-dev rsync make \
    golang-github-modern-go-reflect2-dev golang-github-json-iterator-go-dev >/dev/null
  local w=$out.build
  rm -rf "$w"; mkdir -p "$w"
  (
    cd "$w" || exit 1
    apt-get source -qq "kubernetes=$K8S_DEB_VERSION" >/dev/null 2>&1
    mv "kubernetes-$K8S_VERSION" k8s 2>/dev/null || mv kubernetes-1.20.5+really1.20.2 k8s
    cd k8s || exit 1
    # k8s 1.20 vendors reflect2 v1.0.1, which crashes under Go >= 1.18 (map iteration) on the first custom
    # resource; Debian's reflect2 1.0.2 + json-iterator 1.1.12 are API-compatible replacements.
    for p in github.com/modern-go/reflect2 github.com/json-iterator/go; do
      rm -rf "vendor/$p"; cp -r "/usr/share/gocode/src/$p" "vendor/$p"; find "vendor/$p" -name '*_test.go' -delete
    done
    export GOPATH=$PWD/.go CGO_ENABLED=0 GOPROXY=off GOFLAGS='' HOME=$w/home
    mkdir -p "$HOME" .go/src/k8s.io
    ln -sfn ../../.. .go/src/k8s.io/kubernetes
    make WHAT="$what" >&2
    mkdir -p "$out.tmp/bin"
    for t in $what; do cp "_output/bin/$(basename "$t")" "$out.tmp/bin/"; done
    [ -z "$after" ] || "$after" "$out.tmp/bin"
  )
  # Publish atomically so an interrupted build never looks cached; drop the 1.4 GB build tree.
  rm -rf "$out"; mv "$out.tmp" "$out"
  rm -rf "$w"
}
