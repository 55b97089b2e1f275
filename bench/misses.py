"""The "miss" mode of the benchmark: list shapes whose query string changes on every request, so
that every request misses the response cache and reaches the database. (`/countries/{name}` is
left out: its answers are cached by name, not by query string, so with 250 names nearly every
request would be a hit.)

Each shape is a URL template whose `{placeholders}` wrk fills from lists at random (a Lua script
written here), plus a `_miss=<thread>-<counter>` parameter unique to each request: the service
ignores unknown parameters, and the cache is keyed by the query string as sent, so no two requests
share an answer even when the random draw repeats. A shape is measured only where the service's
/openapi.json lists its route and query parameter: filters that other work adds (`code`, `q`,
`subregion`) are picked up once they exist, and noted as skipped until then.
"""

from __future__ import annotations

import json
import random
import re
import urllib.parse
from pathlib import Path
from typing import NamedTuple

from bench.load import measured, write_lua
from bench.processes import Failure, request
from bench.reads import capture, ceiling, wrk_route

PAGE = 20
# The same offsets at every size, so that the 100,000-row figure compares like with like: a
# page read through the sort's index; OFFSET itself costs the rows it skips at any size.
SHALLOW_OFFSETS = [str(offset) for offset in range(0, 250 - PAGE + 1)]


class MissShape(NamedTuple):
    name: str
    template: str  # a URL with {placeholders}, each drawn from the lists `choices` makes
    requires: tuple[str, str]  # (OpenAPI path, query parameter or ""): measured only if listed
    at_scale: bool  # also measured at 100,000 rows (paged and indexed shapes)


SHAPES = [
    MissShape("page", "/countries?sort=gdp_desc&limit=20&offset={offset}", ("/countries", "sort"), True),
    MissShape("region", "/countries?region={region}&limit=20&offset={small_offset}", ("/countries", "region"), True),
    MissShape("currency", "/countries?currency={currency}&limit=20", ("/countries", "currency"), True),
    MissShape("region sorted", "/countries?region={region}&sort=population_desc", ("/countries", "region"), False),
    MissShape("subregion", "/countries?subregion={subregion}&limit=20", ("/countries", "subregion"), True),
    # limit=20: the renamed copies that make 100,000 rows keep their codes (400 countries a code)
    MissShape("code", "/countries?code={codes}&limit=20", ("/countries", "code"), True),
    MissShape("q", "/countries?q={q}&limit=20", ("/countries", "q"), False),
]  # fmt: skip
QUICK_SHAPE = "page"


def quoted(values: set[str]) -> list[str]:
    return sorted(urllib.parse.quote(value, safe="") for value in values if value)


def choices(countries: list[dict]) -> dict[str, list[str]]:
    """The values each placeholder draws from, taken from the upstream data the stub serves."""
    names = {c["name"] for c in countries}
    codes = {c.get(key) for c in countries for key in ("alpha2Code", "alpha3Code")} - {None}
    draw = random.Random(17)
    code_lists = [",".join(draw.sample(sorted(codes), 3)) for _ in range(200)] if codes else []
    currencies = {(c.get("currencies") or [{}])[0].get("code") for c in countries}
    return {
        "offset": SHALLOW_OFFSETS,
        "small_offset": [str(offset) for offset in range(0, 41)],
        "region": quoted({c.get("region") for c in countries}),
        "subregion": quoted({c.get("subregion") for c in countries}),
        "currency": quoted(currencies - {None}),
        "codes": [urllib.parse.quote(codes, safe=",") for codes in code_lists],
        "q": quoted({name.casefold()[:4] for name in names if len(name) >= 4}),
    }


def placeholders(template: str) -> list[str]:
    return re.findall(r"\{(\w+)\}", template)


def available(shape: MissShape, openapi: dict) -> bool:
    path, parameter = shape.requires
    operation = openapi.get("paths", {}).get(path, {}).get("get")
    if operation is None:
        return False
    names = {p.get("name") for p in operation.get("parameters", [])}
    return not parameter or parameter in names


def sample_urls(shape: MissShape, lists: dict[str, list[str]], count: int) -> list[str]:
    """A few URLs as the Lua script draws them: each is requested once before wrk (must be 200)."""
    draw = random.Random(count)
    urls = []
    for index in range(count):
        values = {name: draw.choice(lists[name]) for name in placeholders(shape.template)}
        urls.append(with_nonce(shape.template.format(**values), f"check-{index}"))
    return urls


def with_nonce(url: str, nonce: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}_miss={nonce}"


def write_script(shape: MissShape, lists: dict[str, list[str]], folder: Path, tag: str) -> Path:
    """A wrk script drawing every placeholder at random for each request, plus a unique _miss."""
    return write_lua(
        folder / f"miss-{tag}-{shape.name.replace(' ', '-')}.lua",
        re.split(r"\{\w+\}", shape.template),
        [lists[name] for name in placeholders(shape.template)],
        nonce="_miss",
        about=f"the miss shape {shape.name!r}: {shape.template}",
    )


def representative(shape: MissShape, lists: dict[str, list[str]]) -> str:
    """One fixed URL of the shape: its cached figure and the ceiling are measured on it."""
    values = {name: lists[name][len(lists[name]) // 2] for name in placeholders(shape.template)}
    return shape.template.format(**values)


def miss_shapes(base_url: str, lists: dict, n: int, args, notes: list[str]) -> list[MissShape]:
    """The shapes measured at this size: those the service's /openapi.json lists (others noted)."""
    status, _, body = request("GET", base_url + "/openapi.json", 30)
    if status != 200:
        raise Failure(f"GET /openapi.json answered {status}")
    openapi = json.loads(body)
    wanted = [
        shape
        for shape in SHAPES
        if (shape.name == QUICK_SHAPE if args.quick else n == args.sizes[0] or shape.at_scale)
    ]
    shapes = []
    for shape in wanted:
        if not available(shape, openapi):
            why = "/openapi.json does not list it yet"
        elif not all(lists[name] for name in placeholders(shape.template)):
            why = "the upstream data has no values for it"
        else:
            shapes.append(shape)
            continue
        note = f"miss shape {shape.name!r} ({shape.template}) skipped: {why}"
        if note not in notes:
            notes.append(note)
    return shapes


def measure_misses(
    base_url: str, lists: dict, n: int, args, workdir: Path, tag: str, report: tuple[list, list]
) -> list[dict]:
    """Per shape: wrk with a Lua script that makes every request a cache miss, beside the same
    shape's one fixed URL served from the cache and by the ceiling."""
    problems, notes = report
    shapes = miss_shapes(base_url, lists, n, args, notes)
    for shape in shapes:
        for url in sample_urls(shape, lists, 5):
            capture(base_url, url)  # each must answer 200
    routes = [representative(shape, lists) for shape in shapes]
    captured = [capture(base_url, route) for route in routes]
    rows = []
    with ceiling(captured, workdir, f"{tag}-misses") as ceiling_url:
        for shape, route in zip(shapes, routes):
            script = write_script(shape, lists, workdir, tag)
            miss = measured(base_url + "/", args, shape.name, "miss", tag, problems, script=script)
            cached = wrk_route(base_url, route, args, "service", tag, problems)
            top = wrk_route(ceiling_url, route, args, "ceiling", tag, problems)
            rows.append({"shape": shape, "miss": miss, "cached": cached, "ceiling": top})
    return rows
