"""The controller-manager: replicaset, deployment, endpoints, node lifecycle and garbage collection.

Each controller follows one shape: informer event handlers only enqueue keys,
a work queue hands each key to one worker at a time, and `reconcile(key)`
reads the informer cache, asks a pure `plan_*` function what to do, writes,
and raises to be retried with backoff.
"""
