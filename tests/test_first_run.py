"""The README's first run with no network at all: its commands, as written there, run against a
fresh SQLite file with every proxy pointing nowhere, so that any request out would fail."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

from conftest import clean_environment

REPO = Path(__file__).resolve().parent.parent
NOWHERE = "http://127.0.0.1:9"  # the discard port: nothing answers there


def offline_commands() -> list[str]:
    readme = (REPO / "README.md").read_text()
    block = re.search(r"<!-- offline first run -->\n```sh\n(.*?)```", readme, re.S)
    assert block, "README.md has the offline first run"
    return [line for line in block.group(1).splitlines() if line.strip()]


def run(command: str, folder: Path) -> subprocess.CompletedProcess:
    """`command` as the README writes it, from a folder of its own: the README's `.venv/bin/python`
    is this interpreter, `service.py` this repository's."""
    words = shlex.split(command)
    settings = dict(word.split("=", 1) for word in words if re.match(r"^[A-Z_]+=", word))
    program = [word for word in words if not re.match(r"^[A-Z_]+=", word)]
    assert program[:2] == [".venv/bin/python", "service.py"], command
    environ = clean_environment(
        {**settings, "HTTP_PROXY": NOWHERE, "HTTPS_PROXY": NOWHERE, "ALL_PROXY": NOWHERE}
    )
    return subprocess.run(
        [sys.executable, str(REPO / "service.py"), *program[2:]],
        cwd=folder, env=environ, capture_output=True, text=True, timeout=240,
    )  # fmt: skip


def test_the_readme_first_run_works_with_no_network(tmp_path):
    refresh, backfill = offline_commands()
    done = run(refresh, tmp_path)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["message"] == "Countries refreshed successfully"
    assert answer["total_countries"] == 250 and answer["inserted"] == 250
    done = run(backfill, tmp_path)
    assert done.returncode == 0, done.stderr
    added = int(re.search(r"backfill added (\d+) days", done.stdout).group(1))
    assert added > 6000  # every ECB working day since 1999, but the one the refresh stored
    assert (tmp_path / "countries.db").is_file()
