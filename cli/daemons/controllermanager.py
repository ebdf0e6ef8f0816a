"""`kubelite controller-manager`: the controllers in one leader-elected process."""

from __future__ import annotations

import click

from cli.common import connection_options
from client.config import ClientConfig


@click.command("controller-manager")
@connection_options
@click.option("--controllers", "controllers_spec", default="*", show_default=True,
              help="controllers to run: '*' for all, names to add, -name to leave one out "
                   "(replicaset, deployment, endpoints, nodelifecycle, garbagecollector, namespace, "
                   "persistentvolume, job, cronjob, daemonset, statefulset, disruption)")
@click.option("--node-monitor-grace-period", type=float, default=2.0, show_default=True,
              help="seconds a node's lease may go unrenewed before the node is marked Ready=Unknown")
@click.option("--node-monitor-period", type=float, default=0.25, show_default=True,
              help="seconds between checks of node leases")
@click.option("--node-eviction-rate", type=click.FloatRange(min=0), default=0.1, show_default=True,
              help="nodes per second, per zone, whose pods start being evicted (0: never)")
@click.option("--secondary-node-eviction-rate", type=click.FloatRange(min=0), default=0.01, show_default=True,
              help="the same in a partially disrupted zone larger than --large-cluster-size-threshold")
@click.option("--unhealthy-zone-threshold", type=click.FloatRange(min=0, max=1, min_open=True), default=0.55,
              show_default=True, help="share of a zone's nodes (more than 2) not ready that makes it partially "
                                      "disrupted")
@click.option("--large-cluster-size-threshold", type=click.IntRange(min=0), default=50, show_default=True,
              help="nodes a zone needs to keep evicting, at the secondary rate, while partially disrupted")
@click.option("--leader-elect/--no-leader-elect", default=True, show_default=True,
              help="run only while holding the kube-controller-manager lease in kube-system")
@click.option("--leader-elect-lease-duration", type=float, default=4.0, show_default=True)
@click.option("--leader-elect-renew-interval", type=float, default=1.0, show_default=True)
@click.option("--identity", default="", help="leader election identity (default: host, pid and a random suffix)")
@click.option("--concurrent-replicaset-syncs", type=int, default=4, show_default=True)
@click.option("--concurrent-deployment-syncs", type=int, default=2, show_default=True)
@click.option("--log-level", default="info")
def controller_manager(conn: ClientConfig, controllers_spec: str, node_monitor_grace_period: float,
                       node_monitor_period: float, node_eviction_rate: float, secondary_node_eviction_rate: float,
                       unhealthy_zone_threshold: float, large_cluster_size_threshold: int, leader_elect: bool,
                       leader_elect_lease_duration: float, leader_elect_renew_interval: float, identity: str,
                       concurrent_replicaset_syncs: int, concurrent_deployment_syncs: int, log_level: str) -> None:
    """Run the controllers: replicaset, deployment, endpoints, node lifecycle, garbage collector, namespace,
    volumes, job, cronjob, daemonset, statefulset and disruption."""
    from api import logs
    from cli.daemons import serve
    from controllers.manager import Config, ControllerManager, default_identity, select_controllers
    from controllers.nodelifecycle.plan import EvictionRates

    try:
        chosen = select_controllers(controllers_spec)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--controllers") from None
    if node_monitor_grace_period <= 0 or node_monitor_period <= 0:
        raise click.BadParameter("must be positive", param_hint="--node-monitor-grace-period/--node-monitor-period")
    logs.configure("controller-manager", level=log_level)
    config = Config(client=conn, controllers=chosen, node_monitor_grace_period=node_monitor_grace_period,
                    node_monitor_period=node_monitor_period,
                    eviction_rates=EvictionRates(node_eviction_rate, secondary_node_eviction_rate,
                                                 unhealthy_zone_threshold, large_cluster_size_threshold),
                    leader_elect=leader_elect,
                    lease_duration=leader_elect_lease_duration, renew_interval=leader_elect_renew_interval,
                    identity=identity or default_identity(), replicaset_workers=concurrent_replicaset_syncs,
                    deployment_workers=concurrent_deployment_syncs)
    serve(ControllerManager(config).run())


COMMANDS: list[click.Command] = [controller_manager]
