"""The HTML of the report: plain markup, inline CSS, a few lines of inline JS to sort tables.
Nothing is fetched: every image is a data URI."""

from __future__ import annotations

import base64
from html import escape

import pandas as pd

from pipelines.report.gallery import Thumbnail

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: 0.2rem; } .meta { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th[aria-sort=ascending]::after { content: " \\25B2"; }
table.sortable th[aria-sort=descending]::after { content: " \\25BC"; }
.scroll { max-height: 420px; overflow-y: auto; display: inline-block; }
.plots { display: flex; flex-wrap: wrap; gap: 1rem; } .plots figure { margin: 0; }
figcaption { font-size: 0.8rem; color: #555; max-width: 96px; overflow-wrap: anywhere; }
.cluster { border-top: 1px solid #ddd; padding-top: 0.5rem; }
.sides { display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; }
.side h4 { margin: 0.2rem 0; } .kept h4 { color: #2a9d8f; } .pruned h4 { color: #e76f51; }
.thumbs { display: flex; flex-wrap: wrap; gap: 0.5rem; } .thumbs figure { margin: 0; }
.thumbs img { width: 96px; height: 96px; object-fit: contain; background: #eee; }
.pair { display: flex; flex-wrap: wrap; gap: 0.2rem; max-width: 200px; border: 1px dashed #e76f51; }
.pair p { margin: 0; font-size: 0.8rem; color: #555; flex-basis: 100%; }
.meanings { font-size: 0.85rem; color: #444; } .explanation p { margin: 0.2rem 0; }
.warning { color: #9a3412; }
"""

SORT_SCRIPT = """
document.querySelectorAll("table.sortable th").forEach(function (th) {
  th.addEventListener("click", function () {
    var column = th.cellIndex, body = th.closest("table").tBodies[0];
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    th.parentNode.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[column].dataset.value, y = b.cells[column].dataset.value;
      var nx = parseFloat(x), ny = parseFloat(y);
      var order = (isNaN(nx) || isNaN(ny)) ? x.localeCompare(y) : nx - ny;
      return ascending ? order : -order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  });
});
"""


def png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _number(value) -> str:
    if isinstance(value, float):
        return "" if pd.isna(value) else f"{value:.4g}"
    return escape(str(value))


def table(frame: pd.DataFrame, sortable: bool = False, html_id: str = "") -> str:
    head = "".join(f"<th>{escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for record in frame.itertuples(index=False):
        cells = "".join(f'<td data-value="{escape(str(v))}">{_number(v)}</td>' for v in record)
        rows.append(f"<tr>{cells}</tr>")
    attrs = (' class="sortable"' if sortable else "") + (f' id="{html_id}"' if html_id else "")
    return f"<table{attrs}><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def figure(title: str, png: bytes, width: int | None = None) -> str:
    size = f' width="{width}"' if width else ""
    return (
        f'<figure><img src="{png_uri(png)}" alt="{escape(title)}"{size}>'
        f'<figcaption style="max-width:none">{escape(title)}</figcaption></figure>'
    )


def _figure(t: Thumbnail) -> str:
    tip = f"{t.key}: {t.reason}, score {t.score:.4g}"
    return (
        f'<figure><img src="{t.uri}" alt="{escape(t.key)}" title="{escape(tip)}">'
        f"<figcaption>{escape(t.caption)}</figcaption></figure>"
    )


def _thumb(t: Thumbnail) -> str:
    """A sample; a pruned duplicate beside the sample it duplicates."""
    if t.original is None:
        return _figure(t)
    o = t.original
    return (
        f'<div class="pair">{_figure(t)}{_figure(o)}<p>duplicate of {escape(o.key)} '
        f"({'kept' if o.kept else o.reason})</p></div>"
    )


def gallery(cluster: int, size: int, items: list[Thumbnail]) -> str:
    sides = []
    for kept, name in ((True, "kept"), (False, "pruned")):
        chosen = [t for t in items if t.kept == kept]
        body = "".join(_thumb(t) for t in chosen) or "<p>none</p>"
        sides.append(
            f'<div class="side {name}"><h4>{name} (shown {len(chosen)})</h4>'
            f'<div class="thumbs">{body}</div></div>'
        )
    return (
        f'<div class="cluster" id="cluster-{cluster}"><h3>cluster {cluster} '
        f'({size} samples)</h3><div class="sides">{"".join(sides)}</div></div>'
    )


def page(title: str, meta: str, sections: list[tuple[str, str, str]]) -> str:
    """`sections`: (id, heading, inner html)."""
    body = "".join(
        f'<section id="{sid}"><h2>{escape(heading)}</h2>{inner}</section>'
        for sid, heading, inner in sections
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="icon" href="data:,"><title>{escape(title)}</title>'
        f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>"
        f'<p class="meta">{meta}</p>{body}<script>{SORT_SCRIPT}</script></body></html>\n'
    )
