"""Faults, the recoveries they test, and chaos runs under a live workload.

faults      fault drivers: stop a node, cut it off, kill or pause a component, netem, fill a disk; on the lab
            or over ssh on VMs
scenarios   node loss and component restart: a fault, the recovery the design promises, and a timed report
plan        what a run does when: the scenario table, fault validation, a soak's faults from its seed (pure)
run         a run on a cluster: the load client, API writer and invariant watcher, the faults on schedule
vm          a run's target on a VM lab: its machines, its admin client, the load client over ssh
loadclient  the load client process: HTTP requests at a fixed rate, one line per outcome
timeline    samples into per-second series, success rates and recovery times (pure)
invariants  what must hold through any fault, checked on the watcher's snapshots (pure)
report      report.json, timeline.png and report.md of a run, and its summary
"""
