"""The report page: headline numbers in plain HTML, then the figures, in one self-contained file.

plotly.js is embedded by default so the page works offline; ``plotly_js="cdn"`` links it instead for a
small file. Each figure's title becomes a heading of the page, which wraps on a narrow screen, and each
plot takes its container's width; the plotly template the figures share is written once. Every piece of
text is escaped here or was escaped by the figure that carries it. The file is written through a
temporary name and renamed, so an interrupted write leaves no half page.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from cycleplan import __version__
from cycleplan.present.report.text import safe

if TYPE_CHECKING:
    import plotly.graph_objects as go

PlotlyJs = Literal["embed", "cdn"]


@dataclass(frozen=True)
class Headline:
    """One of the few numbers that matter, e.g. speedup ``2.3x`` with ``P10-P90 1.9-2.6x``."""

    label: str
    value: str
    detail: str = ""


@dataclass(frozen=True)
class Report:
    """What a page shows: a title, headline numbers, facts about the run, and figures."""

    title: str
    headlines: Sequence[Headline]
    facts: dict[str, str]
    figures: Sequence[go.Figure]
    notes: Sequence[str] = ()


_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1320px;
       padding: 16px 24px; color: #1d1d1f; }
h1 { font-size: 1.6rem; margin: 0.2rem 0 0.4rem; overflow-wrap: anywhere; }
h2 { font-size: 1.1rem; font-weight: 600; margin: 0 0 0.15rem; overflow-wrap: anywhere; }
.subtitle { font-size: 0.88rem; color: #555; margin: 0 0 0.2rem; }
.facts { color: #555; font-size: 0.9rem; margin-bottom: 1rem; }
.facts span { margin-right: 1.2rem; display: inline-block; }
.headlines { display: flex; flex-wrap: wrap; gap: 10px; margin: 0.6rem 0 1.1rem; }
.headline { flex: 1 1 auto; max-width: 24rem; border: 1px solid #ddd; border-radius: 8px; padding: 8px 12px; }
.headline .label { font-size: 0.75rem; color: #666; text-transform: uppercase; letter-spacing: 0.04em; }
.headline .value { font-size: 1.35rem; font-weight: 600; white-space: nowrap; }
.headline .detail { font-size: 0.8rem; color: #444; }
.notes { font-size: 0.9rem; color: #333; max-width: 75rem; }
.notes p { margin: 0.35rem 0; }
.figure { margin: 8px 0 28px; border-top: 1px solid #eee; padding-top: 10px; }
.figure .plot { width: 100%; }
"""


def _title(figure: go.Figure) -> tuple[str, str]:
    """The figure's title and subtitle (already escaped by the figure that set them)."""
    title = figure.layout.title
    subtitle = title.subtitle.text if title.subtitle is not None else None
    return str(title.text or ""), str(subtitle or "")


_CONFIG = {"displaylogo": False, "responsive": True}


def _json(value: object) -> str:
    """``value`` as JSON that is safe inside a ``<script>`` element."""
    from plotly.io.json import to_json_plotly

    return str(to_json_plotly(value)).replace("</", "<\\/")


def _figure_html(figure: go.Figure, index: int, template: dict[str, Any]) -> str:
    """One figure: its title and subtitle as page headings (they wrap at any width, where a plotly title
    is cut off), then the plot, which follows its container's width. A figure drawn with the page's
    ``template`` names it instead of carrying its own copy (a plotly template is about 7 kB)."""
    title, subtitle = _title(figure)
    data = figure.to_plotly_json()
    layout = data["layout"]
    layout.pop("title", None)
    layout["autosize"] = True
    shared = layout.get("template") == template
    if shared:
        del layout["template"]
    div_id = f"figure-{index}"
    script = (
        f"Plotly.newPlot({_json(div_id)}, {_json(data['data'])}, "
        + (f"Object.assign({_json(layout)}, {{template: cycleplanTemplate}})" if shared else _json(layout))
        + f", {_json(_CONFIG)});"
    )
    heading = f"<h2>{title}</h2>" if title else ""
    if subtitle:
        heading += f'<p class="subtitle">{subtitle}</p>'
    return (
        f'<div class="figure">{heading}<div class="plot"><div id="{div_id}" class="plotly-graph-div" '
        f'style="width:100%"></div><script type="text/javascript">{script}</script></div></div>'
    )


def render_page(report: Report, plotly_js: PlotlyJs = "embed") -> str:
    """The whole HTML page as text."""
    if plotly_js == "embed":
        from plotly.offline import get_plotlyjs

        script = f'<script type="text/javascript">{get_plotlyjs()}</script>'
    else:
        from plotly.io._utils import plotly_cdn_url

        script = f'<script src="{safe(plotly_cdn_url())}" charset="utf-8"></script>'
    headlines = "".join(
        f'<div class="headline"><div class="label">{safe(h.label)}</div>'
        f'<div class="value">{safe(h.value)}</div><div class="detail">{safe(h.detail)}</div></div>'
        for h in report.headlines
    )
    facts = "".join(f"<span>{safe(key)}: <b>{safe(value)}</b></span>" for key, value in report.facts.items())
    notes = "".join(f"<p>{safe(note)}</p>" for note in report.notes)
    template = _page_template(report.figures)
    figures = "".join(_figure_html(figure, index, template) for index, figure in enumerate(report.figures))
    shared = f'<script type="text/javascript">var cycleplanTemplate = {_json(template)};</script>'
    meta = json.dumps({"title": report.title, "cycleplan": __version__}).replace("<", "\\u003c")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{safe(report.title)}</title><style>{_STYLE}</style>{script}{shared}"
        f'<script type="application/json" id="cycleplan-meta">{meta}</script></head><body>'
        f'<h1>{safe(report.title)}</h1><div class="facts">{facts}</div>'
        f'<div class="headlines">{headlines}</div><div class="notes">{notes}</div>{figures}</body></html>\n'
    )


def _page_template(figures: Sequence[go.Figure]) -> dict[str, Any]:
    """The plotly template most of the page's figures are drawn with (plotly's default one)."""
    if not figures:
        return {}
    template = figures[0].layout.template.to_plotly_json()
    return template if isinstance(template, dict) else {}


def standard_facts(scenario_name: str, seed: int | None = None) -> dict[str, str]:
    """Scenario, seed (when there is one), cycleplan version and the date, for every page's header."""
    facts = {"scenario": scenario_name or "(unnamed)"}
    if seed is not None:
        facts["seed"] = str(seed)
    facts["cycleplan"] = __version__
    facts["date"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return facts


def write_page(path: Path, report: Report, plotly_js: PlotlyJs = "embed") -> int:
    """Write the page to ``path`` (atomically); returns its size in bytes."""
    text = render_page(report, plotly_js)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)
    return len(text.encode("utf-8"))
