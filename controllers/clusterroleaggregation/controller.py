"""Writes into each ClusterRole with an aggregationRule the rules of every ClusterRole its selectors match, so
`get clusterrole admin -o yaml` shows what admin grants, as Kubernetes' controller of the same name does."""

from __future__ import annotations

from api import rbac
from api.pb import rbac_pb2
from client.api import Client
from controllers.base import QueueController
from controllers.informers import SharedInformers


class ClusterRoleAggregationController(QueueController):
    name = "clusterrole-aggregation-controller"

    def __init__(self, client: Client, informers: SharedInformers) -> None:
        super().__init__()
        self.client = client
        self.roles = informers.get("clusterroles")
        # Any ClusterRole's change may change what any aggregated one selects: look at every aggregated one.
        self.roles.add_handlers(self._changed, lambda old, new: self._changed(new), self._changed)

    async def ready(self) -> None:
        await self.roles.synced.wait()

    def _changed(self, _role: rbac_pb2.ClusterRole) -> None:
        for role in self.roles.list():
            if role.HasField("aggregation_rule"):
                self.enqueue(role)

    async def reconcile(self, key: str) -> None:
        role = self.roles.get(key)
        if role is None or not role.HasField("aggregation_rule"):
            return
        rules = rbac.aggregate(role, self.roles.list())
        if list(role.rules) == rules:
            return
        update = rbac_pb2.ClusterRole()
        update.CopyFrom(role)
        del update.rules[:]
        update.rules.extend(rules)
        await self.client.update(update)  # compare-and-swap on the version read; a conflict is retried
        self.log.info("clusterrole_aggregated", role=role.metadata.name, rules=len(rules))
