"""The one gRPC server bootstrap every faceauth service uses.

``run_service`` starts the server with ``grpc.health.v1`` reporting NOT_SERVING, loads and warms
the model in the background, flips health to SERVING, and on SIGTERM/SIGINT drains: health goes
NOT_SERVING, new calls are refused, in-flight calls get ``grace_seconds`` to finish.
With ``workers > 1`` it forks that many server processes sharing the port (SO_REUSEPORT), because
dlib and TensorFlow hold the GIL for long stretches and threads alone do not use both cores.
The kernel hands each *connection* on that port to one worker by a hash, so a client with a few connections
loads them unevenly; with ``worker_ports_from`` set, worker k also listens on its own port
(``worker_ports_from + k``, kept by its replacement), and a client given the list of those ports
(``ip:port,ip:port``, ``faceauth_common.grpc_client``) balances calls exactly over the workers.
The port is mutual TLS (``ServerSettings.security``, see ``faceauth_common.tls``): a client without a
certificate from the private CA gets no answer; plaintext only when ``GRPC_INSECURE`` says so.
"""

from __future__ import annotations

import collections
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from faceauth_common import metrics as service_metrics
from faceauth_common.logs import request_id_var
from faceauth_common.settings import SettingsError, env_float, env_int, env_str
from faceauth_common.tls import GrpcSecurity, TlsNotConfigured

log = logging.getLogger(__name__)

E = TypeVar("E")

REQUEST_ID_METADATA = "x-request-id"
MAX_MESSAGE_BYTES = 40 * 1024 * 1024
MAX_WORKERS = 64


@dataclass(frozen=True)
class ServerSettings:
    listen: str
    workers: int = 1
    threads: int = 4
    grace_seconds: float = 10.0
    max_message_bytes: int = MAX_MESSAGE_BYTES
    metrics_listen: str = ""  # host:port of the Prometheus endpoint; "" = none
    # Mutual TLS from GRPC_TLS_CA + {prefix}_TLS_CERT/_KEY, or GRPC_INSECURE; unconfigured refuses to serve.
    security: GrpcSecurity = field(default_factory=GrpcSecurity)
    # A dead worker is replaced; more replacements than this within the window stop the service.
    max_restarts: int = 5
    restart_window_seconds: float = 60.0
    # Worker k also listens on the host of ``listen`` at this port + k (0: off), so that callers can reach each
    # worker on its own port instead of leaving the split to the kernel's connection hash.
    worker_ports_from: int = 0

    @property
    def worker_addresses(self) -> list[str]:
        """The own address of each worker (index k: ``worker_ports_from + k``); empty when that is off."""
        return worker_addresses(self.listen, self.workers, self.worker_ports_from)

    @classmethod
    def from_env(cls, prefix: str, default_listen: str, default_metrics_listen: str = "") -> ServerSettings:
        """Read ``{prefix}_LISTEN``, ``_WORKERS``, ``_WORKER_PORTS_FROM``, ``_THREADS``, ``_GRACE_SECONDS``,
        ``_METRICS_LISTEN``, ``_MAX_RESTARTS`` and ``_RESTART_WINDOW_SECONDS``."""
        listen = env_str(f"{prefix}_LISTEN", default_listen)
        workers = env_int(f"{prefix}_WORKERS", 1, minimum=1, maximum=MAX_WORKERS)
        worker_ports_from = env_int(f"{prefix}_WORKER_PORTS_FROM", 0, minimum=0, maximum=65535)
        metrics_listen = service_metrics.metrics_listen_from_env(prefix, default_metrics_listen)
        problem = worker_ports_problem(listen, workers, worker_ports_from, metrics_listen)
        if problem:
            raise SettingsError(f"{prefix}_WORKER_PORTS_FROM={worker_ports_from}: {problem}")
        return cls(
            listen=listen,
            workers=workers,
            worker_ports_from=worker_ports_from,
            threads=env_int(f"{prefix}_THREADS", 4, minimum=1, maximum=256),
            grace_seconds=env_float(f"{prefix}_GRACE_SECONDS", 10.0, minimum=0),
            metrics_listen=metrics_listen,
            security=GrpcSecurity.from_env(f"{prefix}_TLS_CERT", f"{prefix}_TLS_KEY"),
            max_restarts=env_int(f"{prefix}_MAX_RESTARTS", 5, minimum=0, maximum=1000),
            restart_window_seconds=env_float(f"{prefix}_RESTART_WINDOW_SECONDS", 60.0, minimum=1),
        )


def _split_listen(listen: str) -> tuple[str, int | None]:
    """``host:port`` → (host as written, brackets kept; the port, None when it is not a number)."""
    host, _, port = listen.rpartition(":")
    return host, int(port) if port.isdigit() else None


def worker_addresses(listen: str, workers: int, worker_ports_from: int) -> list[str]:
    """``[host:worker_ports_from, host:worker_ports_from + 1, …]`` for ``workers`` workers on ``listen``'s host;
    ``[]`` when ``worker_ports_from`` is 0 (off). The one rule the server and the local run share."""
    if not worker_ports_from:
        return []
    host, _ = _split_listen(listen)
    return [f"{host}:{worker_ports_from + index}" for index in range(workers)]


def worker_ports_problem(listen: str, workers: int, worker_ports_from: int, metrics_listen: str = "") -> str:
    """Why these worker ports cannot work ("" when they can): past 65535, or overlapping the shared port or the
    metrics port (a worker would fail to listen, or share the port every worker serves)."""
    if not worker_ports_from:
        return ""
    last = worker_ports_from + workers - 1
    if last > 65535:
        return f"{workers} workers need ports {worker_ports_from}..{last}, past 65535"
    taken = {"the listen port": _split_listen(listen)[1], "the metrics port": _split_listen(metrics_listen)[1]}
    for what, port in taken.items():
        if port is not None and worker_ports_from <= port <= last:
            return f"the worker ports {worker_ports_from}..{last} include {what} {port}"
    return ""


class EngineSlot(Generic[E]):
    """Holds the loaded model; servicers read it and refuse calls while it is still loading."""

    def __init__(self) -> None:
        self._engine: E | None = None

    def set(self, engine: E) -> None:
        self._engine = engine

    def get(self, context: grpc.ServicerContext) -> E:
        if self._engine is None:
            context.abort(grpc.StatusCode.UNAVAILABLE, "the model is still loading")
        return self._engine  # type: ignore[return-value]


class _RequestContextInterceptor(grpc.ServerInterceptor):
    """Puts the caller's request id into the log context and logs one line per call.

    It also parses the request itself: grpc answers bytes that are no valid message with INTERNAL ("Exception
    deserializing request"), which reads like a server fault; here they get INVALID_ARGUMENT like any bad input.
    """

    def intercept_service(self, continuation, handler_call_details):  # type: ignore[no-untyped-def]
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = handler_call_details.method
        inner = handler.unary_unary
        deserialize = handler.request_deserializer

        def behaviour(raw, context):  # type: ignore[no-untyped-def]
            metadata = dict(context.invocation_metadata())
            token = request_id_var.set(str(metadata.get(REQUEST_ID_METADATA, "-"))[:128])
            started = time.perf_counter()
            raised = False
            try:
                try:
                    request = deserialize(raw) if deserialize is not None else raw
                except Exception:  # DecodeError, or anything a deserializer raises on hostile bytes
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the request is not a valid protobuf message")
                return inner(request, context)
            except Exception:
                raised = True  # aborts set their code; anything else reaches the caller as UNKNOWN
                raise
            finally:
                elapsed = time.perf_counter() - started
                code = context.code() or (grpc.StatusCode.UNKNOWN if raised else grpc.StatusCode.OK)
                code_name = code.name if isinstance(code, grpc.StatusCode) else str(code)
                recorded = service_metrics.metrics()
                recorded.grpc_requests.labels(method=method, code=code_name).inc()
                recorded.grpc_latency.labels(method=method).observe(elapsed)
                log.info(
                    "rpc",
                    extra={"fields": {"method": method, "code": code_name, "duration_ms": round(elapsed * 1000, 1)}},
                )
                request_id_var.reset(token)

        return grpc.unary_unary_rpc_method_handler(
            behaviour, request_deserializer=None, response_serializer=handler.response_serializer
        )


def run_service(
    name: str,
    settings: ServerSettings,
    load_engine: Callable[[], E],
    add_servicers: Callable[[grpc.Server, EngineSlot[E]], None],
) -> int:
    """Serve until SIGTERM/SIGINT; returns the process exit status.

    ``name`` is the fully-qualified proto service name reported through the health API.
    ``load_engine`` loads *and warms up* the model; it runs once per server process.
    """
    try:
        settings.security.require()
    except TlsNotConfigured as error:
        log.error("tls_not_configured", extra={"fields": {"error": str(error)}})
        return 2
    if settings.workers == 1:
        _start_metrics(settings)
        return _serve_one(name, settings, load_engine, add_servicers, worker_index=0)
    # The supervisor serves the metrics of every worker (multiprocess mode) and their process_* series.
    worker_pids: list[int] = []
    _start_metrics(settings, lambda: list(worker_pids))
    try:
        return _supervise_workers(name, settings, load_engine, add_servicers, worker_pids)
    finally:
        service_metrics.cleanup_multiprocess_dir()


def _start_metrics(settings: ServerSettings, process_ids: Callable[[], list[int]] | None = None) -> None:
    # A busy metrics port must not take the service down with it.
    try:
        service_metrics.start_metrics_server(settings.metrics_listen, process_ids)
    except OSError as error:
        log.error("metrics_listen_failed", extra={"fields": {"listen": settings.metrics_listen, "error": str(error)}})


def _serve_one(
    name: str,
    settings: ServerSettings,
    load_engine: Callable[[], E],
    add_servicers: Callable[[grpc.Server, EngineSlot[E]], None],
    load_first: bool = False,
    worker_index: int = 0,
) -> int:
    """One server process. Normally it listens at once (health NOT_SERVING) and loads the model meanwhile;
    with ``load_first`` (a replacement worker, whose siblings serve meanwhile) it loads before it listens,
    because SO_REUSEPORT would otherwise hand it new connections that it can only refuse.
    It listens on ``settings.listen`` and, when worker ports are on, on worker ``worker_index``'s own port."""
    stop = threading.Event()  # set by a failed model load
    signals = _stop_signals()

    health_servicer = health.HealthServicer()
    for service in ("", name):
        health_servicer.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
    slot: EngineSlot[E] = EngineSlot()
    load_failed = threading.Event()

    def load() -> None:
        started = time.perf_counter()
        try:
            slot.set(load_engine())
        except Exception:
            log.exception("model_load_failed")
            load_failed.set()
            stop.set()
            return
        for service in ("", name):
            health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
        log.info("serving", extra={"fields": {"load_seconds": round(time.perf_counter() - started, 2)}})

    if load_first:
        load()
        if stop.is_set() or signals:
            return 1 if load_failed.is_set() else 0

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.threads, thread_name_prefix="rpc"),
        interceptors=[_RequestContextInterceptor()],
        options=[
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
            ("grpc.so_reuseport", 1 if settings.workers > 1 else 0),
        ],
    )
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    add_servicers(server, slot)
    credentials = settings.security.server_credentials()
    if credentials is None:
        # Only with GRPC_INSECURE=true, which production refuses (faceauth_common.tls).
        log.warning("grpc_plaintext", extra={"fields": {"listen": settings.listen}})
    # The worker's own port gets SO_REUSEPORT too (one option per server): a replacement binds it at once.
    own_addresses = settings.worker_addresses[worker_index : worker_index + 1]
    for address in [settings.listen, *own_addresses]:
        if credentials is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, credentials)
        if port == 0:
            log.error("listen_failed", extra={"fields": {"listen": address}})
            return 1
    server.start()
    fields: dict[str, object] = {"listen": settings.listen, "pid": os.getpid(), "mutual_tls": credentials is not None}
    if own_addresses:
        fields.update(worker_index=worker_index, worker_listen=own_addresses[0])
    log.info("listening", extra={"fields": fields})
    if not load_first:
        threading.Thread(target=load, name="model-loader", daemon=True).start()
    while not signals and not stop.wait(_SIGNAL_POLL_SECONDS):
        pass

    log.info("shutting_down", extra={"fields": {"grace_seconds": settings.grace_seconds}})
    health_servicer.enter_graceful_shutdown()
    server.stop(settings.grace_seconds).wait()
    log.info("stopped")
    return 1 if load_failed.is_set() else 0


def _supervise_workers(
    name: str,
    settings: ServerSettings,
    load_engine: Callable[[], E],
    add_servicers: Callable[[grpc.Server, EngineSlot[E]], None],
    worker_pids: list[int],
) -> int:
    """Run ``settings.workers`` server processes and replace any that dies until told to stop.

    A worker killed by a crash (SIGSEGV in native code, the OOM killer) is logged, counted in
    ``faceauth_worker_restarts_total`` and replaced; its siblings keep serving meanwhile. More than
    ``max_restarts`` replacements within ``restart_window_seconds`` (a crash loop, e.g. a model that
    cannot load) stop the whole service with status 1, so the orchestrator sees it fail.
    """
    # With SO_REUSEPORT a worker's bind would succeed beside a stray listener (say an old run's worker) and
    # share its port with it; a port in use is refused here, before any worker starts.
    busy = [address for address in settings.worker_addresses if not _port_is_free(address)]
    if busy:
        log.error("worker_port_busy", extra={"fields": {"addresses": busy}})
        return 1
    # Fork before this process creates any gRPC object (gRPC's fork rules).
    context = multiprocessing.get_context("fork")

    def start_worker(index: int, replacement: bool = False) -> multiprocessing.process.BaseProcess:
        def serve() -> None:
            os._exit(_serve_one(name, settings, load_engine, add_servicers, load_first=replacement, worker_index=index))

        worker = context.Process(target=serve, name=f"{name}-worker-{index}")
        worker.start()
        return worker

    workers = [start_worker(index) for index in range(settings.workers)]
    worker_pids[:] = [worker.pid for worker in workers]  # type: ignore[misc]
    signals = _stop_signals()
    started_fields: dict[str, object] = {"workers": list(worker_pids)}
    if settings.worker_addresses:
        started_fields["worker_listen"] = settings.worker_addresses
    log.info("workers_started", extra={"fields": started_fields})
    restarts: collections.deque[float] = collections.deque()
    crash_loop = False
    while not signals and not crash_loop:
        for index, worker in enumerate(workers):
            if worker.is_alive() or signals:
                continue
            worker.join()
            service_metrics.mark_process_dead(worker.pid)  # type: ignore[arg-type]
            now = time.monotonic()
            while restarts and now - restarts[0] > settings.restart_window_seconds:
                restarts.popleft()
            log.error("worker_exited", extra={"fields": {"worker_pid": worker.pid, **_exit_cause(worker.exitcode)}})
            if len(restarts) >= settings.max_restarts:
                log.error(
                    "worker_crash_loop",
                    extra={"fields": {"restarts": len(restarts), "window_seconds": settings.restart_window_seconds}},
                )
                crash_loop = True
                break
            restarts.append(now)
            service_metrics.metrics().worker_restarts.inc()
            workers[index] = start_worker(index, replacement=True)
            worker_pids[index] = workers[index].pid  # type: ignore[call-overload]
            log.warning("worker_restarted", extra={"fields": {"worker_pid": workers[index].pid, "index": index}})
        time.sleep(_SIGNAL_POLL_SECONDS)
    # Once each, after the loop: this also reaches a worker started while the signal arrived.
    for worker in workers:
        if worker.pid is not None and worker.is_alive():
            os.kill(worker.pid, signal.SIGTERM)
    for worker in workers:
        worker.join()
        if worker.pid is not None:
            service_metrics.mark_process_dead(worker.pid)
    return 0 if not crash_loop and all(worker.exitcode == 0 for worker in workers) else 1


#: How often a process waiting to be stopped looks at its signals.
_SIGNAL_POLL_SECONDS = 0.1


def _stop_signals() -> list[int]:
    """The SIGTERM and SIGINT signals received from now on, in a list that the caller polls.

    The handler only appends (no lock): Python runs it between two bytecodes of the main thread, possibly while that
    thread holds a lock — inside ``Event.set`` when a first handler set an event — and a handler that took the same
    lock again deadlocked the process (a worker that got two SIGTERMs in a row never stopped)."""
    received: list[int] = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda number, _frame: received.append(number))
    return received


def _exit_cause(exitcode: int | None) -> dict[str, object]:
    """How a process ended, for the log: its exit status or the signal that killed it."""
    if exitcode is not None and exitcode < 0:
        return {"signal": signal.Signals(-exitcode).name}
    return {"exit_code": exitcode}


def _port_is_free(address: str) -> bool:
    """Nothing listens on ``host:port`` now (a plain bind, SO_REUSEADDR as gRPC's own, without SO_REUSEPORT)."""
    host, port = _split_listen(address)
    try:
        candidates = socket.getaddrinfo(
            host.strip("[]") or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror:
        return False
    for family, kind, protocol, _, bound in candidates:
        with socket.socket(family, kind, protocol) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(bound)
            except OSError:
                return False
    return True
