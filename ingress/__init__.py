"""The ingress controller: Ingresses -> an nginx inside the node's namespace (`kubelite ingress`).

controller  the daemon: informers, debounced syncs, nginx -t then a graceful reload, status and events
render      Ingresses + Services + EndpointSlices + Secrets -> nginx.conf and certificate files (pure)
nginx       the nginx master process: check, start, reload, stop
status      an Ingress's status.loadBalancer with or without this node's address (pure)
"""
