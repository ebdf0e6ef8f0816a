"""The `kubelite` command, in two wings.

main        the root group: registers both wings' commands

The user commands speak to the apiserver through client/ only (an
import-linter contract keeps them to api/ and client/):
apply       apply -f: Kubernetes YAML in, create or update, three-way merge (merge)
get         get: tables, wide, -o yaml/json
describe    describe: details and recent events
delete      delete by file, name or selector
verbs       create namespace, label, annotate, scale, cordon, taint, wait, api-resources, version
workloads   rollout status|history|undo|restart|pause|resume (deployments, daemonsets, statefulsets), set image
pods        logs (also a local cluster's component logs) and exec
auth        auth can-i|whoami; create role|clusterrole|rolebinding|clusterrolebinding
tokens      token create|list|delete: join tokens
kubeconfig  kubeconfig: a kubeconfig for kubectl with this CLI's credentials and the cluster's REST URL
jobs        create job (from flags, or --from=cronjob/NAME)
drain       drain: cordon, then evict through the eviction subresource, respecting disruption budgets
printers    tables and -o output (each kind's columns and cells: api/columns.py)
merge       the three-way merge of apply
common      connection options, error reporting, the local-cluster option

daemons/    the machine side: each component's entry point, and the local cluster (up, down, status,
            bootstrap, certs, images, chaos)
"""
