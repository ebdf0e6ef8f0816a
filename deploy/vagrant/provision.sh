#!/usr/bin/env bash
# Provision one VM: install kubelite, then run the shared node bootstrap.
#   provision.sh ROLE NAME ADDRESS POD_CIDR CP_ADDRESS PEERS
# ROLE is control-plane or node. ADDRESS is this VM's private-network address
# (never the NAT interface's). PEERS lists every worker as POD_CIDR=ADDRESS,
# so each VM routes the other workers' pods through their private address.
set -euo pipefail

role=$1 name=$2 address=$3 pod_cidr=$4 cp_address=$5 peers=$6
src=/opt/kubelite
# The join token: made on the control plane; the Vagrantfile carries it to each worker over ssh (never through
# the synced folder, never on a command line) just before this script runs there.
token=/etc/kubelite/join-token

if ! ip -o addr show | grep -q " ${address}/"; then
  echo "provision: ${address} is not an address of this VM; refusing to guess" >&2
  exit 1
fi

bash "${src}/scripts/install.sh"
ln -sf "${src}/.venv/bin/kubelite" /usr/local/bin/kubelite

modprobe br_netfilter || true
sysctl -qw net.ipv4.ip_forward=1
sysctl -qw net.bridge.bridge-nf-call-iptables=1 || true

IFS=',' read -r -a routes <<< "${peers}"
for route in "${routes[@]}"; do
  cidr=${route%%=*} via=${route#*=}
  if [ "${via}" != "${address}" ]; then
    ip route replace "${cidr}" via "${via}"
  fi
done

install -d -m 700 /etc/kubelite
if [ "${role}" = "control-plane" ]; then
  kubelite bootstrap control-plane --address "${address}"
  (umask 077 && kubelite token create --ttl 2h --description "vagrant workers" >"${token}.new")
  mv "${token}.new" "${token}"
else
  if [ ! -s "${token}" ]; then
    echo "provision: no join token in ${token} (the Vagrantfile copies it from the control plane)" >&2
    exit 1
  fi
  kubelite bootstrap node --name "${name}" --address "${address}" --pod-cidr "${pod_cidr}" \
    --server "${cp_address}:6443" --token-file "${token}"
  rm -f "${token}"
fi
