"""``python -m benchmarks``: the core section through the one CLI, its rows verified, its table and
its JSON; ``--set`` reaching a section; a section's figures all of one type."""

from __future__ import annotations

import json

import pytest

from benchmarks import harness
from benchmarks.registry import KEYS_VARIABLE, SECTIONS, Options
from bench_toys import labels

N = 600


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv(KEYS_VARIABLE, "10")  # recorded, so what main() sets is undone afterwards
    out = tmp_path_factory.mktemp("core") / "figures.json"
    try:
        assert harness.main(["--quick", "--only", "core", "--n", str(N), "--keys", "3", "--json", str(out)]) == 0
    finally:
        mp.undo()
    return json.loads(out.read_text())


def test_every_section_is_registered():
    harness.load_sections()
    assert list(SECTIONS) == ["core", "transports", "scenarios", "peers", "store", "artifacts", "notebook"]


def test_rows_are_verified(result):
    assert result["keys"] == 3 and set(result["sections"]) == {"core"}
    notes = result["sections"]["core"]["notes"]
    assert f"verified: mplogger stored rows == N in every repeat ([{N}]); floor consumer counts [{N}]; " \
           f"mp.Queue consumer counts [{N}]" in notes
    assert "verified: mplogger history read back row by row (steps 0..N-1, last values)" in notes


def test_the_table_has_every_row_and_measure(result):
    core = result["sections"]["core"]
    figures = core["figures"]
    assert {f["section"] for f in figures} == {"core"}
    assert {f["row"] for f in figures} == {"mplogger", "floor", "mp.Queue"}
    lines = core["table"].splitlines()
    assert lines[0].split() == ["mplogger", "÷", "floor", "floor", "mp.Queue", "÷", "floor"]
    rows = labels(core["table"])
    for label in ("log() per call, all N, µs", f"log() per call, first {N}, µs", "end to end, rows/s",
                  "init() cold (spawn), ms", "init() cold (forkserver), ms", "init() of a second run, same process, ms",
                  "finish() of an empty run, ms", "import mplogger, ms", "teardown(), ms"):
        assert label in rows, label
    assert "3 float keys per row" in core["table"]


def test_set_reaches_a_section_and_bad_input_is_refused(capsys):
    assert harness._setting("notebook.seconds=6") == ("notebook", "seconds", 6)
    assert harness._setting("transports.producers=1,2") == ("transports", "producers", [1, 2])
    assert harness._setting("scenarios.memory.n=200") == ("scenarios", "memory.n", 200)
    options = Options(params={"t": {"one": "x", "two": [1, 2]}})
    assert options.listed("t", "one", None) == ["x"] and options.listed("t", "two", None) == [1, 2]
    assert options.listed("t", "three", (3,)) == (3,) and options.param("t", "one", None) == "x"
    with pytest.raises(SystemExit):
        harness.main(["--only", "nope"])
    with pytest.raises(SystemExit):
        harness.main(["--set", "noequals"])
    assert "unknown section" in capsys.readouterr().err


def test_set_of_a_section_that_does_not_exist_is_refused(capsys):
    with pytest.raises(SystemExit):
        harness.main(["--quick", "--only", "core", "--set", "bogus.x=1"])
    assert "no section 'bogus'" in capsys.readouterr().err


def test_a_section_that_failed_to_measure_makes_the_command_fail(monkeypatch, capsys):
    from benchmarks.figures import Report
    from benchmarks.registry import Section

    harness.load_sections()

    def failing(options: Options) -> Report:
        report = Report(notes=["toy: one measurement failed"], failures=["toy: its child exited with code 1"])
        report.add("toy", "a", "x", 1.0)
        return report

    monkeypatch.setitem(SECTIONS, "toy", Section("toy", "fails", failing))
    monkeypatch.setattr(harness, "load_sections", lambda: SECTIONS)
    assert harness.main(["--only", "toy"]) == 1
    captured = capsys.readouterr()
    assert "failed: toy: its child exited with code 1" in captured.err and "toy: one measurement failed" in captured.out
