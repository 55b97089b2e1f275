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

import random
import re
import urllib.parse
from pathlib import Path
from typing import NamedTuple

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


def lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def lua_script(shape: MissShape, lists: dict[str, list[str]]) -> str:
    """A wrk script drawing every placeholder at random for each request, plus a unique _miss."""
    pieces = re.split(r"\{\w+\}", shape.template)
    names = placeholders(shape.template)
    lua_lists = ",\n".join(
        "  {" + ", ".join(lua_string(value) for value in lists[name]) + "}" for name in names
    )
    separator = "&" if "?" in shape.template else "?"
    return f"""-- written by bench/misses.py for the shape "{shape.name}": {shape.template}
local pieces = {{{", ".join(lua_string(piece) for piece in pieces)}}}
local lists = {{
{lua_lists}
}}
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end
local counter = 0
function init(args)
  math.randomseed(os.time() * 100 + thread_id)
end
function request()
  counter = counter + 1
  local parts = {{pieces[1]}}
  for i = 1, #lists do
    local list = lists[i]
    parts[#parts + 1] = list[math.random(#list)]
    parts[#parts + 1] = pieces[i + 1]
  end
  parts[#parts + 1] = "{separator}_miss=" .. thread_id .. "-" .. counter
  return wrk.format("GET", table.concat(parts))
end
"""


def write_script(shape: MissShape, lists: dict[str, list[str]], folder: Path, tag: str) -> Path:
    path = folder / f"miss-{tag}-{shape.name.replace(' ', '-')}.lua"
    path.write_text(lua_script(shape, lists), encoding="utf-8")
    return path


def representative(shape: MissShape, lists: dict[str, list[str]]) -> str:
    """One fixed URL of the shape: its cached figure and the ceiling are measured on it."""
    values = {name: lists[name][len(lists[name]) // 2] for name in placeholders(shape.template)}
    return shape.template.format(**values)
