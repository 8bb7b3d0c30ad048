"""`streamreco demo` with nothing configured: embedded broker, a worker, the replay, live output."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid

import pytest
import redis

from streamreco.embedded import free_port, redis_answers

pytestmark = pytest.mark.integration


LOCAL_REDIS = "redis://127.0.0.1:6379/0"


def test_demo_runs_the_whole_pipeline_on_the_embedded_default():
    namespace = f"demo{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMRECO_")}
    env.update(STREAMRECO_NAMESPACE=namespace, STREAMRECO_WEB_PORT=str(free_port()), COLUMNS="120")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "streamreco.cli", "demo", "--duration", "30", "--rate", "400"],
            env=env, capture_output=True, text=True, timeout=180,
        )
    finally:
        if redis_answers(LOCAL_REDIS):  # the demo used it: leave it as we found it
            client = redis.Redis.from_url(LOCAL_REDIS)
            keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
            if keys:
                client.unlink(*keys)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    final = done.stdout[done.stdout.rindex("streamreco demo"):]
    processed = int(re.search(r"events processed\s*│\s*([\d,]+)", final).group(1).replace(",", ""))
    published = int(re.search(r"lists published\s*│\s*([\d,]+)", final).group(1).replace(",", ""))
    assert processed > 1000 and published > 0
    assert re.search(r"running HR@10 / NDCG@10\s*│\s*0\.\d{3} / 0\.\d{3}", final)
    assert "similar_to:" in final  # a user's list, with its reasons
    print(final)
