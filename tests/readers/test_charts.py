"""The chart renderer shared by the report and the notebook: SVG that reads with no stylesheet and
no script, the script-free hover read-out, key selection, and how Chromium draws a card."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import mplogger
from mplogger._readers._charts import CARD, PALETTE, STEPS, SeriesSet, chart_svg, read_history, reading

from test_report import chromium, figures, hex_rgb, parse, run_chromium


def stored(root: str, run_id: str) -> "mplogger.StoredRun":
    return mplogger.Api(root).run(run_id)


def logged(root: str, rows, **kwargs) -> str:
    run = mplogger.init(dir=root, reinit="create_new", **kwargs)
    for row in rows:
        run.log(row)
    run.finish()
    return run.id


def test_the_svg_carries_its_own_colours_so_it_needs_no_stylesheet(root):
    run_id = logged(root, [{"y": float(i)} for i in range(10)])
    series = SeriesSet(100)
    read_history(series, 0, stored(root, run_id))
    svg, _ = chart_svg("y", series.metrics["y"], [stored(root, run_id)], STEPS, CARD, inline=True)
    dom = parse(svg)
    group = dom.find("g", cls="series")
    assert group.attrs["stroke"] == PALETTE[0]
    assert group.find("path").attrs["fill"] == "none"  # not filled black without CSS
    assert dom.find("g", cls="labels").attrs["fill"] == "currentColor"  # readable on dark themes too
    assert dom.find("g", cls="grid").attrs["stroke"] == "currentColor"
    assert dom.find("svg").attrs["viewbox"] == f"0 0 {CARD.width} {CARD.height}"


def test_the_hover_read_out_names_the_nearest_point_of_every_run(root):
    runs = [stored(root, logged(root, [{"y": i * scale} for i in range(100)], name=name))
            for name, scale in (("slow", 1.0), ("fast", 2.0))]
    series = SeriesSet(1000)
    for index, run in enumerate(runs):
        read_history(series, index, run)
    svg, _ = chart_svg("y", series.metrics["y"], runs, STEPS, inline=True)
    bands = parse(svg).find("g", cls="hover").find_all("rect")
    assert len(bands) == 48
    titles = [band.find("title").text() for band in bands]
    first, last = titles[0].split("\n"), titles[-1].split("\n")
    assert first[0] == "step 1" and first[1:] == ["slow: 1", "fast: 2"]
    assert last[0] == "step 98" and last[1:] == ["slow: 98", "fast: 196"]
    steps = [int(title.split("\n")[0].split()[1]) for title in titles]
    assert steps == sorted(steps)
    report = parse(chart_svg("y", series.metrics["y"], runs, STEPS)[0])  # the report: its script and stylesheet
    assert not report.find_all("g", cls="hover") and "stroke-opacity" not in report.find("g", cls="grid").attrs


def test_reading_keeps_six_digits_or_an_exponent():
    assert [reading(v) for v in (0.0, 1.0, 0.123456789, 2.5e-5, 3e7, -1234.5678)] == \
        ["0", "1", "0.123457", "2.500e-05", "3.000e+07", "-1234.57"]


def test_only_the_keys_asked_for_are_read_dotted_names_included(root):
    run_id = logged(root, [{"a": i, "b": -i, "m": {"x": i, "y": 2 * i}, "m.z": 3 * i} for i in range(5)])
    series = SeriesSet(100)
    read_history(series, 0, stored(root, run_id), keys=["b", "m.y", "m.z"])
    assert sorted(series.metrics) == ["b", "m.y", "m.z"]
    assert [y for _, y in series.metrics["m.y"][0].finite()] == [0, 2, 4, 6, 8]


def test_a_limit_stops_reading_once_enough_metrics_can_be_drawn(root):
    run_id = logged(root, [{"text": "t", **{f"k{j}": j for j in range(8)}} for _ in range(3)])
    series = SeriesSet(100)
    unread = read_history(series, 0, stored(root, run_id), limit=3)
    assert list(series.metrics) == ["k0", "k1", "k2"] and unread == 5


def test_chromium_draws_a_card_with_no_script_no_fetch_and_no_stylesheet(tmp_path: Path, root):
    if chromium() is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    from PIL import Image

    run = mplogger.init(dir=root, name="look")
    for i in range(200):
        run.log({"loss": 2.0 / (i + 1), "acc": i / 200})
    card = run._repr_html_()  # live: the card as a notebook shows it while the run trains
    run.finish()
    assert "<script" not in card and "<style" not in card
    page = tmp_path / "card.html"
    forbid = "default-src 'none'; script-src 'none'; style-src 'unsafe-inline'"  # no script, no fetch
    page.write_text(f'<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" content="{forbid}">'
                    f"</head><body>{card}</body></html>", encoding="utf-8")
    shot = tmp_path / "card.png"
    done = run_chromium(tmp_path, f"--screenshot={shot}",
                        "--window-size=1000,900", "file://" + str(page))
    assert shot.exists(), done.stderr[-2000:]
    with Image.open(shot) as image:
        colours = {rgb for _, rgb in image.convert("RGB").getcolors(maxcolors=1 << 22)}
    assert hex_rgb(PALETTE[0]) in colours and len(colours) > 30
    dom = run_chromium(tmp_path, "--dump-dom", "file://" + str(page))
    assert list(figures(parse(dom.stdout))) == ["loss", "acc"]
    assert re.search(r"running", dom.stdout)
