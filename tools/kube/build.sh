#!/usr/bin/env bash
# Builds kube-apiserver, etcd and kube-proxy from the Go modules pinned in go.mod into a cache outside the
# checkout, keyed by the Kubernetes version: ${KPROXY_KUBE_CACHE:-/var/cache/kproxy-kube}/<version>/.
# Does nothing when the binaries are already there. Prints the cache directory on its last line.
#   tools/kube/build.sh            build if missing
#   tools/kube/build.sh --print    only print the cache directory
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version="$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ { print $2; exit }' "$here/go.mod")"
if [[ -z "$version" ]]; then
  echo "build.sh: cannot read the k8s.io/kubernetes version from $here/go.mod" >&2
  exit 1
fi
cache="${KPROXY_KUBE_CACHE:-/var/cache/kproxy-kube}/$version"
binaries=(kube-apiserver etcd kube-proxy)

if [[ "${1:-}" == "--print" ]]; then
  echo "$cache"
  exit 0
fi

have_all() {
  local b
  for b in "${binaries[@]}"; do [[ -x "$cache/$b" ]] || return 1; done
}
if have_all; then
  echo "$cache"
  exit 0
fi

command -v go >/dev/null || { echo "build.sh: Go is not installed (needed once to build $version)" >&2; exit 1; }
mkdir -p "$cache"
# Build into a temporary directory next to the cache and move into place, so an interrupted build never
# leaves a half-written binary that have_all would accept.
tmp="$(mktemp -d "$cache/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

cd "$here"
[[ -f go.sum ]] || go mod tidy
minor="${version#v1.}"; minor="${minor%%.*}"
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$version -X k8s.io/component-base/version.gitMajor=1"
ldflags+=" -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
export CGO_ENABLED=0
start=$SECONDS
go build -trimpath -ldflags "$ldflags" -o "$tmp/" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-proxy
go build -trimpath -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3
for b in "${binaries[@]}"; do mv -f "$tmp/$b" "$cache/$b"; done
echo "build.sh: built ${binaries[*]} $version in $((SECONDS - start)) s" >&2
echo "$cache"
