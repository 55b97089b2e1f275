"""The examples check (scripts/docs_examples.py): what it lets vary, and what it catches."""

import importlib.util
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "docs_examples.py"
spec = importlib.util.spec_from_file_location("docs_examples", SCRIPT)
docs_examples = importlib.util.module_from_spec(spec)
sys.modules["docs_examples"] = docs_examples  # dataclasses look their module up there
spec.loader.exec_module(docs_examples)


def test_times_gdp_ids_etags_and_lengths_may_vary():
    shown = ['{"estimated_gdp":12.5,"last_refreshed_at":"2026-11-23T12:39:39Z"}', 'etag: "abc"']
    real = ['{"estimated_gdp":99.01,"last_refreshed_at":"2027-01-01T00:00:00Z"}', 'etag: "def"']
    assert docs_examples.answers_match(shown, real)
    assert docs_examples.answers_match(["content-length: 316"], ["content-length: 318"])


def test_a_missing_route_or_another_value_is_caught():
    shown = ['{"routes":["GET /","GET /status"]}']
    assert not docs_examples.answers_match(
        shown, ['{"routes":["GET /","GET /status","GET /rates"]}']
    )
    assert not docs_examples.answers_match(['{"population":1}'], ['{"population":2}'])
    assert not docs_examples.answers_match(["a", "b"], ["a"])


def test_an_abridged_answer_checks_its_start_end_and_count():
    shown = ['{"base":"USD","rates":{"AED":3.6725, … 3 codes in all}}']
    real = '{"base":"USD","rates":{"AED":3.6725,"EUR":0.9,"USD":1}}'
    assert docs_examples.answers_match(shown, [real])
    assert not docs_examples.answers_match(shown, ['{"base":"USD","rates":{"AED":3.6725,"USD":1}}'])
    assert not docs_examples.answers_match(shown, [real.replace("3.6725", "3.7")])
