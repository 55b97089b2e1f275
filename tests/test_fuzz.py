"""Schemathesis against the real server, from its own /openapi.json, with every check: no 5xx, no
answer outside what the document says, valid input accepted and invalid input refused.

Marked `fuzz` and left out of the default run (it takes a minute or more): `.ci/run` runs it on
SQLite with `pytest -m fuzz`. FUZZ_EXAMPLES (default 300 per operation) and FUZZ_SEED (default 1)
pick how hard and which inputs; the upstreams are the loopback stub, never the internet."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import running_server, stub_env

pytestmark = pytest.mark.fuzz


def test_schemathesis_finds_nothing(stub, database_url, tmp_path):  # noqa: F811
    examples, seed = os.environ.get("FUZZ_EXAMPLES", "300"), os.environ.get("FUZZ_SEED", "1")
    with running_server(stub_env(stub, database_url, tmp_path), tmp_path / "server.log") as (
        url,
        _,
    ):
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "schemathesis.cli",
                "--config-file",
                str(Path(__file__).with_name("schemathesis.toml")),
                "run",
                f"{url}/openapi.json",
                "--checks",
                "all",
                "--max-examples",
                examples,
                "--seed",
                seed,
                "--workers",
                "1",
                "--no-color",
                "--generation-database",
                "none",
                "--request-timeout",
                "20",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=1200,
        )
    server_log = (tmp_path / "server.log").read_text()
    assert run.returncode == 0, run.stdout[-20_000:] + run.stderr[-5_000:]
    assert "Traceback" not in server_log, server_log[-5_000:]
