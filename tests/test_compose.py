"""``docker-compose.yml`` and the ``Dockerfile``, checked against the code without Docker.

Each ``check_*`` function reads a :class:`Deployment` and returns its problems
as sentences. The real files must have none; deliberately broken copies
(written to ``tmp_path``) must make the same checks speak, which shows that
these tests can fail.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import ValidationError

from streamreco.cli import build_parser
from streamreco.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"

FIELDS_BY_ENV = {f"{ENV_PREFIX}{name.upper()}": name for name in Settings.model_fields}
SUBCOMMANDS = build_parser()._subparsers._group_actions[0].choices  # noqa: SLF001
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class Deployment:
    """The compose services and the final stage of the Dockerfile, parsed."""

    services: dict[str, dict[str, Any]]
    image: list[tuple[str, str]]  # (INSTRUCTION, arguments) of the final Dockerfile stage

    @classmethod
    def load(cls, compose: Path, dockerfile: Path) -> Deployment:
        services = yaml.safe_load(compose.read_text())["services"]
        lines = dockerfile.read_text().replace("\\\n", " ").splitlines()
        instructions = [
            (words[0].upper(), words[1].strip() if len(words) > 1 else "")
            for words in (line.strip().split(None, 1) for line in lines)
            if words and not words[0].startswith("#")
        ]
        last_from = max(i for i, (op, _) in enumerate(instructions) if op == "FROM")
        return cls(services, instructions[last_from:])

    # --- the Dockerfile ---------------------------------------------------
    def instruction(self, op: str) -> str | None:
        """The arguments of the last ``op`` in the final stage (the one that counts)."""
        found = [args for name, args in self.image if name == op]
        return found[-1] if found else None

    @property
    def exposed(self) -> set[int]:
        return {
            int(port.split("/")[0])
            for name, args in self.image if name == "EXPOSE" for port in args.split()
        }

    # --- the compose services ----------------------------------------------
    @property
    def ours(self) -> dict[str, dict[str, Any]]:
        """The services built from our Dockerfile."""
        return {name: s for name, s in self.services.items() if "build" in s}

    def by_image(self, prefix: str) -> dict[str, dict[str, Any]]:
        return {n: s for n, s in self.services.items() if str(s.get("image", "")).startswith(prefix)}

    def env(self, service: str) -> dict[str, str]:
        raw = self.services[service].get("environment") or {}
        if isinstance(raw, list):
            raw = dict(item.split("=", 1) for item in raw)
        return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in raw.items()
                if v is not None}

    def settings(self, service: str) -> Settings | None:
        """The Settings the service's process would read, or None if they do not validate."""
        values = {FIELDS_BY_ENV[k]: v for k, v in self.env(service).items() if k in FIELDS_BY_ENV}
        try:
            return Settings.model_validate(values)
        except ValidationError:
            return None

    def command(self, service: str) -> list[str]:
        """The service's arguments to ``streamreco`` (the image's CMD when it sets none)."""
        command = self.services[service].get("command")
        if command is None:
            return json.loads(self.instruction("CMD") or "[]")
        return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]

    def names_on_network(self, service: str) -> set[str]:
        """The host names other containers can reach ``service`` by."""
        spec = self.services[service]
        return {service, spec.get("hostname", service)}


def _tokens(value: Any) -> list[str]:
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value or []]


def _healthcheck_ports(spec: dict[str, Any]) -> set[int]:
    test = " ".join(_tokens((spec.get("healthcheck") or {}).get("test")))
    return {int(p) for p in re.findall(r"(?:127\.0\.0\.1|localhost|0\.0\.0\.0|\[::1\]):(\d+)", test)}


def _container_ports(spec: dict[str, Any]) -> list[tuple[int | None, int]]:
    """(published host port or None, container port) for each ``ports`` entry."""
    found = []
    for entry in spec.get("ports") or []:
        if isinstance(entry, dict):
            published = entry.get("published")
            found.append((int(published) if published else None, int(entry["target"])))
        else:
            parts = str(entry).split("/")[0].split(":")
            found.append((int(parts[-2]) if len(parts) > 1 else None, int(parts[-1])))
    return found


def _listeners(value: str) -> dict[str, str]:
    """``NAME://host:port,...`` as {NAME: "host:port"}."""
    return dict(item.strip().split("://", 1) for item in value.split(",") if item.strip())


# --- the checks ------------------------------------------------------------------


def check_env_names(d: Deployment) -> list[str]:
    return [
        f"{service}: {key} is not a Settings field (known: {', '.join(sorted(FIELDS_BY_ENV))})"
        for service in d.services for key in d.env(service)
        if key.startswith(ENV_PREFIX) and key not in FIELDS_BY_ENV
    ]


def check_env_values(d: Deployment) -> list[str]:
    problems = []
    for service in d.ours:
        for key, value in d.env(service).items():
            if key in FIELDS_BY_ENV:
                try:
                    Settings.model_validate({FIELDS_BY_ENV[key]: value})
                except ValidationError as error:
                    problems.append(f"{service}: {key}={value!r} does not validate: {error}")
    return problems


def check_kafka_kraft(d: Deployment) -> list[str]:
    kafkas = d.by_image("apache/kafka:")
    problems = [] if len(kafkas) == 1 else [f"want one apache/kafka service, found {sorted(kafkas)}"]
    problems += [f"{name}: no zookeeper with KRaft" for name, s in d.services.items()
                 if "zookeeper" in name or "zookeeper" in str(s.get("image", ""))]
    for name, spec in kafkas.items():
        env = d.env(name)
        if not re.fullmatch(r"apache/kafka:[34]\.\d+\.\d+", spec["image"]):
            problems.append(f"{name}: pin a 3.x/4.x tag, not {spec['image']!r}")
        if not {"broker", "controller"} <= set(env.get("KAFKA_PROCESS_ROLES", "").split(",")):
            problems.append(f"{name}: KAFKA_PROCESS_ROLES must include broker and controller")
        if not env.get("KAFKA_CONTROLLER_QUORUM_VOTERS", "").startswith(f"{env.get('KAFKA_NODE_ID')}@"):
            problems.append(f"{name}: KAFKA_CONTROLLER_QUORUM_VOTERS must name KAFKA_NODE_ID")
        controller = env.get("KAFKA_CONTROLLER_LISTENER_NAMES", "")
        if not controller or controller not in _listeners(env.get("KAFKA_LISTENERS", "")):
            problems.append(f"{name}: KAFKA_LISTENERS lacks the controller listener {controller!r}")
        if any(k.startswith("KAFKA_ZOOKEEPER") for k in env):
            problems.append(f"{name}: KAFKA_ZOOKEEPER_* has no place in KRaft mode")
        if env.get("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR") != "1":
            problems.append(f"{name}: KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR must be 1 on one broker")
        if env.get("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "true") != "true":
            problems.append(f"{name}: producers rely on KAFKA_AUTO_CREATE_TOPICS_ENABLE")
        health = " ".join(_tokens((spec.get("healthcheck") or {}).get("test")))
        if not re.search(r"/opt/kafka/bin/kafka-(topics|broker-api-versions)\.sh", health):
            problems.append(f"{name}: healthcheck must ask the broker with /opt/kafka/bin tools")
    return problems


def check_topics_fit_the_broker(d: Deployment) -> list[str]:
    problems = []
    brokers = len(d.by_image("apache/kafka:"))
    for kafka in d.by_image("apache/kafka:"):
        default_partitions = d.env(kafka).get("KAFKA_NUM_PARTITIONS")
        for service in d.ours:
            settings = d.settings(service)
            if settings is None:
                continue
            if default_partitions and int(default_partitions) != settings.partitions:
                problems.append(f"{service}: STREAMRECO_PARTITIONS={settings.partitions} but "
                                f"auto-created topics get KAFKA_NUM_PARTITIONS={default_partitions}")
            if settings.replication_factor > brokers:
                problems.append(f"{service}: replication factor {settings.replication_factor} "
                                f"> {brokers} broker(s)")
    return problems


def check_bootstrap_is_advertised(d: Deployment) -> list[str]:
    reachable = {
        address
        for kafka in d.by_image("apache/kafka:")
        for address in _listeners(d.env(kafka).get("KAFKA_ADVERTISED_LISTENERS", "")).values()
        if address.rsplit(":", 1)[0] in d.names_on_network(kafka)
    }
    problems = []
    for service in d.ours:
        settings = d.settings(service)
        if settings is None:
            continue
        problems += [
            f"{service}: bootstrap {server} is not advertised by kafka on the compose network "
            f"(advertised there: {sorted(reachable)})"
            for server in settings.kafka_servers.split(",") if server not in reachable
        ]
    return problems


def check_redis(d: Deployment) -> list[str]:
    redises = d.by_image("redis:7")
    problems = [] if len(redises) == 1 else [f"want one redis:7 service, found {sorted(redises)}"]
    for name, spec in redises.items():
        command = _tokens(spec.get("command"))
        if "--appendonly" not in command or command[command.index("--appendonly") + 1 :][:1] != ["yes"]:
            problems.append(f"{name}: command must turn on AOF with --appendonly yes")
        if not any(str(v).split(":")[1:2] == ["/data"] for v in spec.get("volumes") or []):
            problems.append(f"{name}: /data must be on a volume so the AOF survives")
        health = _tokens((spec.get("healthcheck") or {}).get("test"))
        if not {"redis-cli", "ping"} <= set(health):
            problems.append(f"{name}: healthcheck must be redis-cli ping")
        port = int(command[command.index("--port") + 1]) if "--port" in command else 6379
        for service in d.ours:
            settings = d.settings(service)
            url = urlsplit(settings.redis_url) if settings else None
            if url and (url.hostname not in d.names_on_network(name) or (url.port or 6379) != port):
                problems.append(f"{service}: STREAMRECO_REDIS_URL {settings.redis_url} is not "
                                f"{name}:{port}")
    return problems


def check_worker_scales(d: Deployment) -> list[str]:
    spec = d.services.get("worker", {})
    problems = [] if spec else ["no worker service"]
    if "container_name" in spec:
        problems.append("worker: container_name stops `--scale worker=N`")
    if spec.get("ports"):
        problems.append("worker: ports would bind one host port per replica; use expose")
    if spec.get("restart", "no") == "no":
        problems.append("worker: needs a restart policy")
    return problems


def check_web_ports(d: Deployment) -> list[str]:
    """The worker's web port and the collector's port agree with EXPOSE, healthchecks, ports."""
    problems = []
    for service, field in (("worker", "web_port"), ("collector", "collector_port")):
        spec, settings = d.services.get(service), d.settings(service) if service in d.services else None
        if spec is None or settings is None:
            problems.append(f"no {service} service with valid settings")
            continue
        port = getattr(settings, field)
        if port not in d.exposed:
            problems.append(f"{service}: {field} {port} is not in the Dockerfile EXPOSE {sorted(d.exposed)}")
        if settings.web_host in LOOPBACK:
            problems.append(f"{service}: STREAMRECO_WEB_HOST {settings.web_host} is loopback; "
                            "nothing outside the container reaches it")
        expose = {int(str(e).split("/")[0]) for e in spec.get("expose") or []}
        if expose - {port}:
            problems.append(f"{service}: expose {sorted(expose)} is not {field} {port}")
        if _healthcheck_ports(spec) - {port}:
            problems.append(f"{service}: healthcheck asks port(s) {sorted(_healthcheck_ports(spec))}, "
                            f"not {field} {port}")
        if service == "collector":
            targets = {target for _, target in _container_ports(spec)}
            if targets != {port}:
                problems.append(f"collector: publishes container port(s) {sorted(targets)}, "
                                f"but collector_port is {port}")
    return problems


def check_commands(d: Deployment) -> list[str]:
    problems = []
    for service in d.ours:
        args = d.command(service)
        if not args or args[0] not in SUBCOMMANDS:
            problems.append(f"{service}: {args[:1]} is not a sub-command of streamreco "
                            f"(known: {sorted(SUBCOMMANDS)})")
            continue
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr), contextlib.suppress(SystemExit):
            build_parser().parse_args(args)
        if stderr.getvalue():
            problems.append(f"{service}: `streamreco {shlex.join(args)}` does not parse: "
                            f"{stderr.getvalue().strip().splitlines()[-1]}")
    return problems


def check_depends_on_healthy(d: Deployment) -> list[str]:
    kafka, redis = set(d.by_image("apache/kafka:")), set(d.by_image("redis:"))
    problems = []
    for service in d.ours:
        depends = d.services[service].get("depends_on") or {}
        if isinstance(depends, list):
            depends = {name: {} for name in depends}
        needs = kafka | redis if service == "worker" else kafka
        problems += [f"{service}: must depend on {name}" for name in sorted(needs - set(depends))]
        for name, how in depends.items():
            if name in kafka | redis and (how or {}).get("condition") != "service_healthy":
                problems.append(f"{service}: depends_on {name} needs condition service_healthy")
            if name in kafka | redis and "healthcheck" not in d.services[name]:
                problems.append(f"{name}: a service_healthy dependency needs a healthcheck")
    return problems


def check_demo_profile(d: Deployment) -> list[str]:
    producers = {s for s in d.ours if d.command(s)[:1] in (["produce"], ["replay"])}
    problems = [] if producers else ["no demo producer (command produce or replay)"]
    for service in d.ours:
        profiles = d.services[service].get("profiles") or []
        if service in producers and profiles != ["demo"]:
            problems.append(f"{service}: a producer belongs in profile demo only, not {profiles}")
        if service not in producers and profiles:
            problems.append(f"{service}: must start without a profile, has {profiles}")
    return problems


def check_dockerfile(d: Deployment) -> list[str]:
    problems = []
    if not (d.instruction("FROM") or "").startswith("python:3.11-slim"):
        problems.append(f"Dockerfile: final stage FROM {d.instruction('FROM')}, want python:3.11-slim")
    if json.loads(d.instruction("ENTRYPOINT") or "null") != ["streamreco"]:
        problems.append(f"Dockerfile: ENTRYPOINT {d.instruction('ENTRYPOINT')}, want [\"streamreco\"]")
    if json.loads(d.instruction("CMD") or "null") != ["worker"]:
        problems.append(f"Dockerfile: CMD {d.instruction('CMD')}, want [\"worker\"]")
    user = (d.instruction("USER") or "root").split(":")[0]
    if user in {"root", "0"}:
        problems.append("Dockerfile: the final stage runs as root; add a non-root USER")
    return problems


def _mounted(spec: dict[str, Any], container_path: str) -> Path | None:
    """The repository file or folder a bind mount of ``spec`` puts at ``container_path``.

    Relative sources are taken from the repository, also for broken copies of the
    compose file written elsewhere.
    """
    for volume in spec.get("volumes") or []:
        if isinstance(volume, dict):
            source, target = str(volume.get("source", "")), str(volume.get("target", ""))
        else:
            source, _, target = str(volume).partition(":")
            target = target.split(":")[0]
        if not source.startswith((".", "/")) or not target:
            continue
        inside = Path(container_path)
        if inside == Path(target) or Path(target) in inside.parents:
            return (ROOT / source / inside.relative_to(target)).resolve()
    return None


def _pinned(d: Deployment, prefix: str, pattern: str) -> tuple[dict[str, dict[str, Any]], list[str]]:
    found = d.by_image(prefix)
    problems = [] if len(found) == 1 else [f"want one {prefix} service, found {sorted(found)}"]
    problems += [f"{name}: pin a version tag, not {spec['image']!r}"
                 for name, spec in found.items() if not re.fullmatch(pattern, spec["image"])]
    return found, problems


def check_prometheus(d: Deployment) -> list[str]:
    """Prometheus scrapes every worker (by DNS, so --scale works) and the collector, with rules."""
    found, problems = _pinned(d, "prom/prometheus:", r"prom/prometheus:v\d+\.\d+\.\d+")
    worker, collector = d.settings("worker"), d.settings("collector")
    for name, spec in found.items():
        flags = dict(arg.split("=", 1) for arg in _tokens(spec.get("command")) if "=" in arg)
        config_file = flags.get("--config.file", "/etc/prometheus/prometheus.yml")
        host = _mounted(spec, config_file)
        if host is None or not host.is_file():
            problems.append(f"{name}: {config_file} is not mounted from the repository")
            continue
        config = yaml.safe_load(host.read_text())
        problems += [f"{name}: rule file {rule} is missing next to {host.name}"
                     for rule in config.get("rule_files") or [] if not (host.parent / rule).is_file()]
        jobs = config.get("scrape_configs") or []
        discovered = {(n, sd.get("port")) for job in jobs for sd in job.get("dns_sd_configs") or []
                      for n in sd.get("names") or []}
        if worker and ("worker", worker.web_port) not in discovered:
            problems.append(f"{name}: scrapes worker at {sorted(discovered)}, want DNS discovery "
                            f"of worker:{worker.web_port} so that every replica is scraped")
        targets = {t for job in jobs for sc in job.get("static_configs") or [] for t in sc.get("targets") or []}
        if collector and f"collector:{collector.collector_port}" not in targets:
            problems.append(f"{name}: does not scrape collector:{collector.collector_port} "
                            f"(static targets {sorted(targets)})")
    return problems


def check_grafana(d: Deployment) -> list[str]:
    """Grafana is provisioned with the Prometheus datasource and the dashboard folder."""
    found, problems = _pinned(d, "grafana/grafana:", r"grafana/grafana:\d+\.\d+\.\d+")
    prometheus = set(d.by_image("prom/prometheus:"))
    for name, spec in found.items():
        provisioning = _mounted(spec, "/etc/grafana/provisioning")
        if provisioning is None or not provisioning.is_dir():
            problems.append(f"{name}: /etc/grafana/provisioning is not mounted from the repository")
            continue
        sources = [s for f in sorted((provisioning / "datasources").glob("*.yml"))
                   for s in yaml.safe_load(f.read_text()).get("datasources") or []]
        uids = {s.get("uid") for s in sources}
        for source in sources:
            host = urlsplit(source.get("url", "")).hostname
            if source.get("type") == "prometheus" and not any(host in d.names_on_network(p) for p in prometheus):
                problems.append(f"{name}: datasource {source.get('name')} reads {source.get('url')}, "
                                f"not a prometheus service {sorted(prometheus)}")
        providers = [p for f in sorted((provisioning / "dashboards").glob("*.yml"))
                     for p in yaml.safe_load(f.read_text()).get("providers") or []]
        dashboards = [json.loads(f.read_text()) for p in providers
                      for folder in [_mounted(spec, p.get("options", {}).get("path", ""))]
                      if folder is not None for f in sorted(folder.glob("*.json"))]
        if not dashboards:
            problems.append(f"{name}: no dashboard JSON in the folders its dashboard providers name")
        problems += [f"{name}: dashboard {board.get('title')} panel {panel.get('title')!r} reads "
                     f"datasource {panel['datasource'].get('uid')!r}, not one of {sorted(uids)}"
                     for board in dashboards for panel in board.get("panels", [])
                     if panel.get("datasource", {}).get("uid") not in uids]
    return problems


CHECKS: list[Callable[[Deployment], list[str]]] = [
    check_env_names, check_env_values, check_kafka_kraft, check_topics_fit_the_broker,
    check_bootstrap_is_advertised, check_redis, check_worker_scales, check_web_ports,
    check_commands, check_depends_on_healthy, check_demo_profile, check_dockerfile,
    check_prometheus, check_grafana,
]


def problems(compose: Path, dockerfile: Path) -> list[str]:
    deployment = Deployment.load(compose, dockerfile)
    return [problem for check in CHECKS for problem in check(deployment)]


# --- the tests -------------------------------------------------------------------


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
def test_compose_and_dockerfile_agree_with_the_code(check: Callable[[Deployment], list[str]]) -> None:
    assert check(Deployment.load(COMPOSE, DOCKERFILE)) == []


def _set_env(service: str, key: str, value: str) -> Callable[[dict], None]:
    return lambda c: c["services"][service].setdefault("environment", {}).__setitem__(key, value)


def _set(service: str, key: str, value: Any) -> Callable[[dict], None]:
    return lambda c: c["services"][service].__setitem__(key, value)


BREAKAGES: dict[str, tuple[Callable[[dict], None], str]] = {
    "misspelt variable": (_set_env("worker", "STREAMRECO_WEB_PROT", "6066"), "STREAMRECO_WEB_PROT is not"),
    "invalid value": (_set_env("worker", "STREAMRECO_PARTITIONS", "0"), "does not validate"),
    "bootstrap not advertised": (
        _set_env("kafka", "KAFKA_ADVERTISED_LISTENERS", "PLAINTEXT://kafka:9093"), "not advertised"),
    "bootstrap to localhost": (
        _set_env("collector", "STREAMRECO_KAFKA_BOOTSTRAP", "kafka://localhost:29092"), "not advertised"),
    "broker only": (_set_env("kafka", "KAFKA_PROCESS_ROLES", "broker"), "KAFKA_PROCESS_ROLES"),
    "zookeeper": (lambda c: c["services"].__setitem__("zookeeper", {"image": "zookeeper:3.9"}), "zookeeper"),
    "unpinned kafka": (_set("kafka", "image", "apache/kafka:latest"), "apache/kafka"),
    "partitions differ": (_set_env("kafka", "KAFKA_NUM_PARTITIONS", "4"), "KAFKA_NUM_PARTITIONS"),
    "no AOF": (_set("redis", "command", ["redis-server"]), "--appendonly yes"),
    "wrong redis host": (_set_env("worker", "STREAMRECO_REDIS_URL", "redis://cache:6379/0"), "REDIS_URL"),
    "worker container_name": (_set("worker", "container_name", "worker"), "container_name"),
    "worker host port": (_set("worker", "ports", ["6066:6066"]), "ports"),
    "worker port not exposed": (_set_env("worker", "STREAMRECO_WEB_PORT", "7000"), "EXPOSE"),
    "worker expose differs": (_set("worker", "expose", ["6067"]), "expose [6067]"),
    "healthcheck port differs": (
        _set("collector", "healthcheck", {"test": ["CMD", "curl", "http://127.0.0.1:6066/health"]}),
        "healthcheck asks port(s) [6066]"),
    "loopback web host": (_set_env("collector", "STREAMRECO_WEB_HOST", "127.0.0.1"), "loopback"),
    "collector port differs": (_set("collector", "ports", ["8080:9090"]), "collector_port is 8080"),
    "unknown sub-command": (_set("worker", "command", ["wrker"]), "is not a sub-command"),
    "bad option": (_set("worker", "command", ["worker", "--bogus"]), "does not parse"),
    "not healthy": (_set("worker", "depends_on", {"kafka": {"condition": "service_started"},
                                                  "redis": {"condition": "service_healthy"}}),
                    "depends_on kafka needs condition service_healthy"),
    "producer always on": (lambda c: c["services"]["demo-producer"].pop("profiles"), "profile demo"),
    "unpinned prometheus": (_set("prometheus", "image", "prom/prometheus:latest"), "pin a version tag"),
    "prometheus config not mounted": (_set("prometheus", "volumes", []), "is not mounted"),
    "worker port not scraped": (_set_env("worker", "STREAMRECO_WEB_PORT", "7000"), "DNS discovery of worker:7000"),
    "collector port not scraped": (
        _set_env("collector", "STREAMRECO_COLLECTOR_PORT", "9000"), "does not scrape collector:9000"),
    "grafana not provisioned": (_set("grafana", "volumes", []), "provisioning is not mounted"),
    "prometheus renamed": (lambda c: c["services"].__setitem__("metrics", c["services"].pop("prometheus")),
                           "not a prometheus service ['metrics']"),
}

DOCKERFILE_BREAKAGES = {
    "entrypoint": ('ENTRYPOINT ["streamreco"]', 'ENTRYPOINT ["python"]', "ENTRYPOINT"),
    "root": ("USER 10001", "USER root", "runs as root"),
    "port": ("EXPOSE 6066 8080", "EXPOSE 8080", "not in the Dockerfile EXPOSE"),
}


@pytest.mark.parametrize("name", BREAKAGES)
def test_a_broken_compose_file_is_caught(name: str, tmp_path: Path) -> None:
    breakage, expected = BREAKAGES[name]
    compose = copy.deepcopy(yaml.safe_load(COMPOSE.read_text()))
    breakage(compose)
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(yaml.safe_dump(compose))
    found = problems(broken, DOCKERFILE)
    assert any(expected in problem for problem in found), found


@pytest.mark.parametrize("name", DOCKERFILE_BREAKAGES)
def test_a_broken_dockerfile_is_caught(name: str, tmp_path: Path) -> None:
    good, bad, expected = DOCKERFILE_BREAKAGES[name]
    assert good in DOCKERFILE.read_text()
    broken = tmp_path / "Dockerfile"
    broken.write_text(DOCKERFILE.read_text().replace(good, bad))
    found = problems(COMPOSE, broken)
    assert any(expected in problem for problem in found), found


def _compose_command() -> list[str] | None:
    if shutil.which("docker") and subprocess.run(
        ["docker", "compose", "version"], capture_output=True, check=False
    ).returncode == 0:
        return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


def test_docker_compose_config_accepts_the_file() -> None:
    command = _compose_command()
    if command is None:
        pytest.skip("neither the docker compose plugin nor docker-compose is installed")
    result = subprocess.run([*command, "-f", str(COMPOSE), "config", "-q"],
                            capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stderr
