"""Benchmark of the service: refresh time and peak RSS for growing upstream sizes, and read
throughput (wrk) of each read route against a ceiling, on SQLite and on MariaDB.

    python -m bench            # full: N = 250, 10,000, 100,000; writes bench/RESULTS.md
    python -m bench --quick    # seconds: N = 250, 1,000; proves the harness works
    python -m bench.sources    # refresh time of each countries and rates source

Run from the repository's root (the bench starts `service.py` and imports `countries` and the
tests' upstream stub from there). bench/README.md says what each module measures and what each
column of the report means.
"""
