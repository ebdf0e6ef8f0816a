"""Service proxy (Services + Endpoints -> iptables rules in a node's namespace) and cluster DNS.

proxier     the proxy daemon: informers, change tracking, one writer
rules       render_rules: Services + Endpoints -> iptables-restore input (pure)
chains      chain names: fixed ones and stable hashed ones per service port
services    Services and Endpoints as the proxy sees them
saved       what iptables-save shows, and plans made from it (repair, stale chains, cleanup)
runner      a bounded-frequency runner that merges bursts
iptables    running iptables-restore/-save, optionally in a network namespace
netns       which namespace the proxy writes into (never the machine's own)
conntrack   forget UDP flows to removed endpoints
dns         the cluster DNS daemon
zone        the DNS names from Services and Endpoints, and the answer to one query (pure)
metrics     Prometheus metrics of the proxy and DNS
"""
