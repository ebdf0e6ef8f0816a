"""The speaker: makes LoadBalancer addresses answer on the node network, as MetalLB's layer-2 mode does.

One speaker runs on each node. For each LoadBalancer Service with a ready endpoint,
exactly one eligible node announces the address: it answers ARP for it and sends
gratuitous ARP when it takes it over; every node's proxy already has the rules that
send the traffic on to the endpoints. A Lease per Service (`kubelite-lb-<service>`,
in its namespace) records which node announces and since when.

plan     pure: which node announces a Service, and what this node does about it
arp      ARP frames: parse and build (pure), and a responder on an AF_PACKET socket
speaker  the daemon: informers in, ARP answers, Leases, Service status and Events out
"""
