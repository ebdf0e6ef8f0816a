"""Partial syncs, batched full syncs, jump rules and cleanup, applied to a simulated kernel."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy import chains
from proxy.rules import JUMPS, Node, compute_state, render_changes, render_full, render_full_batches
from proxy.saved import parse_saved, plan_jumps, render_cleanup, stale_chains
from unit.proxy.objects import slice_of, subset, svc
from unit.proxy.tracer import BUILTIN, Kernel

N1 = Node("n1")


def web_state(endpoints: list[str], *, name: str = "web", ip: str = "10.96.0.5", node_port: int = 0,
              extra: int = 0) -> dict:
    services = [svc(name, cluster_ip=ip, type="NodePort" if node_port else "ClusterIP",
                    ports=[{"name": "http", "port": 80, "node_port": node_port}])]
    objs = [slice_of(name, subset(endpoints, ports=[("http", 8080, "TCP")]))]
    for i in range(extra):
        services.append(svc(f"other{i}", cluster_ip=f"10.96.1.{i + 1}", ports=[{"port": 80}]))
        objs.append(slice_of(f"other{i}", subset([f"10.244.5.{i + 1}"], ports=[("", 80, "TCP")])))
    return compute_state(services, objs, N1)


def saved_of(kernel: Kernel) -> dict:
    """What iptables-save would print, parsed, for the simulated kernel."""
    out = {}
    for table, chain_rules in kernel.tables.items():
        text = [f":{c} - [0:0]" for c in chain_rules] + [r for rules in chain_rules.values() for r in rules]
        out[table] = parse_saved("\n".join(text))
    return out


def declared(payload: str) -> list[str]:
    table, out = "", []
    for line in payload.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith(":"):
            out.append(f"{table}/{line[1:].split(' ')[0]}")
    return out


def test_endpoint_change_rewrites_only_its_service_chains() -> None:
    """Replacing an endpoint rewrites KUBE-SVC, adds the new KUBE-SEP, deletes the old; KUBE-SERVICES is untouched."""
    old = web_state(["10.244.1.5", "10.244.2.5"], extra=3)
    new = web_state(["10.244.1.5", "10.244.3.5"], extra=3)
    changes = render_changes(old, new, ["default/web"])
    svc_chain = chains.service_chain("default/web:http", "TCP")
    gone = chains.endpoint_chain("default/web:http", "TCP", "10.244.2.5:8080")
    added = chains.endpoint_chain("default/web:http", "TCP", "10.244.3.5:8080")
    assert sorted(changes.written) == sorted([f"nat/{svc_chain}", f"nat/{added}", f"nat/{gone}"])
    assert changes.deleted == (gone,)
    assert "KUBE-SERVICES" not in changes.payload
    assert f"-X {gone}" in changes.payload


def test_unchanged_service_writes_nothing() -> None:
    """A Service whose rendering did not change (say a label edit) produces an empty payload."""
    state = web_state(["10.244.1.5"])
    assert render_changes(state, web_state(["10.244.1.5"]), ["default/web"]).payload == ""


def test_new_service_rewrites_kube_services() -> None:
    """Adding a service port changes the set of ports, so KUBE-SERVICES is rewritten whole."""
    old = web_state(["10.244.1.5"], extra=2)
    new = dict(old) | web_state(["10.244.9.9"], name="api", ip="10.96.0.6")
    changes = render_changes(old, new, ["default/api"])
    assert "nat/KUBE-SERVICES" in changes.written
    assert changes.payload.count("-A KUBE-SERVICES ") == 2 + 2 + 1  # web, api, the others, the nodeports jump


def test_losing_the_last_endpoint_rewrites_filter_rejects_not_kube_services() -> None:
    """0 <-> n endpoints toggles the filter REJECT; the nat KUBE-SERVICES rule stays as it is."""
    old = web_state(["10.244.1.5"], extra=2)
    new = web_state([], extra=2)
    changes = render_changes(old, new, ["default/web"])
    assert "filter/KUBE-SERVICES" in changes.written
    assert "nat/KUBE-SERVICES" not in changes.written
    assert "has no endpoints" in changes.payload


def test_removed_service_deletes_its_chains() -> None:
    """A deleted Service loses its KUBE-SERVICES rule and every chain it owned."""
    old = web_state(["10.244.1.5", "10.244.2.5"], node_port=30080, extra=1)
    new = {k: v for k, v in old.items() if k != "default/web"}
    changes = render_changes(old, new, ["default/web"])
    assert sorted(changes.deleted) == sorted(old["default/web"].owned)
    assert {"nat/KUBE-SERVICES", "nat/KUBE-NODEPORTS"} <= set(changes.written)


endpoint_sets = st.lists(st.sampled_from([f"10.244.{i}.{j}" for i in (1, 2) for j in (1, 2, 3)]), unique=True,
                         max_size=4)
service_specs = st.dictionaries(
    st.sampled_from(["a", "b", "c", "d"]),
    st.tuples(endpoint_sets, st.booleans(), st.booleans()),  # endpoints, node port, ClientIP affinity
    max_size=4,
)


def state_of(spec: dict) -> dict:
    services, objs = [], []
    for i, (name, (endpoints, node_port, affinity)) in enumerate(sorted(spec.items())):
        services.append(svc(name, cluster_ip=f"10.96.0.{i + 1}", type="NodePort" if node_port else "ClusterIP",
                            session_affinity="ClientIP" if affinity else "None",
                            ports=[{"name": "http", "port": 80, "node_port": 30000 + i if node_port else 0}]))
        objs.append(slice_of(name, subset(endpoints, ports=[("http", 8080, "TCP")])))
    return compute_state(services, objs, N1)


@settings(max_examples=150, deadline=None)
@given(service_specs, service_specs)
def test_partial_sync_on_top_of_old_rules_equals_a_full_sync_of_new(old_spec: dict, new_spec: dict) -> None:
    """Whatever changed, the old full payload plus the partial payload leaves exactly the new full ruleset."""
    old, new = state_of(old_spec), state_of(new_spec)
    incremental = Kernel()
    incremental.restore(render_full(old))
    changes = render_changes(old, new, set(old) | set(new))
    incremental.restore(changes.payload)
    fresh = Kernel()
    fresh.restore(render_full(new))
    assert incremental.tables == fresh.tables


@settings(max_examples=60, deadline=None)
@given(service_specs, service_specs, st.integers(1, 3))
def test_batched_full_sync_equals_one_transaction(old_spec: dict, new_spec: dict, batch: int) -> None:
    """A full sync in slices, over any earlier rules, leaves the same ruleset as one full payload, stale chains gone."""
    old, new = state_of(old_spec), state_of(new_spec)
    kernel = Kernel()
    kernel.restore(render_full(old))
    stale = stale_chains(saved_of(kernel)["nat"], new)
    for payload in render_full_batches(new, stale=stale, batch=batch):
        kernel.restore(payload)  # each slice must be valid on its own (no jump to a missing chain)
    fresh = Kernel()
    fresh.restore(render_full(new))
    assert kernel.tables == fresh.tables


def test_batches_keep_each_service_in_one_slice() -> None:
    """Every slice before the last holds whole Services; the shared chains come last."""
    state = state_of({n: (["10.244.1.1", "10.244.2.2"], True, False) for n in "abcd"})
    payloads = render_full_batches(state, batch=1)
    assert len(payloads) == 1 + 4 + 1
    for key, payload in zip(sorted(state), payloads[1:-1], strict=True):
        assert set(declared(payload)) == {f"nat/{c}" for c in state[key].owned}
    assert "nat/KUBE-SERVICES" in declared(payloads[-1])


def test_jumps_are_inserted_once_in_order_and_duplicates_removed() -> None:
    """Missing jump rules are inserted (ending up in JUMPS order), present ones kept, duplicates deleted."""
    kernel = Kernel()
    kernel.restore(render_full(web_state(["10.244.1.5"])))
    kernel.restore(render_full({}, jumps=plan_jumps(saved_of(kernel))))
    for table, builtin in BUILTIN.items():
        for chain in builtin:
            assert kernel.tables[table][chain] == [j.saved for j in JUMPS if (j.table, j.chain) == (table, chain)]
    assert plan_jumps(saved_of(kernel)) == []
    nat_jump = next(j for j in JUMPS if j.chain == "PREROUTING")
    kernel.tables["nat"]["PREROUTING"].append(nat_jump.saved)
    repair = plan_jumps(saved_of(kernel))
    assert repair == ["nat:-D" + nat_jump.saved[2:]]
    kernel.restore(render_full({}, jumps=repair))
    assert kernel.tables["nat"]["PREROUTING"] == [nat_jump.saved]


def test_jump_rules_survive_foreign_rules_in_builtin_chains() -> None:
    """Rules of other software in the built-in chains are neither duplicated nor removed."""
    kernel = Kernel()
    foreign = "-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT"
    kernel.tables["nat"]["CNI-HOSTPORT-DNAT"] = []
    kernel.tables["nat"]["PREROUTING"].append(foreign)
    kernel.restore(render_full({}, jumps=plan_jumps(saved_of(kernel))))
    assert foreign in kernel.tables["nat"]["PREROUTING"]
    assert len(kernel.tables["nat"]["PREROUTING"]) == 2


@pytest.mark.parametrize("batch", [1, 3, 600])
def test_cleanup_removes_everything_and_only_what_the_proxy_made(batch: int) -> None:
    """After cleanup only other software's chains and rules remain, whatever the batch size."""
    kernel = Kernel()
    kernel.tables["nat"]["CNI-HOSTPORT-DNAT"] = ["-A CNI-HOSTPORT-DNAT -j RETURN"]
    kernel.tables["nat"]["PREROUTING"].append("-A PREROUTING -j CNI-HOSTPORT-DNAT")
    kernel.tables["filter"]["INPUT"].append("-A INPUT -i lo -j ACCEPT")
    state = state_of({n: (["10.244.1.1", "10.244.2.2"], True, True) for n in "abc"})
    kernel.restore(render_full(state, jumps=plan_jumps(saved_of(kernel))))
    for payload in render_cleanup(saved_of(kernel), batch=batch):
        kernel.restore(payload)
    assert kernel.tables["nat"] == {"PREROUTING": ["-A PREROUTING -j CNI-HOSTPORT-DNAT"], "INPUT": [], "OUTPUT": [],
                                    "POSTROUTING": [], "CNI-HOSTPORT-DNAT": ["-A CNI-HOSTPORT-DNAT -j RETURN"]}
    assert kernel.tables["filter"] == {"INPUT": ["-A INPUT -i lo -j ACCEPT"], "FORWARD": [], "OUTPUT": []}
    assert render_cleanup(saved_of(kernel)) == []
