"""A self-contained HTML report of stored runs (a reader): a chart per metric, the runs, config and
summary.

The report is one file that needs no network when viewed: charts are inline SVG drawn here (they
render with scripts off), the styles and the small hover script are inline, a Content-Security-
Policy forbids every fetch, and every text taken from the store is HTML-escaped. The charts are
read and drawn by :mod:`mplogger._readers._charts`, the renderer the notebook's cards use too.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from mplogger._readers._charts import (PALETTE, SECONDS, STEPS, SeriesSet, chart_section, colour, escape, read_history,
                              read_system, run_label, swatch)
from mplogger._readers._display import badge, format_duration, format_time, format_value
from mplogger._shared._files import write_atomically
from mplogger._shared._values import flatten

if TYPE_CHECKING:  # pragma: no cover
    from mplogger._readers._api import StoredRun

__all__ = ["PALETTE", "render_report", "write_report"]

CELL_CHARS = 48

_DOT = " \u00b7 "
_DIFF_NOTE = "rows where runs differ are highlighted"
_RUN_COLUMNS = ("", "id", "name", "project", "group", "state", "started", "duration", "rows", "tags")
_NUMERIC_COLUMNS = {"duration", "rows"}


# --- HTML pieces -----------------------------------------------------------------------------
def _cell(value: Any) -> str:
    """A compact, escaped value; a truncated one carries the longer text as a tooltip."""
    short = format_value(value, CELL_CHARS)
    if short.endswith("\u2026"):
        return f'<span title="{escape(format_value(value, 2000))}">{escape(short)}</span>'
    return escape(short)


def _runs_table(runs: Sequence["StoredRun"]) -> str:
    head = "".join(f"<th>{name}</th>" for name in _RUN_COLUMNS)
    body = []
    for index, run in enumerate(runs):
        cells = [
            swatch(index), f"<code>{escape(run.id)}</code>", _cell(run.name), _cell(run.project),
            _cell(run.group) if run.group is not None else "", badge(run.state, inline=False),
            escape(format_time(run.created) or ""), format_duration(run.duration), f"{run.rows:,}",
            _cell(", ".join(str(tag) for tag in run.tags)) if run.tags else "",
        ]
        body.append("<tr>" + "".join(f'<td class="num">{cell}</td>' if name in _NUMERIC_COLUMNS else f"<td>{cell}</td>"
                                     for name, cell in zip(_RUN_COLUMNS, cells)) + "</tr>")
    return f'<div class="scroll"><table class="runs"><tr>{head}</tr>{"".join(body)}</table></div>'


class _MediaRef:
    """A stored media reference shown as ``<histogram>`` instead of its JSON."""

    def __init__(self, kind: Any) -> None:
        self.kind = kind

    def __repr__(self) -> str:
        return f"<{self.kind}>"


_MEDIA_TYPES = frozenset({"histogram", "table-file", "image-file"})


def _collapse_media(values: Any) -> Any:
    if isinstance(values, Mapping):
        if values.get("_type") in _MEDIA_TYPES:
            return _MediaRef(values["_type"])
        return {key: _collapse_media(value) for key, value in values.items()}
    if isinstance(values, list):
        return [_collapse_media(value) for value in values]
    return values


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr)


_MISSING = object()


def _compare_table(columns: Sequence[Mapping[str, Any]], runs: Sequence["StoredRun"]) -> str:
    """Keys down, runs across; a row whose runs disagree is marked ``diff``."""
    flat = [flatten(_collapse_media(values)) for values in columns]
    keys = sorted({key for values in flat for key in values})
    if not keys:
        return '<p class="empty">(none)</p>'
    head = "<th>key</th>" + "".join(f"<th>{swatch(i)}{escape(run_label(run))}</th>" for i, run in enumerate(runs))
    body = []
    for key in keys:
        row = [values.get(key, _MISSING) for values in flat]
        differs = len(runs) > 1 and len({"\0" if v is _MISSING else _canonical(v) for v in row}) > 1
        cells = "".join('<td class="missing">\u2013</td>' if v is _MISSING else f"<td>{_cell(v)}</td>" for v in row)
        body.append(f'<tr{" class=diff" if differs else ""}><th>{escape(key)}</th>{cells}</tr>')
    return f'<div class="scroll"><table class="kv">{"<tr>" + head + "</tr>"}{"".join(body)}</table></div>'


def _safe_json(data: Any) -> str:
    """JSON that cannot end its ``<script>`` element or open markup."""
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _stores(runs: Sequence["StoredRun"]) -> List[str]:
    return list(dict.fromkeys(run.root for run in runs))


# --- page ------------------------------------------------------------------------------------
_CSS = """
:root{color-scheme:light dark;--bg:#fff;--fg:#1f2328;--muted:#59636e;--grid:#eaeef2;--axis:#8c959f;
--line:#d1d9e0;--card:#f6f8fa;--diff:#fff3b0}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--muted:#9198a1;--grid:#262c36;
--axis:#656c76;--line:#3d444d;--card:#151b23;--diff:#3d3000}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
main{max-width:1320px;margin:0 auto;padding:24px 28px 48px}
h1{font-size:22px;margin:0 0 2px;overflow-wrap:anywhere}
h2{font-size:16px;margin:28px 0 10px;padding-bottom:6px;border-bottom:1px solid var(--line)}
h2 small{font-weight:400;color:var(--muted);font-size:12px;margin-left:8px}
.meta{color:var(--muted);margin:0;font-size:13px}
code,.kv td,.kv th{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:13px}
th,td{padding:4px 12px 4px 0;text-align:left;border-bottom:1px solid var(--line);white-space:nowrap}
tr:first-child th{color:var(--muted);font-weight:600;font-size:12px;font-family:inherit}
.kv th{font-weight:400}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.diff td,tr.diff th{background:var(--diff)}
td.missing,.empty{color:var(--muted)}
.sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px;vertical-align:-1px}
.badge{color:#fff;border-radius:9px;padding:1px 8px;font-size:11px;font-weight:600}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(380px,1fr));gap:14px}
.charts.small{grid-template-columns:repeat(auto-fill,minmax(290px,1fr))}
.small .plot text{font-size:13px}
.chart{margin:0;padding:10px 12px 8px;border:1px solid var(--line);border-radius:8px;background:var(--card);position:relative}
figcaption{font-weight:600;font-size:13px;margin-bottom:2px;overflow-wrap:anywhere}
.note{font-weight:400;color:var(--muted);font-size:11px;margin-left:8px}
.plot{display:block;width:100%;height:auto;overflow:visible}
.plot .grid line{stroke:var(--grid)}
.plot .axis line,.plot .cursor{stroke:var(--axis)}
.plot text{fill:var(--muted);font-size:11px;font-family:inherit}
.plot path{fill:none;stroke-width:1.7;stroke-linejoin:round;stroke-linecap:round}
.legend{list-style:none;margin:2px 0 0;padding:0;display:flex;flex-wrap:wrap;gap:0 14px;font-size:12px;color:var(--muted)}
.tip{position:absolute;top:34px;pointer-events:none;background:var(--bg);border:1px solid var(--line);border-radius:6px;
padding:4px 8px;font-size:12px;box-shadow:0 2px 8px rgba(0,0,0,.18);white-space:nowrap;z-index:1}
.tip b{font-weight:600}
footer{margin-top:32px;color:var(--muted);font-size:12px}
"""

_JS = """(function(){
var D=JSON.parse(document.getElementById("report-data").textContent);
function near(p,x){var lo=0,hi=p.length/2-1;if(hi<0)return -1;while(lo<hi){var m=(lo+hi)>>1;if(p[2*m]<x)lo=m+1;else hi=m;}
if(lo>0&&x-p[2*lo-2]<p[2*lo]-x)lo--;return lo;}
function fmt(v){return Math.abs(v)>=1e6||(v!==0&&Math.abs(v)<1e-3)?v.toExponential(3):String(+v.toPrecision(6));}
document.querySelectorAll("figure[data-chart]").forEach(function(f){
var c=D.charts[+f.dataset.chart],a=c.x,s=f.querySelector("svg"),t=f.querySelector(".tip"),k=s.querySelector(".cursor");
s.addEventListener("mousemove",function(ev){var q=s.createSVGPoint();q.x=ev.clientX;q.y=ev.clientY;
var p=q.matrixTransform(s.getScreenCTM().inverse()),x=a[0]+(p.x-a[2])/(a[3]-a[2])*(a[1]-a[0]),hx=null,rows=[];
c.s.forEach(function(e){var i=near(e[1],x);if(i<0)return;var px=e[1][2*i];rows.push([D.runs[e[0]],px,e[1][2*i+1]]);
if(hx===null||Math.abs(px-x)<Math.abs(hx-x))hx=px;});
if(hx===null)return;t.textContent="";var h=document.createElement("b");h.textContent=c.l+" "+fmt(hx);t.appendChild(h);
rows.forEach(function(r){var d=document.createElement("div"),w=document.createElement("i");w.className="sw";
w.style.background=r[0].c;d.appendChild(w);
d.appendChild(document.createTextNode(r[0].n+": "+fmt(r[2])+(r[1]===hx?"":" ("+c.l+" "+fmt(r[1])+")")));t.appendChild(d);});
var hp=a[2]+(hx-a[0])/(a[1]-a[0])*(a[3]-a[2]);k.setAttribute("x1",hp);k.setAttribute("x2",hp);
k.setAttribute("visibility","visible");t.hidden=false;
var b=f.getBoundingClientRect(),l=ev.clientX-b.left+14;if(l+t.offsetWidth>b.width)l=ev.clientX-b.left-14-t.offsetWidth;
t.style.left=Math.max(0,l)+"px";});
s.addEventListener("mouseleave",function(){t.hidden=true;k.setAttribute("visibility","hidden");});});
document.documentElement.setAttribute("data-hover","ready");
})();"""

_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        f"script-src 'sha256-{base64.b64encode(hashlib.sha256(_JS.encode()).digest()).decode()}'")


def _header(title: str, runs: Sequence["StoredRun"]) -> str:
    stores = ", ".join(f"<code>{escape(root)}</code>" for root in _stores(runs))
    projects = list(dict.fromkeys(run.project for run in runs))
    facts = [f"generated {escape(time.strftime('%Y-%m-%d %H:%M:%S %Z'))}", f"store {stores}",
             f"{len(runs)} run{'s' if len(runs) != 1 else ''}",
             f"project{'s' if len(projects) != 1 else ''} " + ", ".join(escape(p) for p in projects)]
    return f'<header><h1>{escape(title)}</h1><p class="meta">{_DOT.join(facts)}</p></header>'


def _section(title: str, body: str, note: str = "") -> str:
    small = f"<small>{note}</small>" if note else ""
    return f"<section><h2>{escape(title)}{small}</h2>{body}</section>" if body else ""


def _read(runs: Sequence["StoredRun"], max_points: int,
          progress: Optional[Callable[[int], None]]) -> Tuple[SeriesSet, SeriesSet]:
    history, system = SeriesSet(max_points), SeriesSet(max_points)
    for index, run in enumerate(runs):
        read_history(history, index, run, progress)
        read_system(system, index, run)
    return history, system


def render_report(runs: Sequence["StoredRun"], title: Optional[str] = None, max_points: int = 1000,
                  progress: Optional[Callable[[int], None]] = None) -> str:
    """The report as one self-contained HTML page; ``progress(n)`` is told the history rows read."""
    runs = list(runs)
    if not runs:
        raise ValueError("no runs to report on: pass at least one stored run (mplogger.Api(dir).runs())")
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, got {max_points!r}")
    title = title or "mplogger report"
    history, system = _read(runs, max_points, progress)
    chart_data: List[Dict[str, Any]] = []
    metrics = chart_section(history, runs, STEPS, chart_data)
    machine = chart_section(system, runs, SECONDS, chart_data)
    data = {"runs": [{"n": run_label(run), "c": colour(i)} for i, run in enumerate(runs)], "charts": chart_data}
    body = "".join([
        _header(title, runs),
        _section("Runs", _runs_table(runs)),
        _section("Metrics", metrics or '<p class="empty">(no numeric metrics logged)</p>', "x: step"),
        _section("Config", _compare_table([run.config for run in runs], runs), _DIFF_NOTE),
        _section("Summary", _compare_table([run.summary for run in runs], runs), _DIFF_NOTE),
        _section("System", machine, "x: seconds since the run started"),
    ])
    return ("<!DOCTYPE html>\n"
            '<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{escape(title)}</title><style>{_CSS}</style></head>"
            f"<body><main>{body}<footer>mplogger report \u00b7 charts keep at most {max_points:,} points "
            "per run and metric (the min and max of each stretch)</footer></main>"
            f'<script type="application/json" id="report-data">{_safe_json(data)}</script>'
            f"<script>{_JS}</script></body></html>\n")


def write_report(runs: Sequence["StoredRun"], path: str, title: Optional[str] = None, max_points: int = 1000,
                 progress: Optional[Callable[[int], None]] = None) -> str:
    """Write the report to ``path`` atomically (a reader never sees half a file); return the path."""
    text = render_report(runs, title=title, max_points=max_points, progress=progress)
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot write {path}: there is no folder {folder}")

    def write(temporary: str) -> None:
        with open(temporary, "w", encoding="utf-8", errors="backslashreplace") as out:  # lone surrogates
            out.write(text)

    write_atomically(path, write)
    return path
