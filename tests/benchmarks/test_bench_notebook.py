"""The notebook benchmark, small: a loop in a real Jupyter kernel with and without a live run card.
Every step logged is stored, the live card's updates arrive during the loop (none without a card),
and the table names every figure.

No time (or any other figure) is compared with a target here.
"""

from __future__ import annotations

import json

import pytest

from benchmarks import bench_notebook

pytest.importorskip("ipykernel")
pytest.importorskip("jupyter_client")

#: the first live update arrives ~1.5 s after the card is displayed (the renderer's first look
#: is a second after it starts), so the loop is a little longer than that
SECONDS = 4.0


@pytest.mark.timeout(300)
def test_a_live_card_updates_during_the_loop_and_every_step_is_stored():
    result = bench_notebook.collect(repeats=1, seconds=SECONDS)
    samples = result["samples"]
    assert {name: len(runs) for name, runs in samples.items()} == {"no card": 1, "live card": 1}
    for name, (run,) in samples.items():
        assert run["scenario"] == name and run["state"] == "finished", name
        assert run["steps"] > 0 and run["rows_stored"] == run["steps"], name
        assert run["loop_s"] >= SECONDS, name
        assert result["rows"][name] == {"logged": run["steps"], "stored": run["steps"]}
    (plain,), (live,) = samples["no card"], samples["live card"]
    assert plain["display_id"] is None and plain["updates"] == 0 and plain["finish_updates"] == 0
    assert live["display_id"] and live["updates"] > 0 and live["other_updates"] == 0
    assert len(live["update_at_s"]) == live["updates"]
    assert live["finish_updates"] == 1  # finish() draws the card a last time
    assert plain["k"] == live["k"]  # the same work per step in both kernels
    assert result["verified"] is True

    table = "\n".join(bench_notebook.render(result))
    for label in ("steps/s", "step median, µs", "step p99, µs", "step p99.9, µs", "step worst, ms",
                  "card updates during the loop", "rows stored / steps logged", "no card", "live card",
                  "live / no card"):
        assert label in table, label
    (updates_line,) = [line for line in table.splitlines() if line.startswith("card updates during the loop")]
    assert updates_line.split()[5:7] == ["0", str(live["updates"])]
    json.dumps(result, allow_nan=False)  # what --json writes
