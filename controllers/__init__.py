"""The controller-manager: replicaset, deployment, endpoints, endpoint slices, node lifecycle, garbage
collection, volumes, job, cronjob, daemonset, statefulset, disruption and ClusterRole aggregation.

Each controller follows one shape: informer event handlers only enqueue keys,
a work queue hands each key to one worker at a time, and `reconcile(key)`
reads the informer cache, asks a pure `plan_*` function what to do, writes,
and raises to be retried with backoff.

manager        the controller-manager: every controller in one process, leader-elected
base           QueueController: the work queue, enqueue helpers, the reconcile loop, its event recorder
informers      one informer per kind, with the indexes controllers share
owners         controller references, plan_claims, and apply_claims (adopt and release)
expectations   do not act on a key again until the informer saw its last writes
podstate       what controllers ask about a pod: ready, available, deletion order
events         event recording with Kubernetes' spam filter
podcontrol     creating and deleting a controller's pods: slow-start batches, expectations, events
history        ControllerRevisions: a DaemonSet's or StatefulSet's templates, numbered, truncated
ownedpods      OwnedPodsController: pod and revision events mapped to their DaemonSet or StatefulSet owner
replicaset/    plan_replicas, slow-start creates, status
deployment/    rolling and recreate rollouts, status and conditions (plan_*), util
endpoints/     Endpoints from Services and ready pods
endpointslice/ EndpointSlices from pods (or mirrored from a selectorless Service's Endpoints)
nodelifecycle/ node health from leases, not-ready taints, eviction
gc/            owner-reference garbage collection, namespace deletion, terminated pods
volume/        the PV controller (binding, phases, reclaim, protection) and the local-path provisioner
job/           Jobs: pods counted once through the tracking finalizer, backoff, deadlines, Indexed, TTL (plan_job)
cronjob/       CronJobs: Jobs on a cron schedule, concurrency policies, history limits (plan_cronjob)
daemonset/     DaemonSets: a pod on every eligible node, rolling updates by node (plan_daemonset)
statefulset/   StatefulSets: ordinal pods and claims, ordered or parallel, partitioned updates (plan_statefulset)
disruption/    PodDisruptionBudget status for the eviction subresource (plan_budget)
clusterroleaggregation/ an aggregated ClusterRole's rules written from the roles its selectors match
"""
