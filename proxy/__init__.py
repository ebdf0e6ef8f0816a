"""Service proxy (Services + Endpoints -> iptables rules in a node's namespace) and cluster DNS."""
