"""The scheduler: binds pending pods to nodes (filter, score, bind), leader-elected.

daemon       the daemon: informers feed the cache and the queue; one loop decides; binds run in the background
binder       binds made while others are in flight go in one BindMany call
queue        active (by priority, then age), backoff and unschedulable pods
cache        nodes and the pods on them, plus pods assumed but not yet bound
preemption   which pods to evict so that a pod fits
overcommit   an independent checker: do the pods bound to each node fit it?
framework/   interface (one Protocol per extension point), runner, types (snapshots), config
plugins/     filters and scores: resources, node affinity, ports, taints, inter-pod affinity, spreading
"""
