"""ConfigMaps and Secrets in pods: environment (keyRefs, envFrom) and volume files (items, modes, optional)."""

from __future__ import annotations

from typing import Any

import pytest

from api import convert
from api.pb import core_pb2
from kubelet import envvars, volumes
from kubelet.envvars import EnvError, PodContext, PodObjects

CTX = PodContext(node_name="n1", host_ip="10.0.0.1", pod_ip="10.244.1.5")
CM = core_pb2.ConfigMap(metadata={"name": "cfg", "namespace": "default"}, data={"color": "blue", "size": "L"},
                        binary_data={"blob": b"\xff"})
SECRET = core_pb2.Secret(metadata={"name": "sec", "namespace": "default"}, data={"token": b"t0k"})
OBJECTS = PodObjects(config_maps={"cfg": CM}, secrets={"sec": SECRET})


def _pod(spec: dict[str, Any]) -> core_pb2.Pod:
    pod = convert.from_dict(core_pb2.Pod, {"metadata": {"name": "p", "namespace": "default", "uid": "u1",
                                                        "labels": {"app": "web"}}, "spec": spec})
    return pod  # type: ignore[return-value]


def _env(container: dict[str, Any], objects: PodObjects = OBJECTS) -> dict[str, str]:
    pod = _pod({"containers": [{"name": "c", "image": "i", **container}]})
    return envvars.container_env(pod, pod.spec.containers[0], services={}, ctx=CTX, objects=objects)


@pytest.mark.parametrize(("container", "want"), [
    pytest.param({"env": [{"name": "C", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "color"}}}]},
                 {"C": "blue"}, id="configmap-key"),
    pytest.param({"env": [{"name": "T", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "token"}}}]},
                 {"T": "t0k"}, id="secret-key"),
    pytest.param({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k",
                                                                        "optional": True}}}]}, {},
                 id="optional-missing-secret"),
    pytest.param({"envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}],
                  "env": [{"name": "CFG_color", "value": "red"}, {"name": "D", "value": "$(CFG_size)"}]},
                 {"CFG_color": "red", "CFG_size": "L", "D": "L"}, id="envfrom-then-env"),
    pytest.param({"envFrom": [{"secretRef": {"name": "none", "optional": True}}]}, {}, id="optional-envfrom"),
])
def test_environment_from_configmaps_and_secrets(container: dict[str, Any], want: dict[str, str]) -> None:
    """keyRefs read one key, envFrom every key (with its prefix) before the container's own variables."""
    assert _env(container) == want


@pytest.mark.parametrize(("container", "message"), [
    pytest.param({"env": [{"name": "T", "valueFrom": {"secretKeyRef": {"name": "late", "key": "k"}}}]},
                 'secret "late" not found', id="missing-secret"),
    pytest.param({"env": [{"name": "C", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "nope"}}}]},
                 "couldn't find key nope in ConfigMap default/cfg", id="missing-key"),
    pytest.param({"envFrom": [{"configMapRef": {"name": "absent"}}]}, 'configmap "absent" not found',
                 id="missing-envfrom"),
])
def test_missing_required_sources_name_what_is_missing(container: dict[str, Any], message: str) -> None:
    """A required ConfigMap, Secret or key that is missing fails the container's config, naming it."""
    with pytest.raises(EnvError) as err:
        _env(container)
    assert str(err.value) == message


@pytest.mark.parametrize(("volume", "want"), [
    pytest.param({"configMap": {"name": "cfg", "defaultMode": 0o644}},
                 {"color": (b"blue", 0o644), "size": (b"L", 0o644), "blob": (b"\xff", 0o644)}, id="configmap-all"),
    pytest.param({"configMap": {"name": "cfg", "defaultMode": 0o644,
                                "items": [{"key": "color", "path": "deep/c.txt", "mode": 0o400}]}},
                 {"deep/c.txt": (b"blue", 0o400)}, id="configmap-items"),
    pytest.param({"secret": {"secretName": "sec", "defaultMode": 0o600}}, {"token": (b"t0k", 0o600)}, id="secret"),
    pytest.param({"secret": {"secretName": "gone", "optional": True, "defaultMode": 0o644}}, {},
                 id="optional-missing"),
    pytest.param({"downwardAPI": {"defaultMode": 0o644, "items": [{"path": "labels", "fieldRef": {
        "fieldPath": "metadata.labels"}}, {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
                 {"labels": (b'app="web"', 0o644), "name": (b"p", 0o644)}, id="downward-api"),
    pytest.param({"projected": {"defaultMode": 0o640, "sources": [
        {"configMap": {"name": "cfg", "items": [{"key": "size", "path": "size"}]}},
        {"secret": {"name": "sec"}}]}}, {"size": (b"L", 0o640), "token": (b"t0k", 0o640)}, id="projected"),
])
def test_volume_files(volume: dict[str, Any], want: dict[str, tuple[bytes, int]]) -> None:
    """The files each kind of volume shows, with their modes."""
    pod = _pod({"containers": [{"name": "c", "image": "i"}], "volumes": [{"name": "v", **volume}]})
    files = volumes.compute_files(pod, pod.spec.volumes[0], OBJECTS, CTX)
    assert {k: (f.content, f.mode) for k, f in files.items()} == want


def test_a_missing_required_configmap_fails_the_volume() -> None:
    """A volume of a ConfigMap that does not exist (yet) is an error naming it."""
    pod = _pod({"containers": [{"name": "c", "image": "i"}], "volumes": [{"name": "v", "configMap": {"name": "x"}}]})
    with pytest.raises(volumes.MissingObjectError, match='configmap "x" not found'):
        volumes.compute_files(pod, pod.spec.volumes[0], OBJECTS, CTX)


@pytest.mark.parametrize(("claims", "pvs", "message"), [
    pytest.param({}, {}, 'persistentvolumeclaim "data" not found', id="no-claim"),
    pytest.param({"data": core_pb2.PersistentVolumeClaim(status={"phase": "Pending"})}, {},
                 'persistentvolumeclaim "data" is not bound', id="unbound"),
])
def test_claim_volumes_need_a_bound_claim(claims: dict[str, Any], pvs: dict[str, Any], message: str) -> None:
    """A claim volume resolves only through a bound claim."""
    with pytest.raises(volumes.VolumeError, match=message):
        volumes.claim_path("data", PodObjects(claims=claims, volumes=pvs))


def test_refs_name_every_object_a_pod_uses() -> None:
    """Volumes, projected sources, keyRefs and envFrom all count."""
    pod = _pod({"containers": [{"name": "c", "image": "i", "envFrom": [{"secretRef": {"name": "s2"}}],
                                "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "c2", "key": "k"}}}]}],
                "volumes": [{"name": "a", "configMap": {"name": "c1"}}, {"name": "b", "secret": {"secretName": "s1"}},
                            {"name": "c", "projected": {"sources": [{"configMap": {"name": "c3"}}]}},
                            {"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]})
    refs = volumes.compute_refs(pod)
    assert refs.config_maps == {"c1", "c2", "c3"} and refs.secrets == {"s1", "s2"} and refs.claims == {"data"}
