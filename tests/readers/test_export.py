"""Tests for ``mplogger._readers._export``: a run's history as CSV, JSON Lines or Parquet, complete."""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import uuid

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import mplogger
from mplogger._readers._export import write_history
from mplogger._shared._values import flatten

from conftest import same

KEYS = st.text(alphabet="abcxyz_", min_size=1, max_size=4).filter(lambda k: not k.startswith("_"))
SCALARS = st.one_of(st.integers(-2**53, 2**53), st.floats(), st.booleans(), st.text(max_size=8))
ROWS = st.lists(st.dictionaries(KEYS, st.one_of(SCALARS, st.dictionaries(KEYS, SCALARS, max_size=3)),
                                min_size=1, max_size=4), min_size=1, max_size=20)


def _logged(root: str, rows: list) -> "mplogger.StoredRun":
    run = mplogger.init(dir=root, reinit="create_new")
    for row in rows:
        run.log(row)
    run.finish()
    return mplogger.Api(root).run(run.id)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=ROWS)
def test_jsonl_gives_back_every_row_as_logged(root, rows):
    stored = _logged(os.path.join(root, uuid.uuid4().hex), rows)
    path = os.path.join(stored.dir, "h.jsonl")
    assert write_history(stored, path, "jsonl") == len(rows)
    with open(path, encoding="utf-8") as stream:
        back = [json.loads(line) for line in stream]
    assert [r["_step"] for r in back] == list(range(len(rows)))
    for logged, read in zip(rows, back):
        assert same({k: v for k, v in read.items() if not k.startswith("_")}, logged), (logged, read)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=ROWS)
def test_csv_has_a_column_per_flattened_key_and_every_value(root, rows):
    stored = _logged(os.path.join(root, uuid.uuid4().hex), rows)
    path = os.path.join(stored.dir, "h.csv")
    if sys.version_info < (3, 11) and "\\u0000" in json.dumps(rows):  # its csv module cannot write NUL
        with pytest.raises(ValueError, match="JSON Lines"):
            write_history(stored, path, "csv")
        assert not os.path.exists(path)
        return
    write_history(stored, path, "csv")
    with open(path, newline="", encoding="utf-8") as stream:
        back = list(csv.DictReader(stream))
    assert len(back) == len(rows)
    for logged, read in zip(rows, back):
        flat = flatten(logged)
        for key, cell in read.items():
            if key.startswith("_"):
                continue
            if key not in flat or (isinstance(flat[key], dict) and not flat[key]):
                assert cell in ("", "{}"), (key, cell)
            elif isinstance(flat[key], float) and math.isnan(flat[key]):
                assert math.isnan(float(cell))
            elif isinstance(flat[key], (bool, str, int)):
                assert cell == str(flat[key])
            else:
                assert float(cell) == flat[key]


def test_a_failed_export_leaves_no_file(root, tmp_path):
    stored = _logged(root, [{"x": 1}])
    target = tmp_path / "missing-folder" / "h.csv"
    with pytest.raises(FileNotFoundError):
        write_history(stored, str(target), "csv")
    assert not target.parent.exists()
    with pytest.raises(ValueError, match="unknown format 'xls'; formats are csv, jsonl, parquet"):
        write_history(stored, str(tmp_path / "h.xls"), "xls")
    assert os.listdir(tmp_path) == ["mplogger-runs"]


WITHOUT_PYARROW = """
import mplogger
from mplogger._readers._export import write_history
try:
    write_history(mplogger.Api(sys.argv[1]).run(sys.argv[2]), sys.argv[3], "parquet")
except ImportError as exc:
    print("ImportError:", exc)
"""


def test_parquet_without_pyarrow_names_the_extra(root, tmp_path, without):
    stored = _logged(root, [{"x": 1}])
    target = tmp_path / "h.parquet"
    done = without("pyarrow", WITHOUT_PYARROW, root, stored.id, str(target))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ("ImportError: --format parquet needs pandas and pyarrow (pyarrow is missing): "
                                   "pip install 'mplogger[parquet]'")
    assert not target.exists()


def test_a_nul_character_is_exported_exactly_or_refused_clearly(root, tmp_path):
    """Python 3.11+'s csv writes NUL; 3.10's cannot, and the export then says what to use instead."""
    stored = _logged(root, [{"a": "x\x00y"}, {"a": "plain"}])
    target = tmp_path / "h.csv"
    if sys.version_info < (3, 11):
        with pytest.raises(ValueError, match="JSON Lines"):
            write_history(stored, str(target), "csv")
        assert not target.exists()
    else:
        assert write_history(stored, str(target), "csv") == 2
        with open(target, newline="", encoding="utf-8") as stream:
            assert [row["a"] for row in csv.DictReader(stream)] == ["x\x00y", "plain"]
