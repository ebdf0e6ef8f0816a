#!/usr/bin/env bash
# Build a Debian 12 Vagrant box for libvirt with every node package baked in.
#   build-box.sh OUT.box
# Only the Debian archive is reached (mmdebstrap); nothing else is downloaded.
# Needs root, mmdebstrap, extlinux, syslinux-common, fdisk and qemu-utils.
# The loop device maps the partition by offset: the host kernel may not scan
# partition tables of loop devices.
set -euo pipefail

out=$(realpath -m "$1")
here=$(cd "$(dirname "$0")" && pwd)
mirror=${KUBELITE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
security=${KUBELITE_DEBIAN_SECURITY:-http://deb.debian.org/debian-security}
keys=(/usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub)
pubkey=${VAGRANT_INSECURE_PUBKEY:-${keys[0]}}
[ -f "${pubkey}" ] || { echo "build-box: vagrant's insecure public key not found (apt-get install vagrant)" >&2; exit 1; }
for tool in mmdebstrap extlinux sfdisk qemu-img losetup mkfs.ext4 fstrim; do
  command -v "${tool}" >/dev/null || { echo "build-box: ${tool} is missing (bash scripts/install.sh installs it)" >&2; exit 1; }
done
mbr=/usr/lib/syslinux/mbr/mbr.bin
[ -f "${mbr}" ] || { echo "build-box: ${mbr} is missing (apt-get install syslinux-common)" >&2; exit 1; }

work=$(mktemp -d /var/tmp/kubelite-box.XXXXXX)
root=${work}/root
loop=""
cleanup() {
  if mountpoint -q "${root}"; then umount -R "${root}" || umount -l "${root}"; fi
  if [ -n "${loop}" ]; then losetup -d "${loop}" || true; fi
  rm -rf "${work}"
}
trap cleanup EXIT

mapfile -t node_packages < <(grep -v '^#' "${here}/node-packages.txt" | grep -v '^$')
base=(systemd systemd-sysv dbus udev kmod linux-image-amd64 initramfs-tools openssh-server sudo
      ifupdown isc-dhcp-client procps)
include=$(IFS=,; echo "${base[*]},${node_packages[*]}")

disk=${work}/disk.raw
truncate -s 8G "${disk}"
echo 'start=2048, type=83, bootable' | sfdisk -q "${disk}"
loop=$(losetup --find --show --offset $((2048 * 512)) "${disk}")
mkfs.ext4 -q -L root "${loop}"
uuid=$(blkid -s UUID -o value "${loop}")
mkdir -p "${root}"
mount "${loop}" "${root}"
rmdir "${root}/lost+found"

# Runs in the finished tree ($1) before mmdebstrap cleans up.
customize=$(cat <<HOOK
set -e
chroot "\$1" useradd -m -s /bin/bash -G sudo vagrant
echo 'vagrant ALL=(ALL) NOPASSWD:ALL' > "\$1/etc/sudoers.d/vagrant"
chmod 0440 "\$1/etc/sudoers.d/vagrant"
install -d -m 700 -o 1000 -g 1000 "\$1/home/vagrant/.ssh"
install -m 600 -o 1000 -g 1000 "${pubkey}" "\$1/home/vagrant/.ssh/authorized_keys"
echo 'UUID=${uuid} / ext4 errors=remount-ro 0 1' > "\$1/etc/fstab"
printf 'auto lo\niface lo inet loopback\n\nallow-hotplug eth0\niface eth0 inet dhcp\n' > "\$1/etc/network/interfaces"
echo kubelite > "\$1/etc/hostname"
printf 'HostKey /etc/ssh/ssh_host_ed25519_key\nHostKey /etc/ssh/ssh_host_ecdsa_key\nUseDNS no\n' \
  > "\$1/etc/ssh/sshd_config.d/kubelite.conf"
# Each VM makes its own host keys at first boot; no RSA key: it takes a minute under emulation.
rm -f "\$1"/etc/ssh/ssh_host_*
printf '%s\n' '[Unit]' 'Description=ssh host keys of this machine' 'Before=ssh.service' \
  'ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key' '' '[Service]' 'Type=oneshot' \
  "ExecStart=/usr/bin/ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key" \
  "ExecStart=/usr/bin/ssh-keygen -q -t ecdsa -N '' -f /etc/ssh/ssh_host_ecdsa_key" '' \
  '[Install]' 'WantedBy=multi-user.target' > "\$1/etc/systemd/system/ssh-host-keys.service"
chroot "\$1" systemctl enable ssh-host-keys.service
chroot "\$1" systemctl disable containerd.service etcd.service
chroot "\$1" python3 -m venv /opt/kubelite-venv
# Boot-time housekeeping a short-lived VM does not need (minutes under emulation).
chroot "\$1" systemctl mask e2scrub_reap.service e2scrub_all.timer apt-daily.timer apt-daily-upgrade.timer \
  man-db.timer fstrim.timer
chroot "\$1" sh -c 'rm -rf /var/lib/etcd/* /var/lib/apt/lists/* /var/cache/apt/*.bin'
HOOK
)

mmdebstrap --mode=root --variant=minbase --include="${include}" \
  --customize-hook="${customize}" \
  bookworm "${root}" \
  "deb ${mirror} bookworm main" "deb ${mirror} bookworm-updates main" "deb ${security} bookworm-security main"

kernels=("${root}"/boot/vmlinuz-*)
kernel=$(basename "${kernels[-1]}")
initrd=initrd.img-${kernel#vmlinuz-}
mkdir -p "${root}/boot/extlinux"
cat > "${root}/boot/extlinux/extlinux.conf" <<CONF
DEFAULT debian
TIMEOUT 0
LABEL debian
  LINUX /boot/${kernel}
  INITRD /boot/${initrd}
  APPEND root=UUID=${uuid} ro console=ttyS0 net.ifnames=0 quiet fsck.mode=skip mitigations=off
CONF
extlinux --install "${root}/boot/extlinux" 2>/dev/null
fstrim "${root}" || true
umount "${root}"
losetup -d "${loop}"
loop=""
dd if="${mbr}" of="${disk}" bs=440 count=1 conv=notrunc status=none

box=${work}/box
mkdir -p "${box}"
qemu-img convert -O qcow2 "${disk}" "${box}/box.img"
rm -f "${disk}"
echo '{"provider": "libvirt", "format": "qcow2", "virtual_size": 8}' > "${box}/metadata.json"
cat > "${box}/Vagrantfile" <<'VF'
Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |lv|
    lv.disk_bus = "virtio"
  end
end
VF
mkdir -p "$(dirname "${out}")"
tar -C "${box}" -cf "${out}.part" metadata.json Vagrantfile box.img
mv "${out}.part" "${out}"
echo "build-box: ${out} ($(du -h "${out}" | cut -f1))"
