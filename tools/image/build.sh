#!/usr/bin/env bash
# Builds kproxy's image (the Dockerfile at the project root) from a clean copy of the checkout: the files git
# tracks or would track (nothing ignored: no node_modules, no caches), as they are in the working tree. Makes
# the local base-image stand-ins first when missing. Prints the build time, the size and the layer count; the
# last line is the image reference.
#   tools/image/build.sh [TAG]     default TAG: localhost/kproxy:<package.json version>
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
podman="$here/podman.sh"
version="$(sed -n 's/^  "version": *"\([^"]*\)".*/\1/p' "$repo/package.json" | head -1)"
tag="${1:-localhost/kproxy:${version:-dev}}"

"$here/base-images.sh" >&2
context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
# A clean checkout's content: tracked and untracked-but-not-ignored files that exist (deleted ones are skipped).
git -C "$repo" ls-files -z --cached --others --exclude-standard \
  | (cd "$repo" && while IFS= read -r -d '' file; do [[ -e "$file" || -L "$file" ]] && printf '%s\0' "$file"; done) \
  | tar -C "$repo" --null -T - -cf - | tar -C "$context" -xf -

start=$SECONDS
if ! "$podman" build --quiet -t "$tag" -f "$context/Dockerfile" "$context" >"$context/.build.log" 2>&1; then
  tail -40 "$context/.build.log" >&2
  echo "build.sh: podman build failed" >&2
  exit 1
fi
seconds=$((SECONDS - start))
# The previous build's image, now untagged; the layers the new one shares stay as its build cache.
"$podman" image prune --force >/dev/null
size="$("$podman" image inspect --format '{{.Size}}' "$tag")"
layers="$("$podman" image inspect --format '{{len .RootFS.Layers}}' "$tag")"
echo "image $tag: built in ${seconds} s, $((size / 1000000)) MB, $layers layers" >&2
echo "$tag"
