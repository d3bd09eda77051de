"""The HTML report: charts, tables, escaping, downsampling, gaps, and how Chromium renders it.

Runs are real (real manager, real SQLite); the HTML is parsed with the stdlib ``html.parser``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

import pytest

import mplogger
from mplogger._readers._report import PALETTE, render_report, write_report
from mplogger._shared._platform import system_metrics_unavailable

from conftest import wait_for

VOID = {"meta", "br", "img", "input", "link", "hr", "wbr", "source"}


# --- a small DOM from html.parser --------------------------------------------------------------
class Node:
    def __init__(self, tag: str, attrs: Dict[str, Optional[str]], parent: Optional["Node"]) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: List["Node"] = []
        self.texts: List[str] = []

    @property
    def classes(self) -> List[str]:
        return (self.attrs.get("class") or "").split()

    def walk(self) -> Iterator["Node"]:
        yield self
        for child in self.children:
            yield from child.walk()

    def find_all(self, tag: Optional[str] = None, cls: Optional[str] = None, **attrs: str) -> List["Node"]:
        return [node for node in self.walk() if node is not self
                and (tag is None or node.tag == tag) and (cls is None or cls in node.classes)
                and all(node.attrs.get(key.replace("_", "-")) == value for key, value in attrs.items())]

    def find(self, tag: Optional[str] = None, cls: Optional[str] = None, **attrs: str) -> "Node":
        found = self.find_all(tag, cls, **attrs)
        assert found, f"no <{tag} class={cls} {attrs}> under <{self.tag}>"
        return found[0]

    def text(self) -> str:
        return "".join(self.texts) + "".join(child.text() for child in self.children)


class Dom(HTMLParser):
    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.root = self.current = Node("#root", {}, None)
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list) -> None:
        node = Node(tag, dict(attrs), self.current)
        self.current.children.append(node)
        if tag not in VOID:
            self.current = node

    def handle_startendtag(self, tag: str, attrs: list) -> None:
        self.current.children.append(Node(tag, dict(attrs), self.current))

    def handle_endtag(self, tag: str) -> None:
        node = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.current = node.parent

    def handle_data(self, data: str) -> None:
        self.current.texts.append(data)


def parse(text: str) -> Node:
    return Dom(text).root


# --- helpers -------------------------------------------------------------------------------------
def make_run(root: str, name: str, rows: Sequence[dict], config: Optional[dict] = None,
             summary: Optional[dict] = None, **kwargs) -> str:
    run = mplogger.init(dir=root, project="rep", name=name, config=config or {}, reinit="create_new", **kwargs)
    for row in rows:
        run.log(row)
    for key, value in (summary or {}).items():
        run.summary[key] = value
    run.finish()
    return run.id


def stored(root: str, *ids: str) -> list:
    api = mplogger.Api(root)
    return [api.run(run_id) for run_id in ids]


def figures(dom: Node) -> Dict[str, Node]:
    """Chart cards by metric name."""
    return {fig.find("svg").attrs["data-metric"]: fig for fig in dom.find_all("figure", cls="chart")}


def path_points(d: str) -> List[List[tuple]]:
    """The subpaths of an SVG path as lists of (x, y)."""
    out = []
    for sub in re.findall(r"M[^M]*", d):
        numbers = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", sub)]
        out.append(list(zip(numbers[0::2], numbers[1::2])))
    return out


def series_points(group: Node) -> int:
    """Points a series draws: path vertices plus lone dots."""
    paths = group.find_all("path")
    vertices = sum(len(sub) for p in paths for sub in path_points(p.attrs["d"]))
    return vertices + len(group.find_all("circle"))


def report_data(dom: Node) -> dict:
    return json.loads(dom.find("script", id="report-data").text())


def table_rows(table: Node) -> Dict[str, Node]:
    """Rows of a key/value table by key (the header row left out)."""
    rows = table.find_all("tr")[1:]
    return {row.find("th").text(): row for row in rows}


def section(dom: Node, title: str) -> Node:
    for node in dom.find_all("section"):
        if node.find("h2").texts and node.find("h2").texts[0] == title:
            return node
    raise AssertionError(f"no section {title!r}")


def is_nice(ticks: List[float]) -> bool:
    """Evenly spaced by 1, 2 or 5 times a power of ten."""
    steps = {round(b - a, 12) for a, b in zip(ticks, ticks[1:])}
    if len(ticks) < 3 or len(steps) != 1:
        return False
    step = steps.pop()
    mantissa = step / 10 ** math.floor(math.log10(step))
    return any(math.isclose(mantissa, m) for m in (1, 2, 5))


def hex_rgb(colour: str) -> tuple:
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))


@pytest.fixture
def two_runs(root: str) -> list:
    a = make_run(root, "alpha", [{"loss": 1.0 / (i + 1), "acc": i / 10, "train": {"x": i}, "flag": True,
                                  "note": "text"} for i in range(10)],
                 config={"lr": 0.1, "batch": 32, "opt": {"name": "sgd"}}, summary={"best": 0.9}, tags=["t1"])
    b = make_run(root, "beta", [{"loss": 2.0 / (i + 1)} for i in range(5)],
                 config={"lr": 0.01, "batch": 32, "opt": {"name": "sgd"}}, summary={"best": 0.5})
    return stored(root, a, b)


# --- content ---------------------------------------------------------------------------------
def test_one_chart_per_metric_with_a_line_per_run(two_runs):
    alpha, beta = two_runs
    dom = parse(render_report(two_runs, title="My report"))
    charts = figures(dom)
    assert list(charts) == ["loss", "acc", "train.x"]  # bools, strings and _keys are not charts
    loss = charts["loss"].find_all("g", cls="series")
    assert [g.attrs["data-run"] for g in loss] == [alpha.id, beta.id]
    assert [g.attrs["stroke"] for g in loss] == [PALETTE[0], PALETTE[1]]
    assert [series_points(g) for g in loss] == [10, 5]
    assert [g.attrs["data-run"] for g in charts["acc"].find_all("g", cls="series")] == [alpha.id]
    legend = [li.text() for li in charts["loss"].find("ul", cls="legend").find_all("li")]
    assert legend == ["alpha", "beta"]
    assert "downsampled" not in charts["loss"].text()
    y_ticks = [float(t.text()) for t in charts["acc"].find_all("text") if t.attrs.get("text-anchor") == "end"]
    assert y_ticks[0] <= 0 and y_ticks[-1] >= 0.9 and is_nice(y_ticks)
    x_ticks = [float(t.text()) for t in charts["acc"].find_all("text") if t.attrs.get("text-anchor") == "middle"]
    assert x_ticks[0] == 0 and is_nice(x_ticks) and all(x.is_integer() for x in x_ticks)
    assert dom.find("h1").text() == "My report"
    assert "2 runs" in dom.find("p", cls="meta").text()


def test_runs_table(two_runs):
    alpha, beta = two_runs
    dom = parse(render_report(two_runs))
    rows = section(dom, "Runs").find_all("tr")[1:]
    texts = [[td.text() for td in row.find_all("td")] for row in rows]
    assert [t[1:3] for t in texts] == [[alpha.id, "alpha"], [beta.id, "beta"]]
    assert [t[5] for t in texts] == ["finished", "finished"]
    assert [t[8] for t in texts] == ["10", "5"]
    assert texts[0][9] == "t1"
    swatches = [row.find("i", cls="sw").attrs["style"] for row in rows]
    assert swatches == [f"background:{PALETTE[0]}", f"background:{PALETTE[1]}"]


def test_config_and_summary_tables_highlight_differences(two_runs):
    dom = parse(render_report(two_runs))
    config = table_rows(section(dom, "Config").find("table"))
    assert list(config) == ["batch", "lr", "opt.name"]
    assert [td.text() for td in config["lr"].find_all("td")] == ["0.1", "0.01"]
    assert "diff" in config["lr"].classes
    assert "diff" not in config["batch"].classes and "diff" not in config["opt.name"].classes
    summary = table_rows(section(dom, "Summary").find("table"))
    assert [td.text() for td in summary["best"].find_all("td")] == ["0.9", "0.5"]
    assert [td.text() for td in summary["acc"].find_all("td")] == ["0.9", "\u2013"]  # beta never logged acc
    assert "diff" in summary["acc"].classes


def test_long_values_are_truncated_with_the_full_text_as_tooltip(root):
    run_id = make_run(root, "long", [{"x": 1}], config={"path": "p" * 300})
    dom = parse(render_report(stored(root, run_id)))
    cell = table_rows(section(dom, "Config").find("table"))["path"].find("td")
    assert cell.text().endswith("\u2026") and len(cell.text()) < 60
    assert cell.find("span").attrs["title"] == "p" * 300


def test_hostile_names_and_values_are_escaped(root):
    evil = "<script>alert(1)</script>"
    run_id = make_run(root, "</script><script>alert(2)</script>", [{evil: 1.0}, {evil: 2.0}],
                      config={"<b>key": '<img src=x onerror="alert(3)">'}, summary={"s": "\"'><svg onload=alert(4)>"},
                      tags=["<i>tag"])
    text = render_report(stored(root, run_id), title="<title>t")
    dom = parse(text)
    assert [s.attrs.get("type") for s in dom.find_all("script")] == ["application/json", None]
    assert not dom.find_all("img") and not dom.find_all("b") and not dom.find_all("title")[1:]
    assert not [n for n in dom.walk() if any(key.startswith("on") for key in n.attrs)]
    assert list(figures(dom)) == [evil]
    assert dom.find("figcaption").find("span", cls="metric").text() == evil
    data = report_data(dom)
    assert data["runs"][0]["n"] == "</script><script>alert(2)</script>"
    script = dom.find_all("script")[1].text()
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    csp = dom.find("meta", http_equiv="Content-Security-Policy").attrs["content"]
    assert f"script-src 'sha256-{digest}'" in csp and "default-src 'none'" in csp


def test_no_external_urls(two_runs):
    text = render_report(two_runs)
    dom = parse(text)
    for node in dom.walk():
        for key in ("src", "href", "action", "xlink:href"):
            assert key not in node.attrs, f"<{node.tag} {key}=...>"
    assert not re.search(r"https?:|//[a-z0-9]", text, re.I)
    assert "url(" not in text and "@import" not in text and not dom.find_all("link")


def test_downsampling_keeps_extremes_and_counts_progress(root):
    n = 20_000

    def value(i: int) -> float:
        return {777: 5000.0, 12_345: -1000.0}.get(i, math.sin(i / 300) * 10)

    run_id = make_run(root, "long", [{"y": value(i), "z": i % 7} for i in range(n)])
    [run] = stored(root, run_id)
    assert run.rows == n
    calls: List[int] = []
    dom = parse(render_report([run], max_points=500, progress=calls.append))
    assert sum(calls) == n and all(c > 0 for c in calls)
    chart = figures(dom)["y"]
    assert "downsampled from 20,000 points" in chart.find("figcaption").text()
    assert 100 < series_points(chart.find("g", cls="series")) <= 500
    [series] = report_data(dom)["charts"][0]["s"]
    ys = series[1][1::2]
    xs = series[1][0::2]
    assert len(ys) <= 500 and min(ys) == -1000.0 and max(ys) == 5000.0
    assert xs == sorted(xs) and xs[-1] >= n - n // 250 and xs[0] <= n // 250
    assert series_points(figures(dom)["z"].find("g", cls="series")) <= 500


def test_short_histories_are_not_downsampled(root):
    run_id = make_run(root, "short", [{"y": float(i)} for i in range(300)])
    dom = parse(render_report(stored(root, run_id), max_points=300))
    chart = figures(dom)["y"]
    assert series_points(chart.find("g", cls="series")) == 300 and "downsampled" not in chart.text()


def test_progress_counts_every_row_of_every_run(root):
    a = make_run(root, "a", [{"y": i} for i in range(2500)])
    b = make_run(root, "b", [{"y": i} for i in range(30)])
    runs = stored(root, a, b)
    calls: List[int] = []
    render_report(runs, progress=calls.append)
    assert sum(calls) == sum(run.rows for run in runs) == 2530


def test_nan_and_infinity_break_the_line(root):
    values = [1.0, 2.0, math.nan, 4.0, math.inf, 6.0, 7.0, 8.0, -math.inf]
    run_id = make_run(root, "gaps", [{"y": v} for v in values])
    dom = parse(render_report(stored(root, run_id)))
    group = figures(dom)["y"].find("g", cls="series")
    subpaths = path_points(group.find("path").attrs["d"])
    assert [len(sub) for sub in subpaths] == [2, 3]  # steps 0-1 and 5-7
    assert len(group.find_all("circle")) == 1  # step 3, alone between two gaps
    ys = report_data(dom)["charts"][0]["s"][0][1][1::2]
    assert sorted(ys) == [1, 2, 4, 6, 7, 8]  # no zeros stand in for the gaps


def test_a_single_point_is_a_dot(root):
    run_id = make_run(root, "one", [{"y": 3.5}])
    dom = parse(render_report(stored(root, run_id)))
    group = figures(dom)["y"].find("g", cls="series")
    assert not group.find_all("path") and len(group.find_all("circle")) == 1


def test_empty_run_list_and_bad_max_points_are_refused(root):
    with pytest.raises(ValueError, match="no runs"):
        render_report([])
    with pytest.raises(ValueError, match="no runs"):
        write_report([], os.path.join(root, "r.html"))
    run_id = make_run(root, "one", [{"y": 1}])
    with pytest.raises(ValueError, match="max_points"):
        render_report(stored(root, run_id), max_points=1)


def test_write_report_replaces_the_file_atomically(tmp_path: Path, two_runs):
    out = tmp_path / "out"
    out.mkdir()
    target = out / "report.html"
    target.write_text("old")
    assert write_report(two_runs, str(target)) == str(target)
    assert os.listdir(out) == ["report.html"]
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert len(figures(parse(target.read_text(encoding="utf-8")))) == 3


@pytest.mark.skipif(system_metrics_unavailable(), reason="no system metrics on this platform (no /proc, no psutil)")
def test_system_metrics_have_a_section_of_their_own(root):
    run = mplogger.init(dir=root, project="rep", settings={"system_interval": 0.05})
    run.log({"y": 1})
    api = mplogger.Api(root)
    wait_for(lambda: len(api.run(run.id).system_metrics()) >= 2, what="two system samples")
    run.finish()
    dom = parse(render_report(stored(root, run.id)))
    system = figures(section(dom, "System"))
    assert system and all(metric.startswith("system/") for metric in system)
    assert list(figures(section(dom, "Metrics"))) == ["y"]


# --- in a real browser -------------------------------------------------------------------------
def chromium() -> Optional[str]:
    for name in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if name and os.path.exists(name):
            return name
    return None


def run_chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    browser = chromium()
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_chromium_renders_the_charts(tmp_path: Path, two_runs):
    if chromium() is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    from PIL import Image

    report = write_report(two_runs, str(tmp_path / "report.html"))
    url = "file://" + report
    shot = tmp_path / "shot.png"
    done = run_chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", url)
    assert shot.exists(), done.stderr[-2000:]
    with Image.open(shot) as image:
        colours = {rgb for _, rgb in image.convert("RGB").getcolors(maxcolors=1 << 22)}
    assert len(colours) > 50
    assert hex_rgb(PALETTE[0]) in colours and hex_rgb(PALETTE[1]) in colours
    dom = run_chromium(tmp_path, "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    rendered = parse(dom.stdout)
    assert list(figures(rendered)) == ["loss", "acc", "train.x"]
    assert rendered.find("html").attrs.get("data-hover") == "ready"  # the script ran under the CSP


def test_chromium_runs_no_injected_script(tmp_path: Path, root: str):
    if chromium() is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    mark = "document.documentElement.setAttribute('data-pwned','1')"
    run_id = make_run(root, f"</script><script>{mark}</script>", [{f"<script>{mark}</script>": 1.0}],
                      config={"x": f'<img src=x onerror="{mark}">'})
    report = write_report(stored(root, run_id), str(tmp_path / "report.html"))
    dom = run_chromium(tmp_path, "--dump-dom", "file://" + report)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html_node = parse(dom.stdout).find("html")
    assert html_node.attrs.get("data-pwned") is None
    assert html_node.attrs.get("data-hover") == "ready"


# --- found by review ---------------------------------------------------------------------------
def test_runs_past_the_palette_are_told_apart_by_dashes(root):
    ids = [make_run(root, f"r{i}", [{"loss": float(i)}, {"loss": i + 1.0}]) for i in range(12)]
    dom = parse(render_report(stored(root, *ids)))
    groups = {g.attrs["data-run"]: g for g in figures(dom)["loss"].find_all("g", cls="series")}
    first, eleventh = groups[ids[0]], groups[ids[10]]
    assert first.attrs["stroke"] == eleventh.attrs["stroke"]
    assert "stroke-dasharray" not in first.attrs and eleventh.attrs["stroke-dasharray"]


def test_config_dicts_with_a_type_key_are_compared_not_collapsed(root):
    ids = [make_run(root, f"m{depth}", [{"x": 1}], config={"model": {"_type": "resnet", "depth": depth}})
           for depth in (50, 101)]
    text = render_report(stored(root, *ids))
    config = section(parse(text), "Config")
    assert "<resnet>" not in "".join(config.find("table").text() for _ in [0])
    assert "101" in config.find("table").text() and "50" in config.find("table").text()


def test_a_span_too_small_to_tick_is_drawn_flat(root):
    run_id = make_run(root, "tiny", [{"g": 0.0}, {"g": 1e-323}])
    dom = parse(render_report(stored(root, run_id)))
    assert "g" in figures(dom)


def test_lone_surrogates_in_the_store_do_not_break_the_report(root, tmp_path):
    run_id = make_run(root, "s", [{"x": 1, "file": "a\udcffb"}], config={"path": "data/\udcff.bin"})
    path = write_report(stored(root, run_id), str(tmp_path / "r.html"))
    text = open(path, encoding="utf-8").read()
    assert "\\udcff" in text


def test_a_missing_folder_is_named_not_a_temporary_file(root, tmp_path):
    run_id = make_run(root, "a", [{"x": 1}])
    target = tmp_path / "nope" / "r.html"
    with pytest.raises(FileNotFoundError, match=f"cannot write {target}: there is no folder {target.parent}"):
        write_report(stored(root, run_id), str(target))
