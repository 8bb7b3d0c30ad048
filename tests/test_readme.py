"""The README's two set-up commands are the ones CI and users run."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_command(marker: str) -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(rf"<!-- {marker} -->\s*```bash\n(.+?)\n```", text)
    assert match, f"README has no {marker} block"
    return match.group(1).strip()


def test_ci_runs_the_readme_test_command_verbatim():
    command = readme_command("test-command")
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert command in ci_lines


def test_the_demo_command_installs_then_runs_the_demo():
    demo, test = readme_command("demo-command"), readme_command("test-command")
    install = test.rsplit("&&", 1)[0]
    assert demo.startswith(install)
    assert demo.endswith("streamreco demo")


def test_every_setting_is_documented_in_the_readme():
    from streamreco.settings import ENV_PREFIX, Settings

    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Settings"): text.index("\n## ", text.index("## Settings") + 1)]
    documented = set(re.findall(rf"`{ENV_PREFIX}([A-Z_]+)`", section))
    assert documented == {name.upper() for name in Settings.model_fields}
