"""The objects and what every component and the CLI share about them; imports no component.

pb/          generated protobuf types (proto/kubelite/v1)
kinds        the served kinds: names, short names, scope, class; one entry per kind
errors       one error hierarchy, mapped to gRPC codes both ways
convert      Kubernetes YAML/JSON <-> protobuf, with file/document/field in every error
columns      the columns kubectl prints per kind and each object's cells (`kubelite get`, the REST Table format)
omitempty    which fields JSON/YAML output prints even when zero (as Kubernetes' Go struct tags say)
defaults     defaults the apiserver fills in, per kind
validation   validation naming each field, per kind
memo         a bounded memo for pure checks of a spec, keyed by its encoding (the pods of one template)
securitycontext  what securityContext kubelite enforces, refuses, and the effective settings per container
labels       label and field selectors
quantity     quantities ("500m", "128Mi")
intstr       IntOrString values
names        DNS-1123 / DNS-1035 / IANA name rules
conditions   object conditions: get, set, carry over, remove
timestamps   Timestamps <-> float seconds, "now"
pods         pod phase predicates: terminal, terminating, active
volumes      PersistentVolumes and claims: matching, node affinity, the annotations and reasons shared by the PV
             controller, the provisioner, the scheduler and the kubelet
deployments  the Deployment vocabulary shared by the controller and the CLI (annotations, conditions, revisions)
jobs         the Job vocabulary: labels, conditions, reasons, the generated selector, completed indexes
loadbalancer LoadBalancer Services: the allocated-address annotation, the class, the announcing Lease
placement    node selector, required node affinity and tolerations: may a pod go to a node
logs         structlog configured once per process
text         control characters refused in fields; messages escaped onto one line
limits       limits clients and the apiserver agree on (largest object)
rbac         RBAC objects' validation: rules, subjects, roleRef; names with colons
"""
