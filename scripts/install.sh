#!/usr/bin/env bash
# Install what kubelite needs on a Debian 12 machine (root): system packages,
# then a virtualenv in .venv with the project and its test tools, at the versions of
# requirements-dev.lock.
# Safe to run again: it installs only what is missing.
set -euo pipefail

cd "$(dirname "$0")/.."

packages=(
  etcd-server containerd runc iptables containernetworking-plugins busybox-static
  conntrack iproute2 gcc libc6-dev python3-venv python3-dev shellcheck util-linux
  vagrant vagrant-libvirt nftables nginx
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
  # No package may start its service while installing: libvirtd would create its default
  # bridge in this machine's own network namespace, and etcd and containerd would serve here.
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod 755 "$policy"
    own_policy=1
    trap 'rm -f "$policy"' EXIT
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ "$own_policy" = 1 ]; then
    rm -f "$policy"
    trap - EXIT
  fi
fi
# libvirt's default network would come up in this machine's namespace whenever a libvirtd starts here.
rm -f /etc/libvirt/qemu/networks/autostart/default.xml

# The distribution starts containerd, etcd and nginx as services where systemd runs;
# kubelite runs its own instances (nginx only inside a node's namespace, for `kubelite
# ingress`), so the packaged ones are not needed.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl disable --now containerd etcd nginx >/dev/null 2>&1 || true
  # VM labs run their own libvirtd inside a network namespace; the packaged one
  # would put its bridge in this machine's own.
  systemctl disable --now libvirtd libvirtd.socket libvirtd-ro.socket libvirtd-admin.socket \
    virtlogd virtlogd.socket >/dev/null 2>&1 || true
fi

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "the locks are for CPython 3.11; $python is $("$python" --version 2>&1) (set PYTHON=python3.11)" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
# Exactly the locked versions, each checked against its hash (requirements-dev.lock, written by
# scripts/lock.sh); then the project itself, built by the locked setuptools, with no other download.
.venv/bin/pip install -q --disable-pip-version-check --require-hashes -r requirements-dev.lock
PYTHONWARNINGS=ignore .venv/bin/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
# Whatever an earlier install left that the lock no longer names goes, so the venv is the lock.
.venv/bin/python scripts/venvsync.py requirements-dev.lock
echo "installed: $(.venv/bin/kubelite version)"
