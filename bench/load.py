"""Load: the one wrk runner (its output parsed into req/s, p50, p99, errors) and the one writer of
wrk Lua scripts, which draw every request's URL at random."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from bench.processes import Failure

WRK_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def run_wrk(url: str, args, headers: dict | None = None, script: Path | None = None) -> dict:
    """wrk against `url` (a script, when given, chooses each request's path) for `args.seconds`
    with `args.threads` threads and `args.connections` connections."""
    cmd = [
        "wrk",
        *(["-s", str(script)] if script else []),
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{args.seconds:g}s",
        "--timeout",
        "10s",
        "--latency",
        *[arg for name, value in (headers or {}).items() for arg in ("-H", f"{name}: {value}")],
        url,
    ]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.seconds + 30)
    except subprocess.TimeoutExpired as expired:
        raise Failure(f"wrk on {url} did not finish: {expired}") from None
    out = done.stdout
    if done.returncode != 0 or "Requests/sec" not in out:
        raise Failure(f"wrk failed on {url}: {done.stderr.strip() or out.strip()}")

    def latency(pct: str) -> float:
        value, unit = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s|m|h)\s*$", out, re.M).groups()
        return float(value) * WRK_UNITS[unit]

    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "socket_errors": sum(map(int, errors.groups())) if errors else 0,
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
    }


def measured(
    url: str, args, shown: str, label: str, where: str, problems: list[str], **wrk_options
) -> dict:
    """run_wrk, its figures printed as one line; non-2xx answers under wrk are a problem of
    `where` (the database and size, or the run)."""
    result = run_wrk(url, args, **wrk_options)
    print(
        f"  {label:8} {shown:42} {result['rps']:9.0f} req/s  p50 {result['p50_ms']:7.2f} ms"
        f"  p99 {result['p99_ms']:7.2f} ms  non-2xx {result['non2xx']}",
        flush=True,
    )
    if result["non2xx"]:
        problems.append(
            f"{where} {label} GET {shown}: {result['non2xx']} non-2xx answers under wrk"
        )
    return result


def lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_lua(
    path: Path,
    pieces: list[str],
    lists: list[list[str]],
    nonce: str | None = None,
    seed: int | None = None,
    about: str = "",
) -> Path:
    """A wrk script whose every request is `pieces[0] + a draw from lists[0] + pieces[1] + ...`
    (len(pieces) == len(lists) + 1), plus `&<nonce>=<thread>-<counter>` when `nonce` names a
    parameter: the service ignores it, and the response cache keys by it, so that no two
    requests share an answer even when the draw repeats. `seed`: the same random sequence in
    every thread (default: a seed of its own per thread and run)."""
    lua_lists = ",\n".join("  {" + ", ".join(map(lua_string, values)) + "}" for values in lists)
    suffix = (
        f' .. "{"&" if "?" in "".join(pieces) else "?"}{nonce}=" .. thread_id .. "-" .. counter'
        if nonce
        else ""
    )
    seeding = (
        f"math.randomseed({seed})\n"
        if seed is not None
        else "function init(args)\n  math.randomseed(os.time() * 1000 + thread_id)\nend\n"
    )
    path.write_text(
        f"""-- written by the bench{": " if about else ""}{about}
local pieces = {{{", ".join(map(lua_string, pieces))}}}
local lists = {{
{lua_lists}
}}
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end
local counter = 0
{seeding}function request()
  counter = counter + 1
  local parts = {{pieces[1]}}
  for i = 1, #lists do
    local list = lists[i]
    parts[#parts + 1] = list[math.random(#list)]
    parts[#parts + 1] = pieces[i + 1]
  end
  return wrk.format("GET", table.concat(parts){suffix})
end
""",
        encoding="utf-8",
    )
    return path
