"""auth can-i, auth whoami, create role|clusterrole|rolebinding|clusterrolebinding|serviceaccount with kubectl's
flags, and create token."""

from __future__ import annotations

import sys

import click

from api import kinds, rbac, validation
from api.errors import ApiError
from api.pb import api_pb2, core_pb2, rbac_pb2
from cli import printers
from cli.common import connection_options, namespace_option, with_client
from cli.pods import parse_duration
from cli.verbs import create
from client.api import Client
from client.config import ClientConfig


@click.group()
def auth() -> None:
    """Inspect authorization: can-i, whoami."""


@auth.command("can-i")
@click.argument("verb")
@click.argument("resource")
@click.argument("name", required=False, default="")
@click.option("--subresource", default="", help="e.g. exec, log, status (or give RESOURCE as pods/exec)")
@namespace_option
@connection_options
def can_i(verb: str, resource: str, name: str, subresource: str, namespace: str, conn: ClientConfig) -> None:
    """Say whether you (or, with --as, another user) may do VERB on RESOURCE: prints yes or no, exits 0 or 1."""
    resource, _, sub = resource.partition("/")
    resource = resource.split(".")[0]  # deployments.apps: the group follows from the resource

    async def go(c: Client) -> bool:
        review = await c.access_review(verb, resource, namespace or "default", subresource=subresource or sub,
                                       name=name)
        return review.allowed

    allowed = with_client(conn, go)
    click.echo("yes" if allowed else "no")
    sys.exit(0 if allowed else 1)


@auth.command("whoami")
@connection_options
def whoami(conn: ClientConfig) -> None:
    """Print who the apiserver takes you for: user name and groups."""

    async def go(c: Client):  # type: ignore[no-untyped-def]
        return await c.who_am_i()

    me = with_client(conn, go)
    rows = [("Username", me.username), *([("UID", me.uid)] if me.uid else []),
            ("Groups", "[" + " ".join(me.groups) + "]")]
    width = max(len(k) for k in ("ATTRIBUTE", *(k for k, _ in rows))) + 3
    click.echo("ATTRIBUTE".ljust(width) + "VALUE")
    for key, value in rows:
        click.echo(key.ljust(width) + value)


def _split(values: tuple[str, ...]) -> list[str]:
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def rules_from_flags(verbs: tuple[str, ...], resources: tuple[str, ...], names: tuple[str, ...],
                     urls: tuple[str, ...] = ()) -> list[rbac_pb2.PolicyRule]:
    """kubectl's `--verb/--resource/--resource-name` as rules: one per API group (RESOURCE[.GROUP][/SUB])."""
    verb_list = _split(verbs)
    by_group: dict[str, list[str]] = {}
    for r in _split(resources):
        base, _, sub = r.partition("/")
        if base == "*":
            group, plural = "*", "*"
        elif "." in base:
            plural, group = base.split(".", 1)
        else:
            try:
                kind = kinds.lookup(base)
            except ApiError as e:
                raise click.UsageError(f"--resource {r}: {e.message}") from None
            plural, group = kind.resource, kind.group
        by_group.setdefault(group, []).append(f"{plural}/{sub}" if sub else plural)
    rules = [rbac_pb2.PolicyRule(verbs=verb_list, api_groups=[g], resources=rs, resource_names=_split(names))
             for g, rs in by_group.items()]
    if urls:
        rules.append(rbac_pb2.PolicyRule(verbs=verb_list, non_resource_urls=_split(urls)))
    return rules


def subjects_from_flags(users: tuple[str, ...], groups: tuple[str, ...],
                        service_accounts: tuple[str, ...]) -> list[rbac_pb2.Subject]:
    out = [rbac_pb2.Subject(kind="User", name=u, api_group=rbac.GROUP) for u in users]
    out += [rbac_pb2.Subject(kind="Group", name=g, api_group=rbac.GROUP) for g in groups]
    for sa in service_accounts:
        ns, sep, name = sa.partition(":")
        if not sep or not ns or not name:
            raise click.UsageError(f"--serviceaccount {sa}: expected NAMESPACE:NAME")
        out.append(rbac_pb2.Subject(kind="ServiceAccount", namespace=ns, name=name))
    return out


def _create(obj, conn: ClientConfig) -> None:  # type: ignore[no-untyped-def]
    errs = validation.validate(obj)
    if errs:
        kind = kinds.of(obj).kind
        click.echo(f'error: {kind} "{obj.metadata.name}" is invalid: ' + "; ".join(str(e) for e in errs), err=True)
        sys.exit(1)

    async def go(c: Client) -> None:
        created = await c.create(obj)
        click.echo(f"{printers.name_of(created)} created")

    with_client(conn, go)


_verb = click.option("--verb", "verbs", multiple=True, required=True, help="verbs the rule allows (comma-separated)")
_resource = click.option("--resource", "resources", multiple=True,
                         help="RESOURCE[.GROUP][/SUBRESOURCE] the rule applies to (comma-separated)")
_resource_name = click.option("--resource-name", "names", multiple=True, help="only these objects")


@create.command("role")
@click.argument("name")
@_verb
@_resource
@_resource_name
@namespace_option
@connection_options
def create_role(name: str, verbs: tuple[str, ...], resources: tuple[str, ...], names: tuple[str, ...],
                namespace: str, conn: ClientConfig) -> None:
    """Create a Role (as `kubectl create role`)."""
    if not resources:
        raise click.UsageError("--resource is required")
    _create(rbac_pb2.Role(metadata={"name": name, "namespace": namespace or "default"},
                          rules=rules_from_flags(verbs, resources, names)), conn)


@create.command("clusterrole")
@click.argument("name")
@click.option("--verb", "verbs", multiple=True, help="verbs the rule allows (comma-separated)")
@_resource
@_resource_name
@click.option("--non-resource-url", "urls", multiple=True, help="paths the rule applies to")
@click.option("--aggregation-rule", "aggregation", multiple=True,
              help="KEY=VALUE: gather the rules of ClusterRoles labelled so (instead of --verb/--resource)")
@connection_options
def create_clusterrole(name: str, verbs: tuple[str, ...], resources: tuple[str, ...], names: tuple[str, ...],
                       urls: tuple[str, ...], aggregation: tuple[str, ...], conn: ClientConfig) -> None:
    """Create a ClusterRole (as `kubectl create clusterrole`)."""
    role = rbac_pb2.ClusterRole(metadata={"name": name})
    if aggregation:
        labels = dict(a.split("=", 1) for a in _split(aggregation) if "=" in a)
        role.aggregation_rule.cluster_role_selectors.add(match_labels=labels)
    else:
        if not verbs or not (resources or urls):
            raise click.UsageError("--verb and --resource (or --non-resource-url) are required, or --aggregation-rule")
        role.rules.extend(rules_from_flags(verbs, resources, names, urls))
    _create(role, conn)


_subject_flags = [
    click.option("--user", "users", multiple=True, help="a user to bind (repeatable)"),
    click.option("--group", "groups", multiple=True, help="a group to bind (repeatable)"),
    click.option("--serviceaccount", "service_accounts", multiple=True,
                 help="NAMESPACE:NAME of a service account to bind (repeatable)"),
]


def _with_subjects(fn):  # type: ignore[no-untyped-def]
    for flag in reversed(_subject_flags):
        fn = flag(fn)
    return fn


@create.command("rolebinding")
@click.argument("name")
@click.option("--role", default="", help="the Role to bind")
@click.option("--clusterrole", default="", help="the ClusterRole to bind (in this namespace only)")
@_with_subjects
@namespace_option
@connection_options
def create_rolebinding(name: str, role: str, clusterrole: str, users: tuple[str, ...], groups: tuple[str, ...],
                       service_accounts: tuple[str, ...], namespace: str, conn: ClientConfig) -> None:
    """Create a RoleBinding (as `kubectl create rolebinding`)."""
    if bool(role) == bool(clusterrole):
        raise click.UsageError("exactly one of --role and --clusterrole is required")
    binding = rbac_pb2.RoleBinding(
        metadata={"name": name, "namespace": namespace or "default"},
        subjects=subjects_from_flags(users, groups, service_accounts),
        role_ref=rbac_pb2.RoleRef(api_group=rbac.GROUP, kind="Role" if role else "ClusterRole",
                                  name=role or clusterrole))
    _create(binding, conn)


@create.command("clusterrolebinding")
@click.argument("name")
@click.option("--clusterrole", required=True, help="the ClusterRole to bind")
@_with_subjects
@connection_options
def create_clusterrolebinding(name: str, clusterrole: str, users: tuple[str, ...], groups: tuple[str, ...],
                              service_accounts: tuple[str, ...], conn: ClientConfig) -> None:
    """Create a ClusterRoleBinding (as `kubectl create clusterrolebinding`)."""
    binding = rbac_pb2.ClusterRoleBinding(
        metadata={"name": name}, subjects=subjects_from_flags(users, groups, service_accounts),
        role_ref=rbac_pb2.RoleRef(api_group=rbac.GROUP, kind="ClusterRole", name=clusterrole))
    _create(binding, conn)


@create.command("serviceaccount")
@click.argument("name")
@namespace_option
@connection_options
def create_serviceaccount(name: str, namespace: str, conn: ClientConfig) -> None:
    """Create a ServiceAccount (as `kubectl create serviceaccount`)."""
    _create(core_pb2.ServiceAccount(metadata={"name": name, "namespace": namespace or "default"}), conn)


@create.command("token")
@click.argument("service_account")
@click.option("--duration", default="", help="how long the token is valid (e.g. 10m, 1h; default 1h, at least 10m)")
@click.option("--audience", "audiences", multiple=True, help="an audience of the token (repeatable; default: the "
                                                            "apiserver's)")
@click.option("--bound-object-kind", default="", type=click.Choice(["", "Pod"]),
              help="bind the token to an object: it stops working when the object is deleted")
@click.option("--bound-object-name", default="", help="the bound object's name")
@click.option("--bound-object-uid", default="", help="the bound object's uid (default: the stored one's)")
@namespace_option
@connection_options
def create_token(service_account: str, duration: str, audiences: tuple[str, ...], bound_object_kind: str,
                 bound_object_name: str, bound_object_uid: str, namespace: str, conn: ClientConfig) -> None:
    """Print a signed token for SERVICE_ACCOUNT (as `kubectl create token`)."""
    seconds = 0
    if duration:
        try:
            seconds = int(parse_duration(duration))
        except (ValueError, click.BadParameter) as e:
            raise click.BadParameter(str(e), param_hint="--duration") from None
        if seconds <= 0:
            raise click.BadParameter("must be positive", param_hint="--duration")
    if bool(bound_object_kind) != bool(bound_object_name):
        raise click.UsageError("--bound-object-kind and --bound-object-name go together")
    req = api_pb2.TokenRequest(namespace=namespace or "default", service_account=service_account,
                               audiences=audiences, expiration_seconds=seconds, pod_name=bound_object_name,
                               pod_uid=bound_object_uid)

    async def go(c: Client) -> str:
        return (await c.create_token(req)).token

    click.echo(with_client(conn, go))


COMMANDS: list[click.Command] = [auth]
