"""``python -m benchmarks``: one command, sections side by side, sized by its options."""

from __future__ import annotations

import json

from benchmarks import harness


def test_harness_runs_sections_with_the_given_sizes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(harness.KEYS_VARIABLE, "10")  # recorded, so what main() sets is undone after the test
    out = tmp_path / "figures.json"
    assert harness.main(["--quick", "--only", "core,transports", "--n", "600", "--keys", "3",
                         "--batch-sizes", "32", "--json", str(out)]) == 0
    monkeypatch.setenv(harness.KEYS_VARIABLE, "10")  # recorded, so what main() sets is undone after the test
    result = json.loads(out.read_text())
    assert result["keys"] == 3 and set(result["sections"]) == {"core", "transports"}
    core = result["sections"]["core"]["figures"]
    assert core["mplogger"]["rows_stored"] == [600] and core["floor"]["count"] == [600]
    rows = [r for r in result["sections"]["transports"]["figures"] if r.get("kind") == "transport"]
    assert rows and {r["batch"] for r in rows} == {None, 32}
    printed = capsys.readouterr().out
    assert "=== core ===" in printed and "=== transports ===" in printed and "3 float keys" in printed
