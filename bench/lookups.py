"""Country look-ups: routes by code, search and fields beside their ceilings (the reads' way), and
the same look-ups with random values, nearly every one a cache miss, through a wrk Lua script."""

from __future__ import annotations

import random
from pathlib import Path
from urllib.parse import quote

from bench.load import measured, write_lua
from bench.processes import Failure

# measured beside their ceilings at N = 250
SEARCH_ROUTES = [
    "/countries/NG",
    "/countries?q=united",
    "/countries?code=NG,GH,KE",
    "/countries?fields=name,population&sort=name_asc&limit=50",
    # the record's fields and every field, side by side; the child-table filters
    "/countries?limit=50",
    "/countries?fields=all&limit=50",
    "/countries?currency=usd&language=fr",
]


def miss_paths(base: list[dict], n: int, count: int = 20_000, seed: int = 13) -> dict[str, list]:
    """Random `q` and `code` look-ups, nearly all distinct, so that the response cache misses:
    `q` a copy's name as bench.data names them ("ghana 37"), `code` three codes."""
    chooser = random.Random(seed)
    copies = max(1, n // len(base))
    codes = [c[key] for c in base for key in ("alpha2Code", "alpha3Code") if c.get(key)]
    searches, lookups = [], []
    for _ in range(count):
        name = chooser.choice(base)["name"].lower()
        copy = chooser.randint(1, copies)
        searches.append(f"/countries?q={name if copy == 1 else f'{name} {copy}'}&limit=50")
        # distinct by the codes and their case alone (a real code names one country; the
        # copies have none)
        picked = ",".join(
            code.lower() if chooser.random() < 0.5 else code for code in chooser.sample(codes, 3)
        )
        lookups.append(f"/countries?code={picked}&limit=50")
    return {"q": [quote_path(p) for p in searches], "code": [quote_path(p) for p in lookups]}


def quote_path(path: str) -> str:
    return quote(path, safe="/?=&,")


def measure_misses(
    base_url: str, base: list[dict], n: int, args, workdir: Path, tag: str, problems: list[str]
) -> list[dict]:
    """wrk with random `q` and `code` look-ups against the service (no ceiling: nothing to cache)."""
    rows = []
    for kind, paths in miss_paths(base, n).items():
        script = write_lua(
            workdir / f"misses-{kind}-{tag}.lua",
            ["", ""],
            [paths],
            seed=len(paths),
            about=f"random {kind} look-ups, one path per request",
        )
        try:
            result = measured(
                base_url, args, f"random {kind}", "misses", tag, problems, script=script
            )
        except Failure as failure:
            problems.append(f"{tag} random {kind} look-ups: {failure}")
            continue
        rows.append({"kind": kind, "example": paths[0], **result})
    return rows
