#!/usr/bin/env bash
# Builds the boot kit of the test VM: Debian's stock kernel (it has IPVS, ipset, nf_tables and the dummy link
# type as modules, which the kernel of the development machines lacks) plus a busybox initramfs that mounts the
# host's filesystem over virtio-9p. Cached outside the checkout, one folder per kernel package:
#   ${KPROXY_VM_CACHE:-/var/cache/kproxy-vm}/<linux-image package>/{vmlinux,vmlinuz,initramfs.cpio.gz,modules/,ready}
# Prints the kit's directory on its last line.
#   test/vm/kit.sh            the newest kit already built; builds the one Debian ships today when there is none
#   test/vm/kit.sh --refresh  build the kit of the kernel Debian ships today, unless it is already there
# Building needs root (apt-get download), qemu-system-x86, busybox-static and kmod (.ci/run installs them).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="${KPROXY_VM_CACHE:-/var/cache/kproxy-vm}"

if [[ "${1:-}" != "--refresh" ]]; then
  newest="$(ls -1dt "$root"/linux-image-*/ready 2>/dev/null | head -1 || true)"
  if [[ -n "$newest" ]]; then
    dirname "$newest"
    exit 0
  fi
fi

# The kernel package that Debian's linux-image-amd64 points at today.
kernel_package() {
  apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -1
}
package="$(kernel_package || true)"
if [[ -z "$package" ]]; then
  apt-get update -qq >/dev/null 2>&1 || true
  package="$(kernel_package || true)"
fi
[[ -n "$package" ]] || { echo "kit.sh: apt knows no linux-image-amd64 package" >&2; exit 1; }
kit="$root/$package"
if [[ -f "$kit/ready" ]]; then
  echo "$kit"
  exit 0
fi

for tool in qemu-system-x86_64 busybox depmod modprobe gzip; do
  command -v "$tool" >/dev/null || { echo "kit.sh: $tool is missing (apt-get install qemu-system-x86 busybox-static kmod)" >&2; exit 1; }
done
busybox_bin="$(command -v busybox)"
# The initramfs runs before any library is reachable: only a static busybox works there.
if ldd "$busybox_bin" >/dev/null 2>&1; then
  echo "kit.sh: $busybox_bin is dynamically linked; install busybox-static" >&2
  exit 1
fi

start=$SECONDS
mkdir -p "$root"
# Build next to the kit and move into place, so an interrupted build never leaves a kit that looks ready.
tmp="$(mktemp -d "$root/.build.XXXXXX")" && chmod 755 "$tmp"
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"

apt-get download "$package" >/dev/null 2>&1 || { echo "kit.sh: apt-get download $package failed" >&2; exit 1; }
dpkg-deb -x "$package"_*.deb unpacked
rm -f "$package"_*.deb
kver="$(ls unpacked/lib/modules)"
mkdir -p modules
mv "unpacked/lib/modules/$kver" "modules/$kver"
mv "unpacked/boot/vmlinuz-$kver" vmlinuz
rm -rf unpacked
# Under software emulation the compressed kernel spends ~10 s inflating itself. Debian's kernel has a PVH
# entry point (CONFIG_PVH), so qemu can boot the plain ELF directly: unpack it once here (xz payload).
offset="$(LC_ALL=C grep -obUaP '\xFD\x37\x7A\x58\x5A\x00' vmlinuz | head -1 | cut -d: -f1 || true)"
if [[ -n "$offset" ]]; then
  tail -c +"$((offset + 1))" vmlinuz | xz -dc 2>/dev/null > vmlinux || true
  [[ "$(head -c 4 vmlinux | od -An -tx1 | tr -d ' ')" == 7f454c46 ]] || rm -f vmlinux
fi
[[ -f vmlinux ]] || echo "kit.sh: could not unpack the kernel to an ELF; the VM boots the compressed one (slower)" >&2
# depmod -b expects <base>/lib/modules/<kver>: give it that shape through a link.
mkdir -p depmod-base/lib && ln -s "$tmp/modules" depmod-base/lib/modules
depmod -b "$tmp/depmod-base" "$kver"

# The modules the initramfs loads itself, dependencies first: enough to mount the host's / over 9p, put a tmpfs
# overlay on it and seed the entropy pool. Every other module loads on demand in the guest, from this kit.
mkdir -p initramfs/{bin,dev,proc,sys,host,newroot,rw,modules}
: > initramfs/modules.order
for module in virtio_pci 9pnet_virtio 9p overlay virtio_rng; do
  modprobe -d "$tmp/depmod-base" -S "$kver" --show-depends "$module" | awk '$1 == "insmod" { print $2 }'
done | awk '!seen[$0]++' | while read -r ko; do
  cp "$ko" initramfs/modules/
  basename "$ko" >> initramfs/modules.order
done
cp "$busybox_bin" initramfs/bin/busybox
sed "s|@KIT_MODULES@|$kit/modules|g" "$here/init.sh" > initramfs/init
chmod +x initramfs/init
(cd initramfs && find . | "$busybox_bin" cpio -o -H newc 2>/dev/null | gzip -1) > initramfs.cpio.gz
rm -rf initramfs depmod-base
echo "$kver" > kernel-version

rm -rf "$kit"
touch ready
mv "$tmp" "$kit"
trap - EXIT
echo "kit.sh: built the VM kit for $package ($kver) in $((SECONDS - start)) s" >&2
echo "$kit"
