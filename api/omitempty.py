"""Which fields Kubernetes' JSON always carries, zero or not.

Kubernetes prints an object by Go's encoding/json: a field is left out when
empty only if its struct tag says `omitempty`, and never if it is a struct
(`lastState: {}`). Protobuf has no such mark, so this table names, per
message, the fields whose Go tag lacks `omitempty` or whose Go type is a
struct: `restartCount: 0`, `ready: false`, `exitCode: 0`, `replicas: 0` in a
ReplicaSet's status, `loadBalancer: {}` in a Service's. Every other field is
printed only when set, as `omitempty` does; proto3 `optional` fields (Go
pointers) are printed whenever set, even to zero.

Left out on purpose: times Go prints as `null` when unset (`lastProbeTime`,
`creationTimestamp` in templates; a missing key reads as null too), slices and
maps Go prints as `null`, and int-or-string structs that defaulting always
fills (`targetPort`).
"""

from __future__ import annotations

_TOP = frozenset({"metadata", "spec", "status"})

# Message name (without the kubelite.v1 package) -> JSON names of its always-printed fields.
ALWAYS: dict[str, frozenset[str]] = {
    # core/v1 kinds: ObjectMeta, spec and status are Go structs, printed even when empty.
    "Namespace": _TOP,
    "Pod": _TOP,
    "Node": _TOP,
    "Service": _TOP,
    "Endpoints": frozenset({"metadata"}),
    "Event": frozenset({"metadata", "involvedObject", "source", "reportingComponent", "reportingInstance"}),
    # core/v1 parts
    "Container": frozenset({"name"}),
    "ContainerPort": frozenset({"containerPort"}),
    "EnvVar": frozenset({"name"}),
    "KeySelector": frozenset({"key"}),
    "ObjectFieldSelector": frozenset({"fieldPath"}),
    "ResourceFieldSelector": frozenset({"resource"}),
    "VolumeMount": frozenset({"name", "mountPath"}),
    "Volume": frozenset({"name"}),
    "HostPathVolumeSource": frozenset({"path"}),
    "HTTPHeader": frozenset({"name", "value"}),
    "GRPCAction": frozenset({"port"}),
    "NodeSelectorRequirement": frozenset({"key", "operator"}),
    "PreferredSchedulingTerm": frozenset({"weight", "preference"}),
    "PodAffinityTerm": frozenset({"topologyKey"}),
    "WeightedPodAffinityTerm": frozenset({"weight", "podAffinityTerm"}),
    "TopologySpreadConstraint": frozenset({"maxSkew", "topologyKey", "whenUnsatisfiable"}),
    "PodCondition": frozenset({"type", "status"}),
    "ContainerStateTerminated": frozenset({"exitCode"}),
    "ContainerStatus": frozenset({"name", "state", "lastState", "ready", "restartCount", "image", "imageID"}),
    "Taint": frozenset({"key", "effect"}),
    "NodeCondition": frozenset({"type", "status"}),
    "NodeAddress": frozenset({"type", "address"}),
    "DaemonEndpoint": frozenset({"Port"}),
    "NodeDaemonEndpoints": frozenset({"kubeletEndpoint"}),
    "NodeSystemInfo": frozenset({"machineID", "systemUUID", "bootID", "kernelVersion", "osImage",
                                 "containerRuntimeVersion", "kubeletVersion", "kubeProxyVersion",
                                 "operatingSystem", "architecture"}),
    "NodeStatus": frozenset({"daemonEndpoints", "nodeInfo"}),
    "ServicePort": frozenset({"port"}),
    "ServiceStatus": frozenset({"loadBalancer"}),
    "EndpointAddress": frozenset({"ip"}),
    "EndpointPort": frozenset({"port"}),
    "KeyToPath": frozenset({"key", "path"}),
    "DownwardAPIVolumeFile": frozenset({"path"}),
    "ServiceAccountTokenProjection": frozenset({"path"}),
    "PersistentVolumeClaimVolumeSource": frozenset({"claimName"}),
    "LocalVolumeSource": frozenset({"path"}),
    "ConfigMapEnvSource": frozenset(),
    "ConfigMap": frozenset({"metadata"}),
    "Secret": frozenset({"metadata"}),
    "ServiceAccount": frozenset({"metadata"}),
    "PersistentVolume": _TOP,
    "PersistentVolumeClaim": _TOP,
    "PersistentVolumeClaimCondition": frozenset({"type", "status"}),
    "VolumeNodeAffinity": frozenset(),
    # storage.k8s.io/v1
    "StorageClass": frozenset({"metadata", "provisioner"}),
    "TopologySelectorLabelRequirement": frozenset({"key"}),
    # meta/v1
    "Condition": frozenset({"type", "status", "reason", "message"}),
    "LabelSelectorRequirement": frozenset({"key", "operator"}),
    "OwnerReference": frozenset({"apiVersion", "kind", "name", "uid"}),
    # apps/v1 and coordination.k8s.io/v1
    "ReplicaSet": _TOP,
    "ReplicaSetSpec": frozenset({"template"}),
    "ReplicaSetStatus": frozenset({"replicas"}),
    "ReplicaSetCondition": frozenset({"type", "status"}),
    "Deployment": _TOP,
    "DeploymentSpec": frozenset({"template", "strategy"}),
    "DeploymentCondition": frozenset({"type", "status"}),
    "PodTemplateSpec": frozenset({"metadata", "spec"}),
    "Lease": frozenset({"metadata", "spec"}),
    # scheduling.k8s.io/v1
    "PriorityClass": frozenset({"metadata", "value"}),
    # networking.k8s.io/v1 and discovery.k8s.io/v1
    "Ingress": _TOP,
    "IngressStatus": frozenset({"loadBalancer"}),
    "HTTPIngressPath": frozenset({"backend"}),
    "IngressServiceBackend": frozenset({"name", "port"}),
    "IngressPortStatus": frozenset({"port", "protocol"}),
    "IngressClass": frozenset({"metadata", "spec"}),
    "EndpointSlice": frozenset({"metadata", "addressType"}),
    "SliceEndpoint": frozenset({"conditions"}),
    # batch/v1
    "Job": _TOP,
    "JobSpec": frozenset({"template"}),
    "JobCondition": frozenset({"type", "status"}),
    "CronJob": _TOP,
    "CronJobSpec": frozenset({"schedule", "jobTemplate"}),
    "JobTemplateSpec": frozenset({"metadata", "spec"}),
    # apps/v1: daemon sets, stateful sets, controller revisions
    "DaemonSet": _TOP,
    "DaemonSetSpec": frozenset({"template", "updateStrategy"}),
    "DaemonSetStatus": frozenset({"currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled",
                                  "numberReady"}),
    "DaemonSetCondition": frozenset({"type", "status"}),
    "StatefulSet": _TOP,
    "StatefulSetSpec": frozenset({"template", "updateStrategy"}),
    "StatefulSetStatus": frozenset({"replicas", "availableReplicas"}),
    "StatefulSetCondition": frozenset({"type", "status"}),
    "ControllerRevision": frozenset({"metadata", "data", "revision"}),
    # policy/v1
    "PodDisruptionBudget": _TOP,
    "PodDisruptionBudgetStatus": frozenset({"disruptionsAllowed", "currentHealthy", "desiredHealthy",
                                            "expectedPods"}),
}

_PACKAGE = "kubelite.v1."


def always(full_name: str) -> frozenset[str]:
    """The always-printed JSON names of a message, by its full protobuf name."""
    if not full_name.startswith(_PACKAGE):
        return frozenset()
    return ALWAYS.get(full_name[len(_PACKAGE):], frozenset())
