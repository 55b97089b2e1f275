"""Handlers: currencies and rates (the rates in any base, conversion, the history)."""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from countries import db, rates_refresh
from countries.api.countries import refresh_answer, refuse_early_refresh
from countries.api.structs import (
    Conversion,
    ConvertQuery,
    HistoryQuery,
    Rates,
    RatesHistory,
    RatesQuery,
)
from countries.core import (
    ATTRIBUTIONS,
    CURRENCY_CODE,
    FIRST_DAY,
    LAST_DAY,
    StoredRates,
    bad_days,
    converted,
    cross_rate,
    currency_list,
    day_codes,
    history_attribution,
    history_csv,
    history_table,
    minor_unit,
    parse_codes,
    rates_in_base,
    split_history,
    times_amount,
    unknown_codes,
)
from countries.errors import (
    ApiError,
    validation_error,
)
from countries.web import convert_or_400, json_response, prefers_csv, query_values, read_body


async def refresh_rates(request: Request) -> Response:
    """The rates alone; limited like a full refresh (REFRESH_MIN_INTERVAL counts from either)."""
    await read_body(request)  # ignored, but still bounded by MAX_BODY_BYTES
    await refuse_early_refresh(request)
    counts, timings = await rates_refresh.shared_rates_refresh(request.app.state)
    return refresh_answer("Rates refreshed successfully", counts, timings)


async def stored_rates(request: Request) -> StoredRates:
    """The rates table of the last refresh, read once while the data is unchanged; 404 before the
    first refresh (which comes before any 400, as the contract orders them)."""
    store = request.app.state.store
    stored = await request.app.state.cache.value("rates", lambda: db.select_rates(store))
    if stored is None:
        raise ApiError(404, "Rates not found")
    return stored


async def list_currencies(request: Request) -> Response:
    found = await db.select_currencies(request.app.state.store)
    if found is None:
        raise ApiError(404, "Rates not found")
    return json_response(currency_list(*found))


async def rates_as_asked(
    request: Request, values: dict[str, str], names: tuple[str, ...]
) -> tuple[StoredRates, dict[str, str]]:
    """The rates a query asks for (the stored ones, or those as of its `date`) and the problems
    of its codes `names`. A date that is not one, or after today (UTC), is 400; before the first
    stored day 404; a code the dated snapshot lacks is 400 naming that day."""
    day = values.get("date")
    if day is None:
        stored = await stored_rates(request)
        return stored, unknown_codes(values, names, stored.rates.__contains__)
    problems = bad_days(values, ("date",))
    today = request.app.state.clock().date().isoformat()
    if not problems and day > today:
        problems = {"date": f"must not be after today ({today}, UTC)"}
    if problems:
        raise validation_error(problems)
    # read once while the data is unchanged: a day is asked for in many bases, symbols, amounts
    state = request.app.state
    stored = await state.cache.value(
        ("rates on", day), lambda: db.select_rates_on(state.store, day)
    )
    if stored is None:
        raise ApiError(404, "Rates not found")
    return stored, day_codes(values, names, stored.rates, day)


async def get_rates(request: Request) -> Response:
    values = query_values(request)
    stored, problems = await rates_as_asked(request, values, ("base", "symbols"))
    query = convert_or_400(values, RatesQuery, strict=False, details=problems)
    base = query.base.upper()
    symbols = stored.rates if query.symbols is msgspec.UNSET else parse_codes(query.symbols)
    rates = rates_in_base(stored.rates, base, list(symbols))
    if query.amount is not msgspec.UNSET:
        rates = times_amount(rates, query.amount)
    return json_response(Rates(
        base, stored.updated_at, stored.refreshed_at, stored.source,
        ATTRIBUTIONS[stored.source], rates, query.amount,
    ))  # fmt: skip


async def convert(request: Request) -> Response:
    values = query_values(request)
    stored, problems = await rates_as_asked(request, values, ("from", "to"))
    query = convert_or_400(values, ConvertQuery, strict=False, details=problems)
    source, target = query.from_.upper(), query.to.upper()
    rate = cross_rate(stored.rates, source, target)
    result = converted(query.amount, rate, minor_unit(target)) if rate is not None else None
    if result is None:  # only absurd stored rates (1e300) get here
        raise validation_error({"amount": f"{source} to {target}: too large to compute"})
    return json_response(Conversion(
        source, target, query.amount, rate, result, stored.updated_at, stored.source,
        ATTRIBUTIONS[stored.source],
    ))  # fmt: skip


async def history_query(request: Request, stored: StoredRates) -> HistoryQuery:
    """The history's parameters, or 400. A code counts as known if the stored rates or any
    snapshot of the history have it (a provider may drop a currency that history still holds)."""
    values = query_values(request)
    asked = [code for name in ("base", "symbols") for code in parse_codes(values.get(name) or "")]
    others = [code for code in asked if code not in stored.rates and CURRENCY_CODE.fullmatch(code)]
    # at most as many as a valid query names: a longer list is a 400 whatever they are
    held = await db.select_history_codes(request.app.state.store, others[: db.HISTORY_CODE_SLOTS])
    known = (stored.rates.keys() | held).__contains__
    problems = unknown_codes(values, ("base", "symbols"), known) | bad_days(values, ("from", "to"))
    query = convert_or_400(values, HistoryQuery, strict=False, details=problems)
    if (
        query.from_ is not msgspec.UNSET
        and query.to is not msgspec.UNSET
        and query.from_ > query.to
    ):
        raise validation_error({"from": f"must not be after to ({query.to})"})
    return query


async def get_rates_history(request: Request) -> Response:
    store = request.app.state.store
    stored = await stored_rates(request)
    query = await history_query(request, stored)
    base, symbols = query.base.upper(), parse_codes(query.symbols)
    first = None if query.from_ is msgspec.UNSET else query.from_
    last = None if query.to is msgspec.UNSET else query.to
    codes = list(dict.fromkeys(symbols + ([] if base == "USD" else [base])))
    rows = await db.select_rate_history(store, first or FIRST_DAY, last or LAST_DAY, codes)
    days, rates = split_history(rows)
    table = history_table(days, rates, base, symbols)
    if wants_csv(request):  # the same URL answers CSV or JSON: shared caches key by Accept too
        return Response(
            history_csv(table, symbols), headers={"Vary": "Accept"}, media_type="text/csv"
        )
    # a bound left out is the first or last stored day (the other bound if none is stored;
    # the day of the stored rates if neither is given and no snapshot is stored at all)
    first = first or min(days, default=last) or stored.updated_at[:10]
    last = last or max(days, default=first)
    source, attribution = history_attribution(days, stored.source)
    history = RatesHistory(base, first, last, source, attribution, table)
    return json_response(history, headers={"Vary": "Accept"})


def wants_csv(request: Request) -> bool:
    return prefers_csv(request.headers.get("accept", ""))
