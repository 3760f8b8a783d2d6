import math
from datetime import datetime

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sarise.query import Between, BoolOp, Compare, In, IsNull, Not, QueryError, filter_table, parse

# A table checked by hand: each expected row set below was worked out on paper.
TABLE = pd.DataFrame({
    "material": ["PZT", "PZT", "BFO", "SrTiO3", None, "PZT_final"],
    "grower": ["A", "B", "A", "C", "B", None],
    "date": ["2013-05-01T10:00:00", "2014-01-01", "2015-06-30", None, "2016-02-29T23:59:59",
             "2014-12-31"],
    "scan_size_x_m": [1e-6, 5e-6, 2.5e-6, 10e-6, np.nan, 1e-6],
    "pixel_size_x_m": [1e-6 / 256, 5e-6 / 256, 2.5e-6 / 512, 10e-6 / 256, np.nan, 1e-6 / 128],
    "pixels_x": [256, 256, 512, 256, 128, 128],
    "outcome": ["ok", "failed", "ok", "ok", "failed", "ok"],
})  # fmt: skip

CASES = [
    ('material == "PZT"', [0, 1]),
    ('material != "PZT"', [2, 3, 5]),  # null matches no comparison
    ("material == 'PZT' and date >= 2014-01-01", [1]),
    (
        'material == "PZT" and date >= 2014-01-01 and scan_size_um between 1 and 5 '
        'and grower in ["A", "B"]',
        [1],
    ),
    ("scan_size_um between 1 and 5", [0, 1, 2, 5]),
    ("scan_size_um not between 1 and 5", [3]),
    ("scan_size_um > 2.5", [1, 3]),
    ("pixels_x >= 256 and not outcome == 'failed'", [0, 2, 3]),
    ("grower not in ['A']", [1, 3, 4]),
    ("grower is null or material is null", [4, 5]),
    ("grower is not null and material is not null", [0, 1, 2, 3]),
    ("material contains 'pzt'", [0, 1, 5]),
    ("material matches '^PZT$'", [0, 1]),
    ("date < 2014-01-01T00:00", [0]),
    ("date between 2014-01-01 and 2014-12-31", [1, 5]),
    ("year == 2016", [4]),
    ("pixel_size_nm < 5", [0, 2]),  # 3.9, 19.5, 4.9, 39.1, null, 7.8 nm
    ("(grower == 'A' or grower == 'C') and outcome == 'ok'", [0, 2, 3]),
    ("NOT (outcome == 'ok') OR material == 'BFO'", [1, 2, 4]),
]


@pytest.mark.parametrize(("query", "rows"), CASES)
def test_queries_against_a_hand_checked_table(query, rows):
    assert np.flatnonzero(filter_table(TABLE, query)).tolist() == rows


@pytest.mark.parametrize(("query", "message", "pos"), [
    ("material ==", "expected a value", 11),
    ('material = "PZT"', "unexpected character '='", 9),
    ("colour == 'red'", "unknown column 'colour'", 0),
    ("material == 'PZT' grower", "expected 'and', 'or' or the end", 18),
    ("grower in ['A' 'B']", "expected ',' or ']'", 15),
    ("scan_size_um between 1 5", "expected 'and' between", 23),
    ("material == \"PZT", "unterminated string", 12),
    ("(material == 'PZT'", "expected ')'", 18),
    ("material matches '['", "invalid regular expression", 17),
    ("date >= 2014-13-01", "invalid date", 8),
    ("material > 3", "holds no int values", 0),
    ("", "empty query", 0),
    ("material not == 'x'", "expected 'in' or 'between' after 'not'", 13),
])  # fmt: skip
def test_errors_point_at_the_position(query, message, pos):
    with pytest.raises(QueryError) as err:
        filter_table(TABLE, query)
    assert message in err.value.message and err.value.pos == pos
    caret = str(err.value).splitlines()[-1]
    assert caret.index("^") - 2 == pos  # the caret line sits under the query line


def test_no_eval_anywhere():
    for attack in ("__import__('os').system('true')", "material == __class__",
                   "material.__class__ == 'x'"):  # fmt: skip
        with pytest.raises(QueryError):
            filter_table(TABLE, attack)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.sampled_from(list("()[],'\"=!<>-.: aAnNdDoOrR0123456789_TeExyz")) |
               st.characters(), max_size=60))  # fmt: skip
def test_any_text_is_a_query_or_a_query_error(text):
    try:
        mask = filter_table(TABLE, text)
    except QueryError as exc:
        assert 0 <= exc.pos <= len(text)
    else:
        assert mask.dtype == bool and mask.shape == (len(TABLE),)


# -- generated queries against an independent row-by-row evaluator --------------------------
ROWS = pd.DataFrame({
    "n": [0.5, 1.0, 2.0, None, 3.5, 1.0],
    "s": ["a", "b", None, "a", "c", "ab"],
    "d": ["2014-01-01", None, "2015-06-01", "2013-12-31", "2014-01-01", "2016-01-01"],
})  # fmt: skip
VALUES = {"n": st.sampled_from([0.5, 1, 2.0, 3, -1]), "s": st.sampled_from(["a", "b", "ab", "z"]),
          "d": st.sampled_from([datetime(2014, 1, 1), datetime(2015, 1, 1), datetime(2016, 1, 1)])}  # fmt: skip


def _leaf():
    def compare(col):
        return st.builds(Compare, st.just(col), st.sampled_from(["==", "!=", "<", "<=", ">", ">="]),
                         VALUES[col])  # fmt: skip

    def member(col):
        return st.builds(In, st.just(col), st.lists(VALUES[col], min_size=1, max_size=3).map(tuple),
                         st.booleans())  # fmt: skip

    def between(col):
        return st.builds(Between, st.just(col), VALUES[col], VALUES[col], st.booleans())

    cols = st.sampled_from(["n", "s", "d"])
    return cols.flatmap(lambda c: compare(c) | member(c) | between(c) |
                        st.builds(IsNull, st.just(c), st.booleans()))  # fmt: skip


TREES = st.recursive(_leaf(), lambda kids: st.builds(Not, kids) | st.builds(
    BoolOp, st.sampled_from(["and", "or"]), st.lists(kids, min_size=2, max_size=3).map(tuple)),
    max_leaves=8)  # fmt: skip


def _cell(col, i):
    v = ROWS[col][i]
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return datetime.fromisoformat(v) if col == "d" else v


def _ref(node, i):
    """Plain Python, one row at a time (SQL null semantics)."""
    if isinstance(node, BoolOp):
        vals = [_ref(k, i) for k in node.items]
        return all(vals) if node.op == "and" else any(vals)
    if isinstance(node, Not):
        return not _ref(node.item, i)
    v = _cell(node.column, i)
    if isinstance(node, IsNull):
        return (v is not None) if node.negate else (v is None)
    if v is None:
        return False
    if isinstance(node, Compare):
        return {"==": v == node.value, "!=": v != node.value, "<": v < node.value,
                "<=": v <= node.value, ">": v > node.value, ">=": v >= node.value}[node.op]  # fmt: skip
    if isinstance(node, In):
        return (v in node.values) != node.negate
    inside = node.low <= v <= node.high
    return (v < node.low or v > node.high) if node.negate else inside


@settings(max_examples=300, deadline=None)
@given(TREES)
def test_generated_queries_print_parse_and_evaluate_like_a_reference(tree):
    text = str(tree)
    again = parse(text)
    assert str(again) == text  # canonical text round-trips
    got = filter_table(ROWS, text).tolist()
    assert got == [_ref(tree, i) for i in range(len(ROWS))], text


def test_catastrophic_patterns_run_in_linear_time_and_unsupported_ones_are_one_line_errors():
    import time

    long = pd.DataFrame({"path": ["a" * 30_000, "b", None]})
    t0 = time.perf_counter()
    got = filter_table(long, "path matches '(a+)+X$'")  # exponential in a backtracking engine
    assert not got.any() and time.perf_counter() - t0 < 5.0
    assert filter_table(long, "path matches '^a{3}'").sum() == 1
    for bad, what in (("(a)\\\\1", "invalid escape"), ("(?=x)", "invalid perl operator"),
                      ("a{1001}", "invalid repetition size")):  # fmt: skip
        with pytest.raises(QueryError, match=what) as err:
            filter_table(long, f"path matches '{bad}'")
        assert err.value.pos == 13 and "b'" not in err.value.message


def test_int64_ids_compare_exactly_and_out_of_range_integers_are_errors():
    ids = np.array([4525249593443076188, 4525249593443076189, -9136935611870451747], np.int64)
    t = pd.DataFrame({"image_id": ids})
    assert filter_table(t, "image_id in [4525249593443076188]").tolist() == [True, False, False]
    assert filter_table(t, "image_id == -9136935611870451747").tolist() == [False, False, True]
    assert filter_table(t, "image_id > 4525249593443076188").tolist() == [False, True, False]
    with pytest.raises(QueryError, match="outside the 64-bit range") as err:
        filter_table(t, "image_id == 99999999999999999999")
    assert err.value.pos == 12


def test_deep_nesting_is_a_positioned_error_not_a_recursion_crash():
    t = pd.DataFrame({"x": [1, 2]})
    assert filter_table(t, "(" * 50 + "x == 1" + ")" * 50).tolist() == [True, False]
    for text in ("(" * 10_000 + "x == 1" + ")" * 10_000, "not " * 10_000 + "x == 1"):
        with pytest.raises(QueryError, match="nested more than 100 deep") as err:
            filter_table(t, text)
        assert err.value.pos in (100, 400)


def test_filter_widgets_never_drop_rows_without_a_value():
    from sarise.viewer.app import _filters_to_query, _ms

    table = pd.DataFrame({"format": ["ibw", "ibw", "h5"], "scan_size_um": [1.0, None, 5.0],
                          "date": ["2015-01-02", None, "2016-03-04"]})  # fmt: skip
    text = _filters_to_query({"format": ["ibw"]}, (0.5, 2.0), ("2014-01-01", "2015-12-31"))
    assert filter_table(table, text).tolist() == [True, True, False]  # the undated ibw kept
    assert _ms(pd.Timestamp("1970-01-02")) == _ms(86_400_000) == 86_400_000.0
