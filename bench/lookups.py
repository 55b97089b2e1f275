"""The benchmark's country look-ups (issue 13): routes by code, search and fields beside their
ceilings, and the same look-ups with random values (cache misses) through a wrk Lua script.

run.py calls on this module; it is kept apart so that other changes to run.py merge easily."""

from __future__ import annotations

import json
import random
import re
import subprocess
from pathlib import Path

# measured beside their ceilings at N = 250
SEARCH_ROUTES = [
    "/countries/NG",
    "/countries?q=united",
    "/countries?code=NG,GH,KE",
    "/countries?fields=name,population&sort=name_asc&limit=50",
]
# the synthetic stand-in's countries, when the snapshots are absent
SYNTHETIC_CODES = {
    "Nigeria": ("NG", "NGA", "Western Africa"), "Ghana": ("GH", "GHA", "Western Africa"),
    "Kenya": ("KE", "KEN", "Eastern Africa"), "Egypt": ("EG", "EGY", "Northern Africa"),
    "India": ("IN", "IND", "Southern Asia"), "Japan": ("JP", "JPN", "Eastern Asia"),
    "Germany": ("DE", "DEU", "Western Europe"), "France": ("FR", "FRA", "Western Europe"),
    "Brazil": ("BR", "BRA", "South America"), "Canada": ("CA", "CAN", "Northern America"),
    "Australia": ("AU", "AUS", "Australia and New Zealand"), "Antarctica": ("AQ", "ATA", None),
}  # fmt: skip


def with_codes(base: list[dict], data_dir: Path) -> list[dict]:
    """The base countries with their ISO codes and subregion, from the full v2 snapshot beside
    the projected one (which, as the v2 API answered `fields=`, lacks them)."""
    full = data_dir / "restcountries-v2-full.json"
    if full.is_file():
        extra = {
            c["name"]: (c.get("alpha2Code"), c.get("alpha3Code"), c.get("subregion"))
            for c in json.loads(full.read_bytes())
        }
    else:
        extra = SYNTHETIC_CODES
    return [
        {**country, **dict(zip(("alpha2Code", "alpha3Code", "subregion"), extra[country["name"]]))}
        if country["name"] in extra
        else country
        for country in base
    ]


def miss_paths(base: list[dict], n: int, count: int = 20_000, seed: int = 13) -> dict[str, list]:
    """Random `q` and `code` look-ups, nearly all distinct, so that the response cache misses:
    `q` a copy's name as run.py names them ("ghana 37"), `code` three codes and a random offset."""
    chooser = random.Random(seed)
    copies = max(1, n // len(base))
    codes = [c[key] for c in base for key in ("alpha2Code", "alpha3Code") if c.get(key)]
    searches, lookups = [], []
    for _ in range(count):
        name = chooser.choice(base)["name"].lower()
        copy = chooser.randint(1, copies)
        searches.append(f"/countries?q={name if copy == 1 else f'{name} {copy}'}&limit=50")
        # distinct by the codes and their case alone (a real code names one country, run.py's
        # copies keep it: each matches N / 250 rows here)
        picked = ",".join(
            code.lower() if chooser.random() < 0.5 else code for code in chooser.sample(codes, 3)
        )
        lookups.append(f"/countries?code={picked}&limit=50")
    return {"q": [quote_path(p) for p in searches], "code": [quote_path(p) for p in lookups]}


def quote_path(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="/?=&,")


LUA = """-- random look-ups, written by bench/search.py: one path per request, drawn at random
local paths = %s
math.randomseed(%d)
request = function()
  return wrk.format("GET", paths[math.random(#paths)])
end
"""


def write_script(paths: list[str], path: Path, seed: int) -> Path:
    table = "{" + ",".join(json.dumps(p) for p in paths) + "}"
    path.write_text(LUA % (table, seed))
    return path


def run_wrk_script(base_url: str, script: Path, args) -> dict:
    cmd = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.seconds:g}s",
           "--timeout", "10s", "--latency", "-s", str(script), base_url]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.seconds + 30)
    out = done.stdout
    if done.returncode != 0 or "Requests/sec" not in out:
        raise RuntimeError(f"wrk failed with {script}: {done.stderr.strip() or out.strip()}")
    units = {"us": 1e-3, "ms": 1.0, "s": 1e3}

    def latency(pct: str) -> float:
        value, unit = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * units[unit]

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
    }


def measure_misses(
    base_url: str, base: list[dict], n: int, args, workdir: Path, tag: str, problems: list[str]
) -> list[dict]:
    """wrk with random `q` and `code` look-ups against the service (no ceiling: nothing to cache)."""
    rows = []
    for kind, paths in miss_paths(base, n).items():
        script = write_script(paths, workdir / f"misses-{kind}-{tag}.lua", seed=len(paths))
        try:
            result = run_wrk_script(base_url, script, args)
        except (RuntimeError, subprocess.TimeoutExpired) as failure:
            problems.append(f"{tag} random {kind} look-ups: {failure}")
            continue
        print(
            f"  misses   {kind:5} {result['requests']:7} requests {result['rps']:9.0f} req/s"
            f"  p50 {result['p50_ms']:7.2f} ms  p99 {result['p99_ms']:7.2f} ms"
            f"  non-2xx {result['non2xx']}",
            flush=True,
        )
        if result["non2xx"]:
            problems.append(f"{tag} random {kind} look-ups: {result['non2xx']} non-2xx answers")
        rows.append({"kind": kind, "example": paths[0], **result})
    return rows


def report_lines(results: dict[str, dict]) -> list[str]:
    lines = [
        "",
        "## Look-ups with random values (cache misses)",
        "",
        "wrk with a Lua script drawing each request from 20,000 random paths, so nearly every"
        " request misses the response cache: `q` is a copy's name (`?q=ghana 37&limit=50`), `code`"
        " three random codes in random case (`?code=ng,GHA,Ke&limit=50`; each code matches N / 250"
        " rows, the copies keeping their codes). A search scans the folded names (no index can"
        " serve a contains-search); a code look-up reads two indexes. Latency in ms, with wrk's"
        " connections all waiting on the one process: p50 is about connections / req/s.",
        "",
        "| database | rows | look-up | example | requests | req/s | p50 | p99 |",
        "|---|--:|---|---|--:|--:|--:|--:|",
    ]
    for kind, result in results.items():
        for r in result.get("lookup_misses", []):
            lines.append(
                f"| {kind} | {r['rows']:,} | `{r['kind']}` | `{r['example']}` | {r['requests']:,}"
                f" | {r['rps']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} |"
            )
    return lines
