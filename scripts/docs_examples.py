"""Checks the `$ curl` examples of docs/api.md and README.md against the real service.

For each file, starts a stub rates upstream (tests/stub_upstream.py) on loopback serving
tests/fixtures/open-er-api-latest-usd.json (a real open.er-api answer), starts the real service
(`python service.py`) as a default install runs it (the countries bundled in countries/data/) on a
fresh SQLite file on a free port, runs every `$ curl ...` line of the file's code blocks in order,
and compares each answer with the one the file shows. Everything it reads is inside the
repository, so a fresh clone can run it. Exit status 1 when an answer differs; with --write, the
answers that differ are written into the file instead.

What varies from run to run is compared as a shape only: times (`2026-11-23T12:39:39Z`), the
`estimated_gdp` values (a random factor is drawn on every refresh), user ids, `etag` and
`content-length` values. The service's address is shown as http://127.0.0.1:8000, the stub's as
open.er-api.com, and the `date` and `x-request-id` headers are left out. A user id in a command is
shown as the id of the user the last POST /users example shows, and run as the id that POST
really created. An answer shown as `{..., … 162 codes in all}}`
(or `… 167 entries in all]`) stands for the real one when that begins with the part before the
`…`, ends the same way and has that many rates (or list entries).

A code block after the comment `<!-- examples: rates upstream down -->` runs while the rates stub
answers 503; one after `<!-- examples: skip -->` is not run (it needs a set-up of its own: other
data, other settings, an ETag from elsewhere).

    python scripts/docs_examples.py            # check; prints what differs
    python scripts/docs_examples.py --write    # and write the real answers in place
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from stub_upstream import StubUpstream  # noqa: E402

FILES = (REPO / "docs" / "api.md", REPO / "README.md")
RATES = REPO / "tests" / "fixtures" / "open-er-api-latest-usd.json"
SHOWN_BASE = "http://127.0.0.1:8000"
SHOWN_RATES_HOST = "open.er-api.com"
RATES_DOWN = "<!-- examples: rates upstream down -->"
SKIP = "<!-- examples: skip -->"
USER_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
HIDDEN_HEADERS = ("date:", "x-request-id:")
VARYING = (
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"), "<time>"),
    (re.compile(r'"estimated_gdp":-?[0-9.e+]+'), '"estimated_gdp":<gdp>'),
    (USER_ID, "<user id>"),
    (re.compile(r'^(etag: )(W/)?".*"$', re.IGNORECASE), r"\1<etag>"),
    (re.compile(r"^(content-length: )\d+$", re.IGNORECASE), r"\1<length>"),
)
ABRIDGED = re.compile(r"^(?P<head>.*), … (?P<count>\d+) [a-z ]+ in all(?P<tail>[\]}]*)$")


def free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_service(stub: StubUpstream, folder: Path):
    """The real service on a fresh SQLite file in `folder`; yields its base URL."""
    port = free_port()
    environ = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", ""),
        "PORT": str(port),
        "DATABASE_URL": f"sqlite:///{folder / 'countries.db'}",
        "EXCHANGE_API_URL": f"{stub.url}/rates",
        "SUMMARY_IMAGE_PATH": str(folder / "summary.png"),
        "LOG_LEVEL": "warning",
    }
    with open(folder / "service.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(REPO / "service.py")],
            cwd=folder,
            env=environ,
            stdout=log,
            stderr=log,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, process, folder / "service.log")
        yield base
    finally:
        process.terminate()
        process.wait(15)


def wait_until_up(base: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{base}/healthz", timeout=1):
                return
        time.sleep(0.1)
    raise SystemExit(f"the service did not start:\n{log.read_text(errors='replace')}")


class Session:
    """Runs the examples' commands against the live service, as they are shown and as they run."""

    def __init__(self, base: str, stub: StubUpstream, folder: Path):
        self.base, self.stub, self.folder = base, stub, folder
        self.user_id: str | None = None  # the one the last POST /users created
        self.shown_user_id: str | None = None  # the one its example shows

    def shown(self, command: str) -> str:
        command = command.replace("localhost:8000", SHOWN_BASE.removeprefix("http://"))
        return USER_ID.sub(self.shown_user_id, command) if self.shown_user_id else command

    def run(self, command: str) -> list[str]:
        runnable = self.shown(command).removeprefix("$ ").replace(SHOWN_BASE, self.base)
        if self.user_id:
            runnable = USER_ID.sub(self.user_id, runnable)
        done = subprocess.run(
            ["bash", "-c", runnable], cwd=self.folder, capture_output=True, text=True, timeout=60
        )
        output = done.stdout.replace(self.base, SHOWN_BASE)
        output = output.replace(self.stub.url.removeprefix("http://"), SHOWN_RATES_HOST)
        lines = [line.rstrip("\r") for line in output.splitlines()]
        lines = [line for line in lines if not line.lower().startswith(HIDDEN_HEADERS)]
        if "POST" in command and "/users" in command and "201 Created" in output:
            self.user_id = USER_ID.search(output).group()
        return lines


def steady(line: str) -> str:
    """`line` with what varies from run to run replaced by a placeholder."""
    for pattern, placeholder in VARYING:
        line = pattern.sub(placeholder, line)
    return line


def entries(line: str) -> int | None:
    """How many rates (an object with `rates`) or entries (a list) a JSON answer holds."""
    try:
        value = json.loads(line)
    except ValueError:
        return None
    if isinstance(value, dict) and isinstance(value.get("rates"), dict):
        return len(value["rates"])
    return len(value) if isinstance(value, list) else None


def line_matches(shown: str, real: str) -> bool:
    abridged = ABRIDGED.match(shown)
    if abridged is None:
        return steady(shown) == steady(real)
    head, tail = steady(abridged["head"]), abridged["tail"]
    return (
        steady(real).startswith(head + ",")
        and real.endswith(tail)
        and entries(real) == int(abridged["count"])
    )


def answers_match(shown: list[str], real: list[str]) -> bool:
    return len(shown) == len(real) and all(map(line_matches, shown, real))


@dataclass
class Outcome:
    text: str
    mismatches: list[str] = field(default_factory=list)
    commands: int = 0


def regenerate(text: str, session: Session, rates_down: Callable[[bool], None]) -> Outcome:
    """Runs every `$ curl` command of `text`; the outcome's text has each answer that differs from
    the one shown replaced by the real one."""
    lines, out, i = text.splitlines(), [], 0
    outcome = Outcome("")
    in_block = down_next = skip_next = False
    while i < len(lines):
        line = lines[i]
        down_next = down_next or line.strip() == RATES_DOWN
        skip_next = skip_next or line.strip() == SKIP
        if line.startswith("```"):
            in_block = not in_block
            rates_down(in_block and down_next)
            down_next = down_next and in_block
            skip_next = skip_next and in_block
        if not (in_block and not skip_next and line.startswith("$ curl")):
            out.append(line)
            i += 1
            continue
        command = [line]
        while command[-1].endswith("\\"):
            i += 1
            command.append(lines[i])
        i += 1
        end = i
        while end < len(lines) and not lines[end].startswith(("$ ", "```")):
            end += 1
        blank_after = lines[end - 1] == "" and lines[end].startswith("$ ")
        shown_answer = lines[i : end - 1] if blank_after else lines[i:end]
        shown = session.shown("\n".join(command))
        real = session.run("\n".join(command))
        outcome.commands += 1
        if answers_match(shown_answer, real):
            real = shown_answer
        else:
            diff = difflib.unified_diff(shown_answer, real, "shown", "real", lineterm="")
            outcome.mismatches.append("\n".join([shown, *diff]))
        created = USER_ID.search("\n".join(real))
        if created and "POST" in shown and "/users" in shown:
            session.shown_user_id = created.group()
        out += [*shown.split("\n"), *real] + ([""] if blank_after else [])
        i = end
    outcome.text = "\n".join(out) + "\n"
    return outcome


def check(path: Path, rates: bytes) -> Outcome:
    """Runs `path`'s examples against a fresh service of its own."""
    routes = {"/rates": (200, rates)}
    with tempfile.TemporaryDirectory() as folder, StubUpstream(routes) as stub:
        with running_service(stub, Path(folder)) as base:

            def rates_down(down: bool) -> None:
                stub.routes["/rates"] = (503, b"{}") if down else (200, rates)

            return regenerate(path.read_text(), Session(base, stub, Path(folder)), rates_down)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--write", action="store_true", help="write the real answers in place")
    parser.add_argument("files", nargs="*", type=Path, default=FILES)
    args = parser.parse_args()
    if shutil.which("curl") is None:
        raise SystemExit("needs curl")
    failed = 0
    for path in args.files:
        outcome = check(path, RATES.read_bytes())
        for mismatch in outcome.mismatches:
            print(f"{path.name}: the answer differs\n{mismatch}\n")
        print(f"{path.name}: {outcome.commands} examples, {len(outcome.mismatches)} differ")
        failed += len(outcome.mismatches)
        if args.write and outcome.mismatches:
            path.write_text(outcome.text)
    return 1 if failed and not args.write else 0


if __name__ == "__main__":
    sys.exit(main())
