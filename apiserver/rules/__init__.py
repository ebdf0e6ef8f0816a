"""Each kind's rules, one module per kind, in the spirit of Kubernetes' pkg/registry/<group>/<kind>/strategy.go.

The registry is a generic verb engine; everything that differs between kinds
is a `Strategy` (strategy.py) that the registry asks at fixed points:

- create: `prepare_for_create` fills server-owned fields and defaults (metadata
  is done by the registry: uid, timestamps, generation), then `validate`;
- update: `prepare_for_update` re-defaults what a client may change, then
  `validate_update` (immutable fields); `tracks_generation` says whether a
  spec change advances metadata.generation;
- status (UpdateStatus, the kubelet's stream): the status strategy,
  `prepare_for_status_update` and `validate_status_update`, sees the stored
  spec and metadata with a new status; nothing else is re-defaulted or
  re-validated, so a heartbeat costs a copy and a compare;
- delete: `check_delete` may refuse; `delete_grace` makes a kind graceful (pods
  wait for their kubelet); `plan_delete` marks for deletion (finalizers,
  deletionTimestamp) or says "remove now"; `ready_to_remove` says when a marked
  object goes; `orphans_dependents` honours propagationPolicy=Orphan;
- allocation hooks: `allocate` fills values the kind claims in storage (a
  Service's cluster IP and ports) and returns the claim ops committed with the
  object, `release` drops in-memory reservations, `claims` lists what a delete
  frees;
- subresources and storage: `scalable` (Scale), `ttl_seconds` (Events expire),
  `create_in_terminating_namespace`;
- `index`: an extra watch-cache index (pods by spec.nodeName for kubelets).

A kind without a module gets the plain `Strategy`. Adding a kind is a proto
message, an entry in api/kinds.py, and (if its rules differ) one module here
with a `Rules(Strategy)` class naming its `kind`: modules are found by listing
this package.

Admission (apiserver/admission.py) is a separate, ordered chain the registry
runs around these rules: authentication (server) → authorization → admission
(mutating) → prepare and validate (these rules) → admission (validating) →
storage.

strategy     Strategy (the interface, and a plain kind's rules), Config, Index
pod          defaults and tolerations, graceful delete, binding, the kubelet's status, the by-node index
service      cluster IP, NodePort and load-balancer allocation
namespace    the kubernetes finalizer, Terminating, system namespaces
node         NoExecute taints stamped with timeAdded; status writes check the reported capacities
event        expiry, allowed in a terminating namespace
lease        renewals are not generations
replicaset   scalable, orphaning delete
deployment   scalable, orphaning delete
priorityclass the system classes: created at start, never deleted
bootstraptoken  join tokens: the secret's hash is immutable
priorityclass          the system classes: created at start, never deleted
persistentvolume       the pv-protection finalizer
persistentvolumeclaim  the pvc-protection finalizer
ingress                a controller's status writes are checked
job                    a selector generated from the Job's uid; orphaning delete; status is the controller's
cronjob                orphaning delete; status is the controller's
daemonset              orphaning delete; status is the controller's
statefulset            scalable, orphaning delete; status is the controller's
poddisruptionbudget    status is the disruption controller's and the eviction subresource's
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from api import kinds
from apiserver.rules.strategy import Config, Index, Strategy

__all__ = ["Config", "Index", "Strategy", "build", "rules_classes"]


def rules_classes() -> dict[str, type[Strategy]]:
    """Every kind's Rules class, by kind name, from the modules of this package."""
    out: dict[str, type[Strategy]] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name == "strategy":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        cls = getattr(module, "Rules", None)
        if cls is not None:
            out[cls.kind] = cls
    return out


_CLASSES = rules_classes()


def build(config: Config, ctx: Any = None) -> dict[str, Strategy]:
    """One strategy per served kind (plain ones for kinds without a module)."""
    return {k.kind: _CLASSES.get(k.kind, Strategy)(config, ctx) for k in kinds.KINDS}


def index_of(kind: kinds.Kind) -> Index | None:
    """The extra watch-cache index `kind` wants, if any."""
    cls = _CLASSES.get(kind.kind)
    return cls.index if cls is not None else None
