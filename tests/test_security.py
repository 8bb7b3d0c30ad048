"""Redis AUTH/TLS and Kafka SSL/SASL from the settings, and secrets that never show.

Against real servers: a test-owned ``redis-server`` with an ACL user (plain
port) and one with TLS and client certificates; a Tansu broker behind a
TLS-terminating proxy that requires client certificates (Tansu 0.6.0 cannot
serve TLS itself: its ``--cert`` and ``--key`` flags exclude each other), with
every Kafka client of the project and a whole worker talking to it. SASL is
checked as the options each client library gets, not against a broker: Tansu
0.6.0 keeps SASL users in its storage, and with the memory-only storage of the
embedded binary no user can be created once ``--authentication`` is on.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import ssl
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
import redis
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaProducer
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from kafka import KafkaAdminClient, KafkaProducer
from kafka.errors import KafkaError

from bench.harness import WorkerProcess, wait_until
from producers.collector import make_app
from producers.sdk import EventProducer
from streamreco import cli, embedded
from streamreco.embedded import free_port, stop_process
from streamreco.lag import LagReader
from streamreco.settings import Settings
from streamreco.store import open_store
from streams.web import BrokerProbe

REDIS_PASSWORD = "redis-pw-5bd1e0"
SASL_PASSWORD = "sasl-pw-0c7a41"
PSEUDONYMISE_KEY = "pseudonymise-key-9f3e22"
SECRETS = (REDIS_PASSWORD, SASL_PASSWORD, PSEUDONYMISE_KEY)


def assert_no_secret(text: str) -> None:
    assert not [secret for secret in SECRETS if secret in text]


# --- certificates, servers ------------------------------------------------------------
@dataclass(frozen=True)
class Certificates:
    """A test CA, a server certificate for 127.0.0.1/localhost and a client certificate."""

    folder: Path

    def __getitem__(self, name: str) -> str:  # "ca.crt", "server.key", "client.crt", ...
        return str(self.folder / name)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command to make test certificates with")
    folder = tmp_path_factory.mktemp("certificates")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=streamreco test CA",
            "-keyout", "ca.key", "-out", "ca.crt",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    uses = {"server": "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
            "client": "extendedKeyUsage=clientAuth\n"}
    for name, extensions in uses.items():
        (folder / f"{name}.ext").write_text(extensions)
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN=streamreco test {name}",
                "-keyout", f"{name}.key", "-out", f"{name}.csr")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.crt")
    return Certificates(folder)


#: What a redis-server built without TLS says of a ``tls-*`` directive (unknown, or no implementation).
NO_TLS_BUILD = ("Bad directive", "not supported", "Missing implement")


def start_redis(folder: Path, config: str, port: int) -> subprocess.Popen:
    """A ``redis-server`` with ``config`` (plus no persistence), once it listens on ``port``."""
    if shutil.which("redis-server") is None:
        pytest.skip("no redis-server on PATH")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "redis.conf").write_text(f'bind 127.0.0.1\nsave ""\nappendonly no\ndir {folder}\n{config}')
    log = folder / "redis.log"
    process = subprocess.Popen(["redis-server", str(folder / "redis.conf")], stdout=log.open("wb"),
                               stderr=subprocess.STDOUT)
    try:
        embedded._wait_for_port(port, 10, process)  # noqa: SLF001
    except RuntimeError:
        said = log.read_text()
        if "tls" in config and any(no_tls in said for no_tls in NO_TLS_BUILD):
            pytest.skip(f"redis-server is built without TLS: {said[-300:]}")
        raise
    return process


ACL = f"requirepass default-pw\nuser alice on >{REDIS_PASSWORD} ~* &* +@all\n"


@pytest.fixture(scope="module")
def acl_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``redis://`` URL of a Redis whose default user has a password and that knows user alice."""
    port = free_port()
    process = start_redis(tmp_path_factory.mktemp("redis-acl"), f"port {port}\n{ACL}", port)
    yield f"redis://127.0.0.1:{port}/0"
    stop_process(process, grace=5)


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory, certificates: Certificates) -> Iterator[str]:
    """``rediss://`` URL of a TLS-only Redis that wants client certificates and alice's password."""
    port = free_port()
    config = (f"port 0\ntls-port {port}\ntls-cert-file {certificates['server.crt']}\n"
              f"tls-key-file {certificates['server.key']}\ntls-ca-cert-file {certificates['ca.crt']}\n"
              f"tls-auth-clients yes\n{ACL}")
    process = start_redis(tmp_path_factory.mktemp("redis-tls"), config, port)
    yield f"rediss://127.0.0.1:{port}/0"
    stop_process(process, grace=5)


class TlsTerminator:
    """A TLS server on a free port that passes the decrypted bytes on to plain-text port ``target``."""

    def __init__(self, context: ssl.SSLContext, target: int) -> None:
        self.target = target
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        serving = asyncio.start_server(self._forward, "127.0.0.1", 0, ssl=context)
        self.server = asyncio.run_coroutine_threadsafe(serving, self.loop).result(10)
        self.port: int = self.server.sockets[0].getsockname()[1]

    async def _forward(self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter) -> None:
        try:
            broker_in, broker_out = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            client_out.close()
            return
        await asyncio.gather(_pipe(client_in, broker_out), _pipe(broker_in, client_out))

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    except (OSError, ssl.SSLError):
        pass
    finally:
        sink.close()


@pytest.fixture(scope="module")
def tls_broker(certificates: Certificates, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap of a Tansu broker reachable only through TLS with a client certificate."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=certificates["ca.crt"])
    context.load_cert_chain(certificates["server.crt"], certificates["server.key"])
    context.verify_mode = ssl.CERT_REQUIRED
    terminator = TlsTerminator(context, target=free_port())
    inside, outside = f"tcp://127.0.0.1:{terminator.target}", f"tcp://127.0.0.1:{terminator.port}"
    log = tmp_path_factory.mktemp("tansu-tls") / "tansu.log"
    broker = subprocess.Popen(
        [str(embedded.tansu_binary()), "broker", "--listener-url", inside, "--advertised-listener-url", outside],
        stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        embedded._wait_for_port(terminator.target, 20, broker)  # noqa: SLF001
        yield f"kafka://127.0.0.1:{terminator.port}"
    finally:
        stop_process(broker, grace=5)
        terminator.close()


@pytest.fixture
def tls_settings(tls_broker: str, tls_redis: str, certificates: Certificates) -> Callable[..., Settings]:
    """Settings for the TLS broker and the TLS Redis, with their own topics and namespace."""

    def make(**overrides: object) -> Settings:
        tag = uuid.uuid4().hex[:10]
        values: dict[str, object] = {
            "kafka_bootstrap": tls_broker, "kafka_security_protocol": "SSL",
            "kafka_ssl_cafile": certificates["ca.crt"], "kafka_ssl_certfile": certificates["client.crt"],
            "kafka_ssl_keyfile": certificates["client.key"],
            "redis_url": tls_redis, "redis_username": "alice", "redis_password": REDIS_PASSWORD,
            "redis_ssl_ca_certs": certificates["ca.crt"], "redis_ssl_certfile": certificates["client.crt"],
            "redis_ssl_keyfile": certificates["client.key"],
            "pseudonymise_key": PSEUDONYMISE_KEY, "namespace": f"sec{tag}", "app_id": f"streamreco-{tag}",
            "events_topic": f"events-{tag}", "catalog_topic": f"catalog-{tag}",
            "recommendations_topic": f"recommendations-{tag}", "dead_letter_topic": f"dead-letter-{tag}",
            "partitions": 2, "session_timeout": 6.0,
            "web_port": free_port(), "collector_port": free_port(),
        }
        return Settings(**values | overrides)

    return make


# --- settings: validation, repr, the options each client gets (pure logic) -------------
@pytest.mark.parametrize(("values", "complaint"), [
    ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_password": SASL_PASSWORD},
     "SASL_SSL needs kafka_sasl_username and kafka_sasl_password"),
    ({"kafka_sasl_username": "shop", "kafka_sasl_password": SASL_PASSWORD},
     "kafka_sasl_username/password are only used with"),
    ({"kafka_ssl_cafile": "/ca.pem"}, "kafka_ssl_* files are only used with"),
    ({"kafka_security_protocol": "SSL", "kafka_ssl_keyfile": "/key.pem"}, "kafka_ssl_keyfile needs"),
    ({"redis_url": f"redis://:{REDIS_PASSWORD}@cache:6379/0", "redis_ssl_ca_certs": "/ca.pem"},
     "redis_ssl_* files need a rediss:// redis_url"),
])
def test_incomplete_security_settings_are_refused_without_showing_secrets(values, complaint):
    with pytest.raises(ValueError, match="validation error") as refused:
        Settings(**values)
    assert complaint in str(refused.value)
    assert_no_secret(str(refused.value))


def test_repr_and_str_of_the_settings_show_no_secret():
    settings = Settings(
        redis_url=f"rediss://alice:{REDIS_PASSWORD}@cache:6380/0", redis_password=REDIS_PASSWORD,
        kafka_security_protocol="SASL_SSL", kafka_sasl_username="shop", kafka_sasl_password=SASL_PASSWORD,
        pseudonymise_key=PSEUDONYMISE_KEY,
    )
    for shown in (repr(settings), str(settings)):
        assert_no_secret(shown)
        assert "rediss://alice:***@cache:6380/0" in shown and "kafka_sasl_username='shop'" in shown
    assert settings.to_env()["STREAMRECO_REDIS_PASSWORD"] == REDIS_PASSWORD  # for a child process only


SASL = {"kafka_sasl_username": "shop", "kafka_sasl_password": SASL_PASSWORD,
        "kafka_sasl_mechanism": "SCRAM-SHA-256"}


@pytest.mark.parametrize(("values", "expected"), [
    ({}, {"security_protocol": "PLAINTEXT"}),
    ({"kafka_security_protocol": "SSL"}, {"security_protocol": "SSL", "ssl_context": ssl.SSLContext}),
    ({"kafka_security_protocol": "SASL_PLAINTEXT", **SASL},
     {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-256",
      "sasl_plain_username": "shop", "sasl_plain_password": SASL_PASSWORD}),
    ({"kafka_security_protocol": "SASL_SSL", **SASL},
     {"security_protocol": "SASL_SSL", "ssl_context": ssl.SSLContext, "sasl_mechanism": "SCRAM-SHA-256",
      "sasl_plain_username": "shop", "sasl_plain_password": SASL_PASSWORD}),
])
async def test_aiokafka_kafka_python_and_faust_get_the_same_security(values, expected):
    settings = Settings(**values)
    options = settings.kafka_client_options()
    faust_options = credentials_to_aiokafka_auth(settings.faust_credentials())  # what Faust hands aiokafka
    for got in (options, {name: value for name, value in faust_options.items() if value is not None}):
        assert got.keys() == expected.keys()
        for name, want in expected.items():
            assert isinstance(got[name], want) if isinstance(want, type) else got[name] == want
    if "ssl_context" in expected:  # verifies the broker: system CAs, host name checked
        assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED and options["ssl_context"].check_hostname
    # both client libraries take these options as they are (neither connects here)
    aiokafka_producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:9", **options)
    assert aiokafka_producer.client._security_protocol == settings.kafka_security_protocol  # noqa: SLF001
    await aiokafka_producer.stop()
    KafkaProducer(bootstrap_servers="127.0.0.1:9", api_version=(2, 8), **options).close(0)


def test_kafka_python_debug_log_of_an_admin_client_has_no_password(caplog):
    """kafka-python logs every admin-client option at DEBUG; :mod:`streamreco.lag` filters that line out."""
    options = Settings(kafka_security_protocol="SASL_PLAINTEXT", **SASL).kafka_client_options()
    with caplog.at_level(logging.DEBUG, logger="kafka"), pytest.raises(KafkaError):
        KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{free_port()}", bootstrap_timeout_ms=200, **options)
    assert caplog.records, "kafka-python logged nothing: the check below would prove nothing"
    assert_no_secret(caplog.text)


# --- Redis: AUTH with an ACL user, TLS with client certificates (real servers) ---------
@pytest.mark.integration
def test_redis_acl_user_with_password_from_the_settings(acl_redis: str):
    settings = Settings(redis_url=acl_redis, redis_username="alice", redis_password=REDIS_PASSWORD)
    store = open_store(settings.redis_url, **settings.redis_options())
    key = f"sec{uuid.uuid4().hex[:8]}:blob"
    store.put({key: b"v"})
    assert store.get([key]) == [b"v"] and store.ping()
    store.delete([key])

    without_password = open_store(acl_redis)
    assert not without_password.ping()
    with pytest.raises(redis.AuthenticationError, match="Authentication required"):
        without_password.get([key])
    wrong = Settings(redis_url=acl_redis, redis_username="alice", redis_password="not-the-password")
    with pytest.raises(redis.AuthenticationError, match="invalid username-password pair"):
        open_store(wrong.redis_url, **wrong.redis_options()).get([key])


@pytest.mark.integration
def test_redis_over_tls_with_a_client_certificate(tls_redis: str, certificates: Certificates):
    settings = Settings(redis_url=tls_redis, redis_username="alice", redis_password=REDIS_PASSWORD,
                        redis_ssl_ca_certs=certificates["ca.crt"], redis_ssl_certfile=certificates["client.crt"],
                        redis_ssl_keyfile=certificates["client.key"])
    store = open_store(settings.redis_url, **settings.redis_options())
    key = f"sec{uuid.uuid4().hex[:8]}:blob"
    store.put({key: b"over tls"})
    assert store.get([key]) == [b"over tls"]
    store.delete([key])

    no_client_certificate = settings.redis_options()
    del no_client_certificate["ssl_certfile"], no_client_certificate["ssl_keyfile"]
    with pytest.raises(redis.ConnectionError):
        open_store(tls_redis, **no_client_certificate).get([key])
    with pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):  # the test CA is not trusted
        open_store(tls_redis, username="alice", password=REDIS_PASSWORD).get([key])


# --- Kafka over TLS: every client, the CLI and a whole worker (real broker) -----------
@pytest.mark.integration
async def test_every_kafka_client_works_over_tls_with_a_client_certificate(
    tls_settings: Callable[..., Settings], monkeypatch, capsys
):
    settings = tls_settings()
    with EventProducer(settings) as shop:  # kafka-python
        for n in range(3):
            shop.track("view", user_id=f"u{n}", item_id="i1")
    async with TestClient(TestServer(make_app(settings))) as collector:  # aiokafka
        response = await collector.post("/events", data=orjson.dumps([
            {"type": "view", "user_id": "u7", "item_id": "i2"}, {"type": "view", "user_id": "u8", "item_id": "i3"},
        ]))
        assert response.status == 202
    probe = BrokerProbe(settings)  # aiokafka admin, as GET /health asks
    assert await probe.answers()
    await probe.close()

    reader = LagReader(settings, [settings.events_topic])  # kafka-python admin and consumer
    assert sum(row.end for row in reader.read()) == 5
    reader.close()
    for name, value in settings.to_env().items():
        monkeypatch.setenv(name, value)
    assert cli.main(["lag", "--interval", "0", "--topic", settings.events_topic]) == 0
    printed = capsys.readouterr()
    assert settings.events_topic in printed.out
    assert_no_secret(printed.out + printed.err)

    without_certificate = tls_settings(kafka_ssl_certfile=None, kafka_ssl_keyfile=None)
    plain_text = tls_settings(kafka_security_protocol="PLAINTEXT", kafka_ssl_cafile=None,
                              kafka_ssl_certfile=None, kafka_ssl_keyfile=None)
    for refused in (without_certificate, plain_text):
        probe = BrokerProbe(refused, timeout=1.0)
        assert not await probe.answers()
        await probe.close()


@pytest.mark.integration
def test_a_worker_over_tls_with_redis_auth_works_and_logs_no_secret(
    tls_settings: Callable[..., Settings], tmp_path: Path
):
    settings = tls_settings(log_level="debug")
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    try:
        worker.wait_ready(timeout=90)  # Faust's consumer and producer, the health probe, Redis: all over TLS
        with EventProducer(settings) as shop:
            shop.track("view", user_id="u1", item_id="i1")
            shop.track("view", user_id="u2", item_id="i1")

        def listed() -> bool:
            try:
                with urllib.request.urlopen(f"{worker.url}/recommendations/u1", timeout=2) as response:
                    return response.status == 200
            except urllib.error.HTTPError:
                return False

        wait_until(listed, 60, "a list for u1")
    finally:
        worker.stop()
    log = worker.log.read_text()
    assert "DEBUG" in log, "no debug lines: the worker did not log at the level asked for"
    assert_no_secret(log)


def test_the_cli_refuses_incomplete_security_without_showing_secrets(tmp_path: Path):
    env = {"PATH": "/usr/bin:/bin", "STREAMRECO_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
           "STREAMRECO_KAFKA_SASL_PASSWORD": SASL_PASSWORD, "STREAMRECO_REDIS_PASSWORD": REDIS_PASSWORD,
           "STREAMRECO_REDIS_URL": f"redis://:{REDIS_PASSWORD}@cache:6379/0",
           "STREAMRECO_PSEUDONYMISE_KEY": PSEUDONYMISE_KEY}
    done = subprocess.run([sys.executable, "-m", "streamreco.cli", "schema"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "SASL_SSL needs kafka_sasl_username" in done.stderr
    assert_no_secret(done.stdout + done.stderr)
