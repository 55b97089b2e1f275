"""Regenerates the README's examples from a real run.

Starts a stub rates upstream (tests/stub_upstream.py) on loopback serving a real open.er-api answer
(../shared/data, or --data), starts the real service (`python service.py`) as a default install
runs it (the bundled countries) on a fresh SQLite file on a free port, runs every `$ curl ...` line
of the README's code blocks in order, and prints each command with its real answer; with --write it
puts those answers into README.md in place of the old ones.

What it changes on the way, so that the README reads as a default install would: the service's
address is shown as http://127.0.0.1:8000, the stub's as open.er-api.com, the `date` header is
left out, and a user id in a command is the id of the user the last POST /users created. A code
block after the comment `<!-- readme-examples: rates upstream down -->` runs while the rates stub
answers 503; one after `<!-- readme-examples: skip -->` is left as it is (it needs a set-up of its
own: other data, other settings, an ETag from elsewhere).

    python scripts/readme_examples.py            # print the transcript
    python scripts/readme_examples.py --write    # and rewrite README.md
"""

from __future__ import annotations

import argparse
import contextlib
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
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from stub_upstream import StubUpstream  # noqa: E402

README = REPO / "README.md"
SHOWN_BASE = "http://127.0.0.1:8000"
SHOWN_RATES_HOST = "open.er-api.com"
RATES_DOWN = "<!-- readme-examples: rates upstream down -->"
SKIP = "<!-- readme-examples: skip -->"
USER_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
HIDDEN_HEADERS = ("date:",)


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
        wait_until_up(base, process)
        yield base
    finally:
        process.terminate()
        process.wait(15)


def wait_until_up(base: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{base}/healthz", timeout=1):
                return
        time.sleep(0.1)
    raise SystemExit("the service did not start: see its log")


class Session:
    """Runs README commands against the live service, as they are shown and as they are run."""

    def __init__(self, base: str, stub: StubUpstream, folder: Path):
        self.base, self.stub, self.folder = base, stub, folder
        self.user_id: str | None = None

    def shown(self, command: str) -> str:
        command = command.replace("localhost:8000", SHOWN_BASE.removeprefix("http://"))
        return USER_ID.sub(self.user_id, command) if self.user_id else command

    def run(self, command: str) -> list[str]:
        runnable = self.shown(command).removeprefix("$ ").replace(SHOWN_BASE, self.base)
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


def regenerate(text: str, session: Session, rates_down: Callable[[bool], None]) -> str:
    """`text` with the output of every `$ curl` command replaced by what `session` answers."""
    lines, out, i = text.splitlines(), [], 0
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
        old_output_end = i
        while old_output_end < len(lines) and not lines[old_output_end].startswith(("$ ", "```")):
            old_output_end += 1
        blank_after = lines[old_output_end - 1] == "" and lines[old_output_end].startswith("$ ")
        shown = session.shown("\n".join(command))
        output = session.run("\n".join(command))
        print(shown, *output, sep="\n")
        out += [*shown.split("\n"), *output] + ([""] if blank_after else [])
        i = old_output_end
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--write", action="store_true", help="rewrite README.md")
    args = parser.parse_args()
    if shutil.which("curl") is None:
        raise SystemExit("needs curl")
    rates = (args.data / "open-er-api-latest-usd.json").read_bytes()
    routes = {"/rates": (200, rates)}
    with tempfile.TemporaryDirectory() as folder, StubUpstream(routes) as stub:
        with running_service(stub, Path(folder)) as base:

            def rates_down(down: bool) -> None:
                stub.routes["/rates"] = (503, b"{}") if down else (200, rates)

            text = regenerate(README.read_text(), Session(base, stub, Path(folder)), rates_down)
    if args.write:
        README.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
