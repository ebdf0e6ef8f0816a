"""The apiserver: the API over etcd, a watch cache in front, each kind's rules in one module.

server         the gRPC front end: parse, call the registry, return its bytes; TLS ports; health
rest/          the same API as Kubernetes' REST API (kubectl, client libraries): discovery, verbs, watch,
               patch, Table, logs and exec, over the same registry, watch cache and authentication
authn          who calls: client certificate, bearer token or join token; the user every later step reads
authz/         authorization after authentication: RBAC, the node authorizer, default roles
audit          the audit log: a JSON line per mutating, exec/log or denied request, rotated by size
nodecerts      which certificates a node may ask for, signed with the cluster CA
satoken        ServiceAccount tokens: ES256 JWTs with Kubernetes' bound-token claims, signed and verified
serviceaccounts  the TokenRequest call and authentication by ServiceAccount token (the account, the pod exist)
registry       the generic verbs (create, get, list, update, update-status, delete, watch, bind and
               scale as subresources); names no kind
rules/         one module per kind: defaults, validation, status, delete and allocation rules, cache indexes
admission      the ordered admission chain every create passes (priority, namespace lifecycle, default storage
               class, service accounts, ...)
podsecurity    Pod Security admission: the privileged, baseline and restricted checks, levels per namespace
serviceip      Service externalIPs: refused unless the apiserver allows their CIDRs
warning        warnings for one request's caller, sent back as trailing metadata
encryption     encryption at rest: the EncryptionConfiguration file, its aesgcm and identity providers
cache          the watch cache: one etcd watch, every kind in memory, shared encoded watch frames
allocator      Service cluster IPs, NodePorts and load-balancer addresses, claimed as etcd keys
kubelet_proxy  logs and exec, proxied to the pod's kubelet
eviction       a pod's eviction subresource: deleted unless its PodDisruptionBudget forbids it
overload       per-connection and per-client caps on calls, watches and streams
wire           just enough protobuf wire format to concatenate pre-encoded messages
storage/       the storage interface and its etcd implementation (group commit)
"""
