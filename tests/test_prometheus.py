"""The real Prometheus: it validates the shipped files, scrapes a running worker, answers queries.

The Debian package ``prometheus`` (``prometheus`` and ``promtool``) is installed
by the session fixture if it is missing; the tests skip only when apt itself is
not there.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from streamreco import embedded
from tests.kafka_helpers import event_json, produce

pytestmark = pytest.mark.integration

OPS = Path(__file__).resolve().parents[1] / "ops" / "prometheus"


@pytest.fixture(scope="session")
def prometheus_bin() -> dict[str, str]:
    """Paths of ``prometheus`` and ``promtool``, installing the Debian package if needed."""
    def found() -> dict[str, str] | None:
        paths = {name: shutil.which(name) for name in ("prometheus", "promtool")}
        return paths if all(paths.values()) else None  # type: ignore[return-value]

    if found() is None:
        if shutil.which("apt-get") is None:
            pytest.skip("prometheus/promtool missing and no apt-get to install the Debian package")
        sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = [*sudo, "apt-get", "install", "-y", "-q", "--no-install-recommends", "prometheus"]
        if subprocess.run(install, env=env, capture_output=True, check=False, timeout=600).returncode != 0:
            subprocess.run([*sudo, "apt-get", "update", "-q"], env=env, capture_output=True, check=True, timeout=600)
            subprocess.run(install, env=env, capture_output=True, check=True, timeout=600)
    paths = found()
    assert paths is not None, "apt-get installed prometheus but prometheus/promtool are not on PATH"
    return paths


def promtool(prometheus_bin: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([prometheus_bin["promtool"], *args], cwd=OPS, capture_output=True, text=True,
                          check=False, timeout=60)


def test_promtool_accepts_the_scrape_config_and_the_rules(prometheus_bin) -> None:
    config = promtool(prometheus_bin, "check", "config", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr
    rules = promtool(prometheus_bin, "check", "rules", "alerts.yml")
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert "4 rules found" in rules.stdout


def test_the_alert_rules_fire_when_they_should(prometheus_bin) -> None:
    result = promtool(prometheus_bin, "test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rejects_a_broken_rule(prometheus_bin, tmp_path: Path) -> None:
    broken = tmp_path / "alerts.yml"
    broken.write_text((OPS / "alerts.yml").read_text().replace("histogram_quantile(0.99,", "histogram_quantile(0.99"))
    result = subprocess.run([prometheus_bin["promtool"], "check", "rules", str(broken)],
                            capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode != 0


class Prometheus:
    """A Prometheus server on a free port, scraping ``targets`` every second."""

    def __init__(self, binary: str, targets: list[str], workdir: Path) -> None:
        self.port = embedded.free_port()
        config = workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": "streamreco-worker", "static_configs": [{"targets": targets}]}],
        }))
        self.log = workdir / "prometheus.log"
        self.process = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=open(self.log, "ab"), stderr=subprocess.STDOUT,  # noqa: SIM115
        )

    def query(self, expr: str) -> list[dict]:
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=3) as response:
                body = json.loads(response.read())
        except OSError:
            return []
        assert body["status"] == "success", body
        return body["data"]["result"]

    def wait_for(self, expr: str, done, timeout: float = 40.0) -> list[dict]:  # noqa: ANN001
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()[-2000:]
            result = self.query(expr)
            if done(result):
                return result
            time.sleep(0.5)
        raise TimeoutError(f"{expr}: last {result}\n{self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        self.process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(20)
        self.process.kill()  # nothing to do if it stopped
        self.process.wait()


@pytest.fixture
def prometheus_factory(prometheus_bin, tmp_path: Path) -> Iterator:
    started: list[Prometheus] = []

    def start(targets: list[str]) -> Prometheus:
        server = Prometheus(prometheus_bin["prometheus"], targets, tmp_path)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def test_prometheus_scrapes_lag_and_freshness_from_a_running_worker(
    settings_factory, worker_factory, prometheus_factory
) -> None:
    settings = settings_factory()
    worker = worker_factory(settings)
    worker.wait_ready()
    prometheus = prometheus_factory([f"127.0.0.1:{settings.web_port}"])
    produce(settings, settings.events_topic,
            [(f"u{n % 6}".encode(), event_json(f"e{n}", "view", f"u{n % 6}", f"i{n % 11}")) for n in range(60)])

    up = prometheus.wait_for('up{job="streamreco-worker"}', lambda r: r and r[0]["value"][1] == "1")
    assert up[0]["metric"]["instance"] == f"127.0.0.1:{settings.web_port}"
    lag = prometheus.wait_for(
        f'streamreco_consumer_lag{{topic="{settings.events_topic}"}}',
        lambda r: r and all(s["value"][1] == "0" for s in r))
    assert len(lag) >= settings.partitions  # one series per partition of the events topic
    processed = prometheus.wait_for('sum(streamreco_events_processed_total{type="view"})',
                                    lambda r: r and r[0]["value"][1] == "60")
    assert processed
    measured = prometheus.wait_for("sum(streamreco_freshness_seconds_count)",
                                   lambda r: r and float(r[0]["value"][1]) >= 6)
    lists = prometheus.query("sum(streamreco_lists_published_total)")
    assert float(measured[0]["value"][1]) == float(lists[0]["value"][1])  # every list is measured
    # a rate needs observations between two scrapes: a second wave, now that the series is scraped
    produce(settings, settings.events_topic,
            [(f"u{n % 6}".encode(), event_json(f"f{n}", "click", f"u{n % 6}", f"i{n % 11}")) for n in range(30)])
    p99 = prometheus.wait_for(
        "histogram_quantile(0.99, sum by (le) (rate(streamreco_freshness_seconds_bucket[1m])))",
        lambda r: r and r[0]["value"][1] not in ("NaN", "+Inf"))
    assert 0 < float(p99[0]["value"][1]) < 60
