"""The kubelet: registers a node and runs the pods bound to it through a container runtime.

kubelet     the daemon: informer on the node's pods, pod workers, PLEG, housekeeping
config      KubeletConfig, what the CLI flags fill in
node        Node registration, status (Ready) and the heartbeat Lease
actions     compute_pod_actions: the pure plan for one pod (kuberuntime's computePodActions)
sync        Syncer.sync_pod: carries a plan out against the runtime, in numbered steps
podstatus   compute_pod_status: the pod's API status from its runtime state (pure)
status      StatusManager: one coalescing, resuming status stream per kubelet
podworkers  one worker task per pod, never two syncs of a pod at once
probes      liveness, readiness and startup probes (exec, httpGet, tcpSocket)
observed    the runtime's view of one pod, read through CRI labels
identity    CRI labels and annotations naming pods and containers (adoption after restarts)
specs       sandbox and container configs from a pod spec (DNS, resources, log paths)
envvars     container environments: service links, fieldRef, configMap and secret refs, envFrom, $(VAR)
volumes     emptyDir, hostPath, configMap, secret (tmpfs), downwardAPI, projected and claim volumes
atomic      the atomic writer: a volume's files swap at once through the `..data` link
filesystems which filesystem a path is on (mountinfo): file work inline when the kubelet's directory is tmpfs
localpath   the node's side of local-path volumes: directories made and removed on this node's disk
objects     watches of exactly the ConfigMaps, Secrets, claims and volumes the node's pods refer to
backoff     exponential back-off for restarts and image pulls
server      the Kubelet gRPC service: logs, exec and interactive streams, over mutual TLS to the apiserver only
streaming   interactive exec and attach bridged to the runtime's streaming server (WebSocket, v4.channel.k8s.io)
certificates  renews the node's certificates before they expire, without a restart
hollow      many fake-runtime kubelets in one process, for benchmarks
runtime/    the container runtime layer (CRI, process, fake)
"""
