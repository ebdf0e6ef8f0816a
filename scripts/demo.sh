#!/usr/bin/env bash
# Install everything, start a 3-node local cluster, deploy the demo web app and
# fetch its page through the Service from a client pod. Needs root.
set -euo pipefail

cd "$(dirname "$0")/.."
bash scripts/install.sh
k=.venv/bin/kubelite

$k up --nodes 3
$k apply -f examples/
$k rollout status deployment/web --timeout 90s
$k wait --for=condition=Ready pod/client --timeout 60
echo
$k get pods -o wide
echo
$k get services
echo
echo "+ kubelite exec client -- wget -q -O - http://web   (by DNS name, through the ClusterIP)"
for _ in 1 2 3; do
  $k exec client -- timeout 5 wget -q -O - http://web
done
node_ip=$($k get nodes -o json | .venv/bin/python -c 'import json,sys; print(next(a["address"] for a in json.load(sys.stdin)["items"][0]["status"]["addresses"] if a["type"] == "InternalIP"))')
echo "+ kubelite exec client -- wget -q -O - http://${node_ip}:30080   (NodePort on a node's address)"
$k exec client -- timeout 5 wget -q -O - "http://${node_ip}:30080"
echo
echo "The cluster keeps running: try 'kubelite get pods -o wide', 'kubelite scale deploy web --replicas 6',"
echo "'kubelite chaos run node-loss --node n2', and 'kubelite down' to remove it."
