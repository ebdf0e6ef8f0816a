"""Service proxy (Services + EndpointSlices -> iptables or nftables rules in a node's namespace) and cluster DNS.

proxier     the proxy daemon: informers, change tracking, one writer, health checks of Local Services
modes       the two ways of writing rules (iptables, nftables): full and partial syncs, flush checks, cleanup
rules       iptables mode: render_rules, Services + slices -> iptables-restore input (pure)
chains      iptables mode: chain names, fixed ones and stable hashed ones per service port
saved       iptables mode: what iptables-save shows, and plans made from it (repair, stale chains, cleanup)
iptables    running iptables-restore/-save, optionally in a network namespace
nftrules    nftables mode: Services + slices -> one table `kubelite`, statements, transactions (pure)
nfnetlink   nftables mode: transactions written straight over netlink (partial syncs)
nft         running `nft -f`, optionally in a network namespace
services    Services and EndpointSlices as the proxy sees them: ports, endpoints per traffic policy
healthcheck the healthCheckNodePort answers of externalTrafficPolicy Local Services
runner      a bounded-frequency runner that merges bursts
netns       which namespace the proxy writes into (never the machine's own), sockets made in it
conntrack   forget UDP flows to endpoints that no longer serve
dns         the cluster DNS daemon
zone        the DNS names from Services and Endpoints, and the answer to one query (pure)
metrics     Prometheus metrics of the proxy and DNS
"""
