#!/bin/busybox sh
# PID 1 of the test VM (kit.sh puts it into the initramfs). It mounts the host's / read-only over virtio-9p with
# a tmpfs overlay on top (the guest sees the checkout, node_modules and the host's tools; its writes stay in
# the guest), mounts the host's output folder (the only writable share) at /kproxy-vm, runs
# /kproxy-vm/job.sh there with bash, writes its exit status to /kproxy-vm/exit-code and powers off.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
say() { echo "kproxy-vm: $*" > /dev/console; }
fail() { say "$*"; poweroff -f; }

for ko in $(cat /modules.order); do insmod "/modules/$ko" || say "insmod $ko failed"; done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=524288,cache=loose hostroot /host || fail "cannot mount the host's /"
# Modules load on demand through the kernel's modprobe helper, which runs in this initramfs: point it at the kit.
mkdir -p /lib && ln -s "/host@KIT_MODULES@" /lib/modules
echo /bin/modprobe > /proc/sys/kernel/modprobe

mount -t tmpfs -o size=60% tmpfs /rw && mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/host,upperdir=/rw/upper,workdir=/rw/work /newroot || fail "cannot mount the overlay"
R=/newroot
mount -t proc proc $R/proc
mount -t sysfs sys $R/sys
mount -t devtmpfs dev $R/dev
mkdir -p $R/dev/pts $R/dev/shm && mount -t devpts devpts $R/dev/pts && mount -t tmpfs tmpfs $R/dev/shm
mount -t tmpfs tmpfs $R/run
mount -t tmpfs tmpfs $R/tmp
mkdir -p $R/run/netns
rm -rf $R/lib/modules && ln -s "@KIT_MODULES@" $R/lib/modules
mkdir -p $R/kproxy-vm
mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288 kpout $R/kproxy-vm || fail "cannot mount the output folder"
chroot $R ip link set lo up

chroot $R /usr/bin/env -i HOME=/root TERM=dumb PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  /bin/bash /kproxy-vm/job.sh
rc=$?
echo $rc > $R/kproxy-vm/exit-code
sync
say "job exited $rc"
# isa-debug-exit: qemu exits with (rc << 1) | 1, so the host also learns the status without the share.
printf "\\$(printf %o $((rc & 127)))" | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null
poweroff -f
