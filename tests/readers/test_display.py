"""Notebook display: the HTML card and its charts, the one-line repr, ``plot()``, ``compare()`` and the
table of runs, on real runs and stores."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import mplogger
from mplogger._readers._display import CARD_CHARTS, Charts, format_value, run_html, run_text

from conftest import REPO, script_env

EVIL = "<script>alert(1)</script>"


def stored(root: str, run_id: str) -> "mplogger.StoredRun":
    api = mplogger.Api(root)
    run = api.run(run_id)
    run.history()  # (nothing lazy is left for after the close below)
    return run


def demo_run(root: str, **kwargs) -> "mplogger.Run":
    run = mplogger.init(dir=root, project="demo", config={"lr": 0.125, "opt": {"name": "adam"}},
                        **kwargs)
    for i in range(30):
        run.log({"loss": 1.0 / (i + 1), "acc": i / 30, "m": {"x": i}, "phase": "train"})
    run.summary["best_acc"] = 0.875
    return run


# --- the HTML card ---------------------------------------------------------------------------
def test_html_of_a_live_run_shows_what_is_known_now(root):
    run = demo_run(root, group="sweep-1")
    page = run._repr_html_()
    for text in (run.name, run.id, "demo", "sweep-1", "running", root, run.dir,
                 "lr", "0.125", "opt.name", "adam",      # config, nested keys dotted
                 "best_acc", "0.875",                     # summary set by hand
                 "latest (step 29)", "m.x", "train",      # the latest row
                 "<span style=\"opacity:.7\">rows</span> 30"):
        assert text in page, text
    assert "<script" not in page and "javascript:" not in page
    # Displaying changed nothing: the run goes on and its steps carry on.
    run.log({"loss": 0.0})
    run.finish()
    assert [r["_step"] for r in stored(root, run.id).history()][-2:] == [29, 30]


def test_html_of_a_finished_run_and_of_the_stored_run(root):
    run = demo_run(root)
    run.finish()
    for page in (run._repr_html_(), stored(root, run.id)._repr_html_()):
        for text in (run.name, run.id, "finished", "#1a7f37", "lr", "best_acc", "0.875",
                     "latest (step 29)", "ran "):
            assert text in page, text
        assert "mplogger-" in page and "<script" not in page


def test_html_of_a_failed_run_shows_its_state_and_exit_code(root):
    with pytest.raises(RuntimeError):
        with mplogger.init(dir=root) as run:
            run.log({"a": 1})
            raise RuntimeError("boom")
    page = stored(root, run.id)._repr_html_()
    assert "failed" in page and "#cf222e" in page and "exit code 1" in page
    assert "failed" in run._repr_html_()


def test_html_escapes_every_user_string(root):
    run = mplogger.init(dir=root, project=EVIL, name=EVIL, group=EVIL, notes=EVIL, tags=[EVIL],
                        config={EVIL: EVIL, "nested": {EVIL: EVIL}})
    run.log({"s": EVIL, "n": {"k": EVIL}})
    run.summary["v"] = EVIL
    for page in (run._repr_html_(), stored(root, run.id)._repr_html_()):
        assert "<script" not in page and "alert(1)</" not in page
        assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 8
    run.finish()
    page = run._repr_html_()
    assert "<script" not in page and "&lt;script&gt;" in page


def test_html_values_nan_inf_nested_and_long(root):
    run = mplogger.init(dir=root, config={"text": "y" * 500, "deep": {"a": {"b": [1, 2.5]}}})
    run.log({"nan": float("nan"), "inf": float("inf"), "ninf": float("-inf"), "none": None})
    run.summary["flag"] = True
    run.finish()
    page = stored(root, run.id)._repr_html_()
    for text in (">NaN<", ">inf<", ">-inf<", ">None<", ">True<", "deep.a.b", "[1, 2.5]", "\u2026"):
        assert text in page, text
    assert "y" * 200 not in page.replace('title="' + "y" * 500, "")  # the cell is truncated
    assert f'title="{"y" * 500}"' in page  # the full value is on hover


def test_html_without_rows_or_config(root):
    run = mplogger.init(dir=root)
    page = run._repr_html_()
    assert "(empty)" in page and run.id in page and "latest" not in page
    run.finish()


def test_html_of_a_run_whose_store_is_gone_falls_back_to_what_is_known(root):
    run = demo_run(root)
    run.finish()
    shutil.rmtree(root)
    page = run._repr_html_()  # must not raise
    for text in (run.id, run.name, "finished", "lr", "best_acc", "could not read the store"):
        assert text in page, text


def test_html_of_a_run_whose_manager_was_killed_does_not_raise(root):
    run = demo_run(root)
    run.flush()
    manager = mplogger._user._session.current().client.process
    os.kill(manager.pid, signal.SIGKILL)
    manager.join(10)
    page = run._repr_html_()
    for text in (run.id, run.name, "lr", "flush failed", "ManagerError", "SIGKILL", "m.x"):
        assert text in page, text  # the rows stored before the kill are still shown


def test_run_html_of_a_bare_view_does_not_raise():
    page = run_html({"id": "abcd1234"})
    assert "abcd1234" in page and "unknown" in page
    page = run_html({"id": "x", "state": "crashed", "config": {"a": {}}, "summary": None,
                     "created": "not a time", "latest": {"_step": 3, "_runtime": 1.0}})
    assert "crashed" in page and "#bc4c00" in page and "latest (step 3)" in page


def test_format_value():
    assert format_value(float("nan")) == "NaN"
    assert format_value(float("-inf")) == "-inf"
    assert format_value(1 / 3) == "0.333333"
    assert format_value("z" * 100) == "z" * 79 + "\u2026"
    assert format_value([1, float("inf")]) == "[1, inf]"


# --- the one-line text ------------------------------------------------------------------------
def test_repr_text_is_one_short_line_with_the_id(root):
    run = demo_run(root)
    run.finish()
    text = repr(stored(root, run.id))
    assert text == f"<mplogger.StoredRun {run.id} {run.name!r} project='demo' state=finished rows=30>"
    assert run_text({"id": "abcd1234", "name": "brisk-river-3", "project": "demo",
                     "state": "running", "rows": 120}) == \
        "<mplogger.Run abcd1234 'brisk-river-3' project='demo' state=running rows=120>"
    long = run_text({"id": "abcd1234", "name": "n" * 500, "project": "p" * 500})
    assert "\n" not in long and len(long) < 140 and "abcd1234" in long


# --- plots ----------------------------------------------------------------------------------
def test_plot_of_a_live_run_has_one_axes_per_numeric_key(root):
    pytest.importorskip("matplotlib")
    run = demo_run(root)
    run.log({"acc": 1.0, "flag": True})  # bools are not plotted unless asked for
    fig = run.plot().figure()  # flushes first: every row logged so far is in it
    try:
        assert [ax.get_title() for ax in fig.axes] == ["loss", "acc", "m.x"]
        points = {ax.get_title(): list(ax.lines[0].get_xdata()) for ax in fig.axes}
        assert points["loss"] == list(range(30)) and points["m.x"] == list(range(30))
        assert points["acc"] == list(range(31))
        assert run.id in fig.get_suptitle()
    finally:
        import matplotlib.pyplot as plt
        plt.close(fig)
    run.finish()


def test_plot_of_chosen_keys_of_a_stored_run(root):
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt
    run = mplogger.init(dir=root)
    for i in range(40):
        run.log({"every": i, "odd": {"v": float(i)}} if i % 2 else {"every": i})
    run.finish()
    fig = stored(root, run.id).plot(keys=["odd.v"]).figure()
    try:
        (ax,) = fig.axes
        assert list(ax.lines[0].get_xdata()) == list(range(1, 40, 2))
        assert list(ax.lines[0].get_ydata()) == [float(i) for i in range(1, 40, 2)]
    finally:
        plt.close(fig)
    fig = run.plot(keys=["every", "odd.v"]).figure()  # a finished live run reads the store
    try:
        assert [len(ax.lines[0].get_xdata()) for ax in fig.axes] == [40, 20]
    finally:
        plt.close(fig)


def test_plot_without_numeric_data_names_the_keys(root):
    pytest.importorskip("matplotlib")
    run = mplogger.init(dir=root)
    run.log({"phase": "train", "x": 1})
    with pytest.raises(ValueError, match=r"'phase'.*numeric keys: \['x'\]"):
        run.plot(keys=["phase"])
    with pytest.raises(ValueError, match="'nope'"):
        run.plot(keys=["x", "nope"])
    run.finish()
    words = mplogger.init(dir=root, reinit="create_new")
    words.log({"s": "text", "flag": True})
    with pytest.raises(ValueError, match="nothing to plot: no numeric metrics"):
        words.plot()
    with pytest.raises(TypeError, match="keys must be"):
        words.plot(keys=3)
    words.finish()


def test_plot_without_matplotlib_draws_svg_and_only_figure_needs_it(root, without):
    run = mplogger.init(dir=root)
    run.log({"a": 1, "b": 2.5})
    run.finish()
    body = """
        import mplogger
        live = mplogger.init(dir=sys.argv[1])
        live.log({"c": 3})
        for plot in (mplogger.Api(sys.argv[1]).run(sys.argv[2]).plot, live.plot):
            charts = plot()
            print("SVG", charts._repr_html_().count("<svg"))
            try:
                charts.figure()
            except ImportError as exc:
                print("ERROR", exc)
    """
    result = without("matplotlib", body, root, run.id)
    assert result.stdout.split("\n")[0::2] == ["SVG 2", "SVG 1", ""], result.stdout + result.stderr
    assert result.stdout.count("ERROR Charts.figure() needs matplotlib") == 2, result.stderr
    assert "mplogger[plot]" in result.stdout


@pytest.mark.parametrize("chosen, expected", [(None, "agg"), ("pdf", "pdf"), ("svg", "svg")])
def test_plot_picks_agg_only_when_no_backend_was_chosen(script, chosen, expected):
    pytest.importorskip("matplotlib")
    body = """
        import matplotlib
        import tempfile, mplogger
        run = mplogger.init(dir=tempfile.mkdtemp())
        run.log({"a": 1.0})
        run.log({"a": 2.0})
        run.plot().figure()
        print("BACKEND", matplotlib.get_backend().lower())
    """
    env = {k: v for k, v in script_env().items() if k != "MPLBACKEND"}
    if chosen:
        env["MPLBACKEND"] = chosen
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    result = subprocess.run([sys.executable, str(script(body))], capture_output=True, text=True,
                            timeout=60, env=env)
    assert f"BACKEND {expected}" in result.stdout, result.stderr


# --- in a real Jupyter kernel ------------------------------------------------------------------
def test_in_a_notebook_a_run_displays_as_html_and_plots_inline(tmp_path: Path, root):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("matplotlib")
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    spec = tmp_path / "kernels" / "mplogger-display"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "mplogger display test", "language": "python",
    }))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MPLOGGER_") and k != "MPLBACKEND"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    (tmp_path / "ipython").mkdir()
    env["IPYTHONDIR"] = str(tmp_path / "ipython")
    env.pop("JPY_PARENT_PID", None)
    sources = [
        f"import matplotlib, mplogger\nrun = mplogger.init(dir={root!r}, config={{'lr': 0.5}})\n"
        "for i in range(10):\n    run.log({'a': i, 'b': i * i})",
        "run",
        "run.plot().figure()",
        "print(matplotlib.get_backend())",
        "run.finish()\nmplogger.Api(run.root).run(run.id)",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    km = KernelManager(kernel_name="mplogger-display",
                       kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")]))
    client = nbclient.NotebookClient(nb, km=km, timeout=60, startup_timeout=60,
                                     kernel_name="mplogger-display")
    with client.setup_kernel(env=env):
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
    live, plot, backend, done = (nb.cells[i].outputs for i in range(1, 5))
    (live_html,) = [o["data"]["text/html"] for o in live if "text/html" in o.get("data", {})]
    # the card shown while the run was live was updated in place at finish() (its display id)
    assert "finished" in live_html and "lr" in live_html and "latest (step 9)" in live_html
    assert live_html.count("<svg") == 2
    assert [o for o in plot if "image/png" in o.get("data", {})]  # shown by the inline backend
    assert "inline" in "".join(o.get("text", "") for o in backend)  # Agg was not forced
    (done_html,) = [o["data"]["text/html"] for o in done if "text/html" in o.get("data", {})]
    assert "finished" in done_html and "rows</span> 10" in done_html


# --- charts on the card, plot(), compare() and the table of runs -----------------------------
def card_dom(html: str):
    from test_report import parse

    return parse(html)


def test_the_card_charts_each_numeric_metric_with_system_folded(root):
    from test_report import figures, series_points

    run = demo_run(root)  # loss, acc, m.x are numbers; phase is text
    run.finish()
    dom = card_dom(stored(root, run.id)._repr_html_())
    charts = figures(dom)
    assert list(charts) == ["loss", "acc", "m.x"]
    assert [series_points(fig.find("g", cls="series")) for fig in charts.values()] == [30, 30, 30]
    assert all(not fig.find_all("ul", cls="legend") for fig in charts.values())  # one run: no legend
    assert "more key" not in dom.text()
    system = [d for d in dom.find_all("details") if d.find("summary").text().startswith("system")]
    for folded in system:  # system metrics, when sampled, are folded away (closed)
        assert "open" not in folded.attrs


def test_the_card_charts_the_first_metrics_and_says_how_to_see_the_rest(root):
    from test_report import figures

    run = mplogger.init(dir=root)
    for i in range(5):
        run.log({f"k{j:02d}": i * j for j in range(CARD_CHARTS + 4)})
    dom = card_dom(run._repr_html_())
    assert list(figures(dom)) == [f"k{j:02d}" for j in range(CARD_CHARTS)]
    assert "4 more keys not charted here" in dom.text() and "run.plot()" in dom.text()
    assert len(run.plot().metrics) == CARD_CHARTS + 4  # plot() charts them all
    run.finish()


def test_the_card_of_a_long_run_is_read_from_the_block_summaries(root):
    from test_report import figures, series_points

    run = mplogger.init(dir=root)
    rows = 200 * 1024  # more blocks than a card's chart keeps points
    for i in range(rows):
        run.log({"y": float(i % 1000)})
    run.finish()
    chart = figures(card_dom(stored(root, run.id)._repr_html_()))["y"]
    assert f"downsampled from {rows:,} points" in chart.text()
    assert series_points(chart.find("g", cls="series")) <= 4 * 200
    labels = [t.text() for t in chart.find("g", cls="labels").find_all("text")]
    assert "1000" in labels or "1k" in labels  # the maximum survived


def test_card_plot_and_runs_escape_every_stored_text(root):
    evil_key = '<img src=x onerror="alert(1)">'
    run = mplogger.init(dir=root, name=EVIL, tags=[EVIL], notes=EVIL, config={"c": EVIL})
    run.log({evil_key: 1.0, "ok": 2.0})
    run.log({evil_key: 2.0, "ok": 3.0})
    run.finish()
    api = mplogger.Api(root)
    for html in (api.run(run.id)._repr_html_(), api.run(run.id).plot()._repr_html_(), api.runs()._repr_html_(),
                 mplogger.compare([run.id], dir=root)._repr_html_()):
        assert "<script" not in html and "<img" not in html
        assert "&lt;script&gt;" in html or "&lt;img" in html
        for fetch in ("src=", "href=", "url(", "@import", "<link", "<iframe"):
            assert fetch not in html.replace("&quot;", '"').replace('src=x onerror', ''), fetch


def test_runs_display_as_a_table_with_overlaid_charts_of_shared_metrics(root):
    from test_report import figures

    ids = []
    for lr in (0.1, 0.2):
        run = mplogger.init(dir=root, project="cmp", config={"lr": lr}, reinit="create_new")
        for i in range(20):
            run.log({"loss": lr / (i + 1), "only_" + str(lr): i})
        run.finish()
        ids.append(run.id)
    dom = card_dom(mplogger.Api(root).runs(project="cmp")._repr_html_())
    charts = figures(dom)
    assert list(charts) == ["loss"]  # a metric of one run only is not a comparison
    assert sorted(g.attrs["data-run"] for g in charts["loss"].find_all("g", cls="series")) == sorted(ids)
    table = dom.find("table").text()
    assert all(run_id in table for run_id in ids) and "2 runs" in dom.text()


def test_compare_overlays_ids_stored_and_live_runs(root):
    first = mplogger.init(dir=root, reinit="create_new")
    for i in range(10):
        first.log({"loss": 1.0 / (i + 1), "acc": i})
    first.finish()
    live = mplogger.init(dir=root, reinit="create_new")
    for i in range(7):
        live.log({"loss": 2.0 / (i + 1)})  # not flushed yet: compare() flushes a live run
    charts = mplogger.compare([first.id, live], keys=["loss"], dir=root)
    assert isinstance(charts, Charts) and charts.metrics == ["loss"]
    by_run = {charts.runs[index].id: series.count for index, series in charts._series.metrics["loss"].items()}
    assert by_run == {first.id: 10, live.id: 7}
    assert charts._repr_html_().count("<svg") == 1
    everything = mplogger.compare([first.id, mplogger.Api(root).run(live.id)], dir=root)
    assert everything.metrics == ["loss", "acc"]
    with pytest.raises(TypeError, match="compare\\(\\) takes run ids"):
        mplogger.compare([first.id, 42], dir=root)
    with pytest.raises(ValueError, match="'nope'"):
        mplogger.compare([first.id], keys=["nope"], dir=root)
    live.finish()


def test_a_damaged_history_leaves_the_table_of_runs_and_the_card_readable(root):
    import sqlite3

    ids = []
    for name in ("ok", "damaged"):
        run = mplogger.init(dir=root, name=name, reinit="create_new")
        for i in range(5):
            run.log({"loss": 1.0 / (i + 1)})
        run.finish()
        ids.append(run.id)
    with sqlite3.connect(os.path.join(root, "mplogger.db")) as conn:
        conn.execute("UPDATE history_columns SET vals = 'not json[' WHERE run_id = ?", (ids[1],))
    api = mplogger.Api(root)
    table = api.runs()._repr_html_()
    assert ids[0] in table and ids[1] in table and "charts: ValueError" in table
    card = api.run(ids[1])._repr_html_()
    assert "charts: ValueError" in card and ids[1] in card


def test_plot_of_no_keys_is_refused(root):
    run = mplogger.init(dir=root)
    run.log({"a": 1})
    with pytest.raises(ValueError, match="keys is empty"):
        run.plot(keys=[])
    run.finish()


def test_a_deeply_nested_wide_value_is_shown_short():
    wide = 0
    for _ in range(6):  # 80**6 leaves: formatting each would never end
        wide = [wide] * 80
    text = format_value({"a": wide, "b": {"c": wide}})
    assert len(text) <= 80 and text.startswith("{a: [[[")
