#!/usr/bin/env bash
# Provision one VM, offline: install kubelite from the wheelhouse in the synced
# folder, then run the shared node bootstrap.
#   provision.sh ROLE NAME ADDRESS POD_CIDR CP_ADDRESS PEERS [TIMEOUT_SCALE] [SERVERS]
# ROLE is control-plane, control-plane-join (another control plane, joining cp's: the Vagrantfile
# carried the cluster's CAs to it) or node. SERVERS lists every apiserver (host:port, comma-separated;
# default CP_ADDRESS:6443); with more than one, cp's etcd is the first member of an etcd cluster. ADDRESS is this VM's private-network address
# (never the management interface's). PEERS lists every worker as POD_CIDR=ADDRESS,
# so each VM routes the other workers' pods through their private address.
# TIMEOUT_SCALE multiplies the bootstrap waits (emulated VMs are slow).
set -euo pipefail

role=$1 name=$2 address=$3 pod_cidr=$4 cp_address=$5 peers=$6 scale=${7:-1} servers=${8:-$5:6443}
src=/opt/kubelite
wheelhouse=${src}/deploy/vagrant/.wheelhouse
venv=/opt/kubelite-venv
# The join token: made on the control plane; the Vagrantfile carries it to each worker over ssh (never
# through the synced folder, never on a command line) just before this script runs there.
token=/etc/kubelite/join-token

# Not `ip ... | grep -q`: under pipefail, grep -q leaving at the first match can kill ip with SIGPIPE
# while it still writes the next line, and the pipeline then fails although the address is there.
if ! grep -q " ${address}/" <<< "$(ip -o addr show)"; then
  echo "provision: ${address} is not an address of this VM; refusing to guess" >&2
  ip -o addr show >&2 || true
  exit 1
fi

# The box has every package baked in; apt runs only for a box that lacks some.
mapfile -t packages < <(grep -v '^#' "${src}/deploy/vagrant/node-packages.txt" | grep -v '^$')
installed=$(dpkg-query -W -f='${Package} ${Status}\n' "${packages[@]}" 2>/dev/null | grep " install ok installed" || true)
missing=()
for p in "${packages[@]}"; do
  grep -q "^${p} " <<< "${installed}" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "provision: installing ${missing[*]} (this box lacks them)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
systemctl disable --now containerd etcd >/dev/null 2>&1 || true

if [ ! -d "${wheelhouse}" ]; then
  echo "provision: no wheelhouse at ${wheelhouse}: build it on the host (kubelite vm up does)" >&2
  exit 1
fi
# The box comes with the venv (making one costs minutes under emulation).
[ -x "${venv}/bin/python" ] || python3 -m venv "${venv}"
wheels=("${wheelhouse}"/kubelite-*.whl)
again=()
if compgen -G "${venv}/lib/python3*/site-packages/kubelite-*.dist-info" >/dev/null; then
  again=(--force-reinstall --no-deps)  # provisioned before: replace kubelite only
fi
"${venv}/bin/pip" install --quiet --no-index --find-links "${wheelhouse}" "${again[@]}" "${wheels[0]}"
ln -sf "${venv}/bin/kubelite" /usr/local/bin/kubelite
# Node images built on the host: the bootstrap reuses them when their inputs match.
if [ -d "${wheelhouse}/images" ]; then
  mkdir -p /var/lib/kubelite/images
  cp -a "${wheelhouse}/images/." /var/lib/kubelite/images/
fi

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

# Service IPs: the VMs have no default route, so a process on the machine itself (not in a pod) sending to a
# Service IP needs a route before the proxy's OUTPUT DNAT rewrites the destination, as the lab's nodes have
# (deploy/lab/network.py). 10.96.0.0/16 is the bootstrap's --service-cidr. awk reads all of ip's output: one
# that left at the first match could kill ip with SIGPIPE (see above).
iface=$(ip -o -4 addr show | awk -v a="${address}/" 'index($4, a) == 1 && !found {print $2; found = 1}')
if [ -n "${iface}" ]; then
  ip route replace 10.96.0.0/16 dev "${iface}" src "${address}"
fi

install -d -m 700 /etc/kubelite

# How a node joins the cluster: with a join token carrying the cluster CA's hash, deleted once used.
join_cluster() {
  if [ ! -s "${token}" ]; then
    echo "provision: no join token in ${token} (the Vagrantfile carries it from the control plane)" >&2
    exit 1
  fi
  kubelite bootstrap node --name "${name}" --address "${address}" --pod-cidr "${pod_cidr}" \
    --server "${servers}" --token-file "${token}" --timeout-scale "${scale}"
  rm -f "${token}"
}

if [ "${role}" = "control-plane" ]; then
  # The control plane makes the CA and the join token its own node and the workers join with; it is a
  # node too, kept free of workloads as Kubernetes' is.
  # LoadBalancer addresses on the private network, announced by the nodes' speakers.
  lb_pool="${cp_address%.*}.200-${cp_address%.*}.250"
  ha=()
  if [ "${servers}" != "${cp_address}:6443" ]; then
    ha=(--ha)  # more control planes join this one's etcd
  fi
  kubelite bootstrap control-plane --address "${address}" --timeout-scale "${scale}" --lb-pool "${lb_pool}" "${ha[@]}"
  (umask 077 && kubelite token create --ttl 2h --description "vagrant nodes" >"${token}.new")
  cp "${token}.new" "${token}.cp"
  mv "${token}.new" "${token}"
  # The workers' copy stays until the token expires; the control plane's own node uses its own copy.
  token_workers=${token}
  token=${token}.cp
  join_cluster
  token=${token_workers}
  for _ in $(seq 30); do
    if kubelite taint nodes "${name}" node-role.kubernetes.io/control-plane:NoSchedule --overwrite >/dev/null 2>&1; then
      break
    fi
    sleep 2
  done
elif [ "${role}" = "control-plane-join" ]; then
  lb_pool="${cp_address%.*}.200-${cp_address%.*}.250"
  kubelite bootstrap control-plane --address "${address}" --timeout-scale "${scale}" --lb-pool "${lb_pool}" \
    --join "${cp_address}" --etcd-member-name "${name}"
else
  join_cluster
fi
