"""Liveness, readiness and startup probes, and the lifecycle hook handlers they share:
exec (in the container), httpGet and tcpSocket (to the pod IP), grpc (the standard health
protocol over grpcio), and sleep (hooks)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from sampan.apiserver.streaming.backend import StreamIO
from sampan.client.events import WARNING

if TYPE_CHECKING:
    from sampan.node.podstatus import Tracked
    from sampan.node.podworker import PodWorker

log = logging.getLogger(__name__)
Obj = dict[str, Any]
MAX_OUTPUT = 10 * 1024


def _port(w: PodWorker, spec_port: Any, container: Obj | None) -> int:
    """A number, or the name of one of the container's ports."""
    if isinstance(spec_port, int) or str(spec_port).isdigit():
        return int(spec_port)
    containers = [container] if container else w.pod["spec"].get("containers") or []
    for c in containers:
        for p in c.get("ports") or []:
            if p.get("name") == spec_port:
                return int(p["containerPort"])
    raise ValueError(f"port {spec_port!r} not found")


def _host(w: PodWorker, handler: Obj) -> str:
    return handler.get("host") or w.view.pod_ip or "127.0.0.1"


async def _exec(w: PodWorker, cid: str, command: list[str], timeout: float) -> tuple[bool, str]:
    out = bytearray()

    async def collect(chunk: bytes) -> None:
        if len(out) < MAX_OUTPUT:
            out.extend(chunk[: MAX_OUTPUT - len(out)])

    io = StreamIO(stdin=None, stdout=collect, stderr=collect)
    try:
        code = await asyncio.wait_for(w.agent.runtime.exec(cid, command, io), timeout)
    except asyncio.TimeoutError:
        return False, f"command {command!r} timed out"
    text = out.decode(errors="replace")
    if code != 0:
        return False, text or f"command {command!r} exited with {code}"
    return True, text


async def _http(w: PodWorker, handler: Obj, container: Obj | None, timeout: float) -> tuple[bool, str]:
    scheme = (handler.get("scheme") or "HTTP").lower()
    path = handler.get("path") or "/"
    if not path.startswith("/"):
        path = "/" + path
    host = _host(w, handler)
    url = f"{scheme}://{host if ':' not in host else f'[{host}]'}:{_port(w, handler.get('port'), container)}{path}"
    headers = {"User-Agent": "kube-probe/1.32", "Accept": "*/*"}
    for h in handler.get("httpHeaders") or []:
        headers[h.get("name", "")] = h.get("value", "")
    import aiohttp  # on the first HTTP probe: an agent without one does without aiohttp (~12 MB)

    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            async with session.get(url, headers=headers, ssl=False, allow_redirects=True) as resp:
                body = (await resp.content.read(MAX_OUTPUT)).decode(errors="replace")
                if 200 <= resp.status < 400:
                    return True, body
                return False, f"HTTP probe failed with statuscode: {resp.status}"
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        return False, f'Get "{url}": {exc or type(exc).__name__}'


async def _tcp(w: PodWorker, handler: Obj, container: Obj | None, timeout: float) -> tuple[bool, str]:
    host, port = _host(w, handler), _port(w, handler.get("port"), container)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, asyncio.TimeoutError) as exc:
        return False, f"dial tcp {host}:{port}: {exc or 'i/o timeout'}"
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    return True, ""


async def _grpc(w: PodWorker, handler: Obj, timeout: float) -> tuple[bool, str]:
    try:
        import grpc  # type: ignore[import-untyped]
    except ImportError:
        return False, "grpc probes need grpcio"
    target = f"{w.view.pod_ip or '127.0.0.1'}:{int(handler.get('port', 0))}"
    service = handler.get("service") or ""

    # grpc.health.v1.HealthCheckRequest{service} is one length-delimited field; response field 1 is the status.
    def encode(name: str) -> bytes:
        data = name.encode()
        return (b"\x0a" + bytes([len(data)]) + data) if data else b""

    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.unary_unary("/grpc.health.v1.Health/Check", request_serializer=encode,
                                   response_deserializer=lambda b: b)
        try:
            reply = await call(service, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            return False, f"failed to connect service {target!r} within {timeout}s: {exc.details()}"
    status = reply[1] if len(reply) >= 2 and reply[0] == 0x08 else 0
    if status == 1:
        return True, ""
    return False, f"service unhealthy (responded with {'NOT_SERVING' if status == 2 else 'UNKNOWN'})"


async def run_handler(w: PodWorker, cid: str, handler: Obj, timeout: float = 1.0,
                      container: Obj | None = None) -> tuple[bool, str]:
    """One probe or hook action; (succeeded, message)."""
    try:
        if "exec" in handler:
            return await _exec(w, cid, list((handler["exec"] or {}).get("command") or []), timeout)
        if "httpGet" in handler:
            return await _http(w, handler["httpGet"], container, timeout)
        if "tcpSocket" in handler:
            return await _tcp(w, handler["tcpSocket"], container, timeout)
        if "grpc" in handler:
            return await _grpc(w, handler["grpc"], timeout)
        if "sleep" in handler:
            await asyncio.sleep(min(float(handler["sleep"].get("seconds", 0)), timeout))
            return True, ""
    except Exception as exc:  # noqa: BLE001 - any failure is a failed probe
        return False, str(exc)
    return False, "unknown handler"


class ContainerProber:
    """The probe loops of one running container (they end with it)."""

    def __init__(self, worker: PodWorker, t: Tracked, spec: Obj) -> None:
        self.w = worker
        self.t = t
        self.spec = spec
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            if self.spec.get(kind):
                self.tasks.append(asyncio.create_task(self._loop(kind, self.spec[kind])))

    def stop(self) -> None:
        for task in self.tasks:
            if task is not asyncio.current_task():
                task.cancel()
        self.tasks = []

    async def _loop(self, kind: str, probe: Obj) -> None:
        t, w = self.t, self.w
        cid = t.id or ""
        period = max(1, int(probe.get("periodSeconds", 10)))
        timeout = max(1, int(probe.get("timeoutSeconds", 1)))
        success_needed = max(1, int(probe.get("successThreshold", 1)))
        failure_needed = max(1, int(probe.get("failureThreshold", 3)))
        await asyncio.sleep(int(probe.get("initialDelaySeconds", 0)))
        successes = failures = 0
        name = {"startupProbe": "Startup", "livenessProbe": "Liveness", "readinessProbe": "Readiness"}[kind]
        while t.id == cid and t.running:
            if kind != "startupProbe" and not t.started:
                await asyncio.sleep(1)  # liveness and readiness wait for the startup probe
                continue
            ok, message = await run_handler(w, cid, probe, timeout, self.spec)
            if t.id != cid:
                return
            if ok:
                successes, failures = successes + 1, 0
            else:
                successes, failures = 0, failures + 1
                if kind != "livenessProbe":
                    w.event(WARNING, "Unhealthy", f"{name} probe failed: {message}".strip())
            if kind == "startupProbe":
                if ok:
                    t.started = True
                    t.ready = not self.spec.get("readinessProbe")
                    w.wake.set()
                    return
                if failures >= failure_needed:
                    w.event(WARNING, "Unhealthy", f"Startup probe failed: {message}")
                    await w.stop_one(t, float(w.pod["spec"].get("terminationGracePeriodSeconds", 30)))
                    w.wake.set()
                    return
            elif kind == "readinessProbe":
                ready = t.ready
                if successes >= success_needed:
                    ready = True
                elif failures >= failure_needed:
                    ready = False
                if ready != t.ready:
                    t.ready = ready
                    w.wake.set()
            elif failures >= failure_needed:
                await w.kill_for_liveness(t, message)
                return
            await asyncio.sleep(period)
