"""The ingress controller daemon: Ingresses and what they name -> nginx, reloaded on change.

Informers on Ingresses, IngressClasses, Services, EndpointSlices and Secrets
set one flag; the sync loop waits until changes stop for a moment (a burst
costs one reload) or a limit passes, renders the configuration (render.py,
pure), and when it differs writes the certificates and the file, checks it
with `nginx -t` and reloads nginx. It then keeps the served Ingresses'
status.loadBalancer naming this node's address (and takes the address out of
Ingresses it no longer serves, and of all of them when it stops), and turns
what it cannot honour into Warning events.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from api.errors import ApiError, NotFoundError
from api.pb import core_pb2, discovery_pb2, networking_pb2
from client.api import Client
from client.events import EventRecorder
from client.informer import Informer
from client.retry import retry_on_conflict
from ingress import render
from ingress.nginx import Nginx, NginxError
from ingress.status import plan_status

log = structlog.get_logger()


@dataclass
class IngressConfig:
    node_name: str
    state_dir: Path
    publish_address: str = ""  # the address put into status.loadBalancer (empty: none)
    netns: str = ""  # run nginx in this network namespace (a /run/netns path); "" for this process's own
    http_port: int = 80
    https_port: int = 443
    listen_address: str = "0.0.0.0"
    controller: str = "kubelite.dev/ingress-nginx"
    watch_without_class: bool = False
    debounce: float = 0.1  # wait this long without a change before rendering
    max_delay: float = 1.0  # but never longer than this after the first change
    api_timeout: float = 10.0


@dataclass
class Stats:
    renders: int = 0
    reloads: int = 0
    refused: int = 0  # configurations nginx -t refused
    last_reload: float = 0.0
    errors: list[str] = field(default_factory=list)


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


class IngressController:
    def __init__(self, client: Client, config: IngressConfig) -> None:
        self.client = client
        self.config = config
        self.render_config = render.Config(state_dir=str(config.state_dir), http_port=config.http_port,
                                           https_port=config.https_port, listen_address=config.listen_address,
                                           controller=config.controller,
                                           watch_without_class=config.watch_without_class)
        self.nginx = Nginx(config.state_dir, netns=config.netns)
        self.recorder = EventRecorder(client, "ingress-controller", host=config.node_name)
        self.ingresses: Informer[networking_pb2.Ingress] = Informer(client, networking_pb2.Ingress, name="ingresses")
        self.classes: Informer[networking_pb2.IngressClass] = Informer(client, networking_pb2.IngressClass,
                                                                       name="ingressclasses")
        self.services: Informer[core_pb2.Service] = Informer(client, core_pb2.Service, name="services")
        self.slices: Informer[discovery_pb2.EndpointSlice] = Informer(client, discovery_pb2.EndpointSlice,
                                                                      name="endpointslices")
        # TLS secrets only: the node authorizer lets a node list no other kind of Secret.
        self.secrets: Informer[core_pb2.Secret] = Informer(client, core_pb2.Secret,
                                                           field_selector="type=kubernetes.io/tls", name="secrets")
        self.informers = (self.ingresses, self.classes, self.services, self.slices, self.secrets)
        for informer in self.informers:
            informer.add_handlers(self._changed, lambda _o, _n: self._changed(None), self._changed)
        self.changed = asyncio.Event()
        self.stats = Stats()
        self.current: render.Rendered | None = None  # what nginx runs
        self.ready = asyncio.Event()  # nginx serves the first configuration
        self._warned: set[render.Warning] = set()
        self._published: set[str] = set()  # Ingresses whose status names this node
        self._log = log.bind(node=config.node_name)

    def _changed(self, _obj: object) -> None:
        self.changed.set()

    # ------------------------------------------------------------ run

    async def run(self) -> None:
        self.nginx.prepare()
        await self.nginx.stop_stale()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.recorder.run())
                for informer in self.informers:
                    tg.create_task(informer.run())
                for informer in self.informers:
                    await informer.synced.wait()
                await self._sync(first=True)
                tg.create_task(self._watch_nginx())
                while True:
                    await self._wait_for_changes()
                    await self._sync()
        finally:
            await self.nginx.stop()
            if self._published and self.config.publish_address:
                with contextlib.suppress(ApiError, TimeoutError):
                    async with asyncio.timeout(self.config.api_timeout):
                        await self._publish(set())
            self._log.info("ingress_controller_stopped")

    async def _wait_for_changes(self) -> None:
        """Return once changes have stopped for `debounce` seconds, or `max_delay` after the first one."""
        await self.changed.wait()
        deadline = time.monotonic() + self.config.max_delay
        while True:
            self.changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                async with asyncio.timeout(min(self.config.debounce, left)):
                    await self.changed.wait()
            except TimeoutError:
                return

    def render(self) -> render.Rendered:
        slices: dict[str, list[discovery_pb2.EndpointSlice]] = {}
        for es in self.slices.store.values():
            name = es.metadata.labels.get(render.SERVICE_NAME_LABEL)
            if name:
                slices.setdefault(f"{es.metadata.namespace}/{name}", []).append(es)
        return render.render(self.ingresses.store.values(), self.classes.store.values(), self.services.store,
                             slices, self.secrets.store, self.render_config)

    async def _sync(self, *, first: bool = False) -> None:
        t0 = time.perf_counter()
        rendered = self.render()
        self.stats.renders += 1
        self._warn(rendered)
        if self.current is None or rendered.config != self.current.config or rendered.files != self.current.files:
            try:
                await self._apply(rendered, first=first)
            except (NginxError, OSError) as e:
                self.stats.refused += 1
                self.stats.errors.append(str(e))
                self._log.error("nginx_config_refused", error=str(e))
                return
            self._log.info("nginx_reloaded" if not first else "nginx_configured", ingresses=len(rendered.served),
                           duration_ms=round((time.perf_counter() - t0) * 1000, 1))
        if self.config.publish_address:
            try:
                async with asyncio.timeout(self.config.api_timeout):
                    await self._publish(set(rendered.served))
            except (ApiError, TimeoutError) as e:
                self._log.warning("ingress_status_failed", error=str(e))
                asyncio.get_running_loop().call_later(1.0, self.changed.set)

    async def _apply(self, rendered: render.Rendered, *, first: bool) -> None:
        state = self.config.state_dir
        for name, data in rendered.files.items():
            write_atomic(state / name, data, 0o600)
        candidate = state / "nginx.conf.new"
        write_atomic(candidate, rendered.config.encode())
        await self.nginx.test(candidate)
        os.replace(candidate, self.nginx.conf)
        wanted = set(rendered.files)
        for old in (state / "certs").iterdir():
            if f"certs/{old.name}" not in wanted:
                old.unlink(missing_ok=True)
        if first or not self.nginx.running:
            await self.nginx.start()
        else:
            self.nginx.reload()
            self.stats.reloads += 1
        self.stats.last_reload = time.time()
        self.current = rendered
        self.ready.set()

    async def _watch_nginx(self) -> None:
        """nginx should never exit on its own; when it does, start it again on the configuration in place."""
        while True:
            if not self.nginx.running:
                await asyncio.sleep(0.5)
                if self.current is not None and not self.nginx.running:
                    await self.nginx.start()
                continue
            code = await self.nginx.wait()
            self._log.warning("nginx_exited", code=code)

    def _warn(self, rendered: render.Rendered) -> None:
        for w in rendered.warnings:
            if w in self._warned:
                continue
            ns, _, name = w.ingress.partition("/")
            ing = self.ingresses.get_named(ns, name)
            if ing is not None:
                self.recorder.event(ing, "Warning", w.reason, w.message)
        self._warned = set(rendered.warnings)

    # ------------------------------------------------------------ status

    async def _publish(self, served: set[str]) -> None:
        """This node's address in the status of every served Ingress, and out of every other one's."""
        address = self.config.publish_address
        touch = served | self._published
        for key in sorted(touch):
            ns, _, name = key.partition("/")

            async def read(ns: str = ns, name: str = name) -> networking_pb2.Ingress | None:
                try:
                    return await self.client.get("ingresses", name, ns)
                except NotFoundError:
                    return None

            await retry_on_conflict(read, lambda cur, k=key: plan_status(cur, address, k in served),
                                    self.client.update_status, what=f"ingress {key}")
        self._published = served
