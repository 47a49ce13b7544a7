#!/usr/bin/env bash
# podman the way it works on these test machines, for the image scripts and tests:
# - its own storage, so it never mixes with other podman users': the overlay driver where the kernel has
#   overlayfs (layers and containers cost no copies), else vfs (every layer and container a full copy);
#   KPROXY_PODMAN_DRIVER chooses; the root (KPROXY_PODMAN_ROOT, default /var/cache/kproxy-image/<driver>) is
#   per driver, because a store cannot change driver;
# - runc with cgroupfs: crun 1.8 refuses the hybrid cgroup layout of these machines;
# - `run`: ulimits at the machine's hard limits (podman's default raises them, which fails without the right);
# - `build`: never pulls (the base images are local stand-ins, tools/image/base-images.sh), RUN steps use the
#   host's network to reach the package registries, chroot isolation (no nested user namespaces needed).
# Usage: tools/image/podman.sh build|run|image|images|inspect|save|rm|... ARGS
set -euo pipefail
driver="${KPROXY_PODMAN_DRIVER:-$(grep -qw overlay /proc/filesystems && echo overlay || echo vfs)}"
root="${KPROXY_PODMAN_ROOT:-/var/cache/kproxy-image/$driver}"
podman_cmd=(podman --root "$root" --runroot "${KPROXY_PODMAN_RUNROOT:-/run/kproxy-podman-$driver}" --storage-driver "$driver"
  --runtime runc --cgroup-manager cgroupfs --events-backend file)
case "${1:-}" in
  run)
    shift
    exec "${podman_cmd[@]}" run --ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit "nproc=4096:4096" "$@" ;;
  build)
    shift
    exec "${podman_cmd[@]}" build --pull=never --network=host --isolation=chroot "$@" ;;
  *)
    exec "${podman_cmd[@]}" "$@" ;;
esac
