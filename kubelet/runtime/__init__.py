"""The container runtime layer the kubelet drives.

interface   the Runtime protocol, configs, statuses, errors
cri         Runtime over CRI gRPC (containerd)
process     Runtime of host processes in per-pod namespaces
fake        Runtime without processes (tests, hollow nodes)
instrumented  latency/error metrics around any Runtime
logs        CRI log file format: reader and writer
cgroups     pod and container cgroups
cni         the node's pod network conflist and a CNI plugin driver
images      the names of our pause and busybox images (built by deploy/node/images.py)
procinit    the process runtime's child-side setup (run as a script)
"""
