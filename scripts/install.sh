#!/usr/bin/env bash
# Install what kubelite needs on a Debian 12 machine (root): system packages,
# then a virtualenv in .venv with the project and its test tools.
# Safe to run again: it installs only what is missing.
set -euo pipefail

cd "$(dirname "$0")/.."

packages=(
  etcd-server containerd runc iptables containernetworking-plugins busybox-static
  conntrack iproute2 gcc libc6-dev python3-venv python3-dev shellcheck util-linux
  vagrant vagrant-libvirt
  # VMs (kubelite vm): QEMU, libvirt run inside a lab namespace, and the box builder
  qemu-system-x86 qemu-utils libvirt-daemon-system libvirt-clients dnsmasq-base
  mmdebstrap extlinux syslinux-common fdisk rsync openssh-client
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The distribution starts containerd and etcd as services where systemd runs;
# kubelite runs its own instances, so the packaged ones are not needed.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl disable --now containerd etcd >/dev/null 2>&1 || true
  # VM labs run their own libvirtd inside a network namespace; the packaged one
  # would put its bridge in this machine's own.
  systemctl disable --now libvirtd libvirtd.socket libvirtd-ro.socket libvirtd-admin.socket \
    virtlogd virtlogd.socket >/dev/null 2>&1 || true
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip >/dev/null
.venv/bin/pip install -q -e '.[dev]'
echo "installed: $(.venv/bin/kubelite version)"
