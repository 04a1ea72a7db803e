"""Assemble the self-contained HTML page: plotly.js inlined once, each figure's JSON, the user
lookup's data and its small script. No network access is needed to open it.

plotly.js (4.8 MB) is inlined gzip-compressed and base64-encoded (2.0 MB) and unpacked by the
browser's ``DecompressionStream`` (Chromium 80+, Firefox 113+, Safari 16.4+) before the charts
are drawn, which keeps the page near 2 MB instead of 5 MB; a browser without it shows a message
saying so. ``window.REPORT_READY`` turns true once every chart is drawn (the tests wait on it).
"""

from __future__ import annotations

import base64
import functools
import gzip
import html
import json
from dataclasses import dataclass, field
from typing import Optional

import plotly.io as pio
from plotly.offline import get_plotlyjs

_CSS = """
body{font-family:system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:0 16px;color:#222}
h1{margin-bottom:4px} h2{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}
.meta{color:#555;font-size:13px} .missing{background:#fff4e5;border-left:4px solid #ff9800;padding:6px 10px}
table{border-collapse:collapse;font-size:13px;margin:8px 0} td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
td.n{text-align:right} .chart{min-height:300px} #lookup-id{width:360px;font-family:monospace}
"""

# The lookup: reads LOOKUP (user id -> trajectory, score, recommendations) embedded in the page.
_LOOKUP_JS = r"""
function esc(s){return String(s==null?'':s).replace(/[&<>"]/g,c=>({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]));}
function lookupUser(){
  const id=document.getElementById('lookup-id').value.trim();
  const out=document.getElementById('lookup-result'); const chart=document.getElementById('lookup-chart');
  const u=LOOKUP[id];
  if(!u){out.innerHTML='<p class="missing" id="lookup-none">'+esc(id)+' is not in this page\'s sample of '+Object.keys(LOOKUP).length+' users.</p>';Plotly.purge(chart);chart.style.display='none';return;}
  let h='<p id="lookup-found">user <code>'+esc(id)+'</code>';
  if(u.score){h+=': as of '+esc(u.score.as_of)+', P(switch) '+u.score.p_switch+', forecast stage '+esc(u.score.forecast_stage)+'<br>'+esc(u.score.explanation);}
  h+='</p><table id="lookup-recs"><tr><th>rank</th><th>category</th><th>reason</th><th>why</th><th>path</th></tr>';
  for(const r of u.recommendations){h+='<tr><td class="n">'+r[0]+'</td><td>'+esc(r[1])+'</td><td>'+esc(r[2])+'</td><td>'+esc(r[3])+'</td><td>'+esc(NAMES[r[1]])+'</td></tr>';}
  h+='</table>'; if(!u.recommendations.length){h+='<p class="missing">no recommendations stored for this user</p>';}
  out.innerHTML=h;
  const cats=[...new Set(u.trajectory.flatMap(t=>t[1]))]; const x=u.trajectory.map(t=>t[0]);
  const z=cats.map(c=>u.trajectory.map(t=>{const i=t[1].indexOf(c);return i<0?0:t[2][i];}));
  chart.style.display='block';
  Plotly.newPlot(chart,[{type:'heatmap',z:z,x:x,y:cats.map(c=>NAMES[c]?c+' '+NAMES[c]:c),colorscale:'YlGnBu',reversescale:true,zmin:0,zmax:1,
    hovertemplate:'%{y}<br>week of %{x}<br>share %{z:.0%}<extra></extra>'}],
    {template:'none',height:120+24*cats.length,margin:{l:260,r:30,t:40,b:50},title:'Interest trajectory (top categories per week)'},
    {displaylogo:false,responsive:true});
}
document.getElementById('lookup-go').addEventListener('click',lookupUser);
document.getElementById('lookup-id').addEventListener('keydown',e=>{if(e.key==='Enter')lookupUser();});
"""

# Unpack plotly.js, then draw: drawReport() is defined by the page before this runs.
_BOOT_JS = r"""
(async function(){
  try{
    const b=atob(document.getElementById('plotly-gz').textContent.trim());
    const bytes=new Uint8Array(b.length); for(let i=0;i<b.length;i++){bytes[i]=b.charCodeAt(i);}
    const text=await new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'))).text();
    const s=document.createElement('script'); s.textContent=text; document.head.appendChild(s);
  }catch(err){
    document.body.insertAdjacentHTML('afterbegin','<p class="missing">This browser cannot unpack the '
      +'inlined plotly.js (it needs DecompressionStream): the charts are not drawn. '+String(err)+'</p>');
    throw err;
  }
  drawReport();
  window.REPORT_READY=true;
})();
"""


@functools.lru_cache(maxsize=1)
def plotly_js_packed() -> str:
    """plotly.js as base64 of its gzip (deterministic: no timestamp in the gzip header)."""
    return base64.b64encode(gzip.compress(get_plotlyjs().encode(), 9, mtime=0)).decode()


@dataclass
class Section:
    """One section of the page: its charts (name -> figure), extra HTML and what is missing."""

    key: str
    title: str
    intro: str = ""
    charts: dict = field(default_factory=dict)
    html: str = ""
    missing: list = field(default_factory=list)


def html_table(header: list, rows: list, numeric: tuple = ()) -> str:
    """A small escaped HTML table; columns whose index is in ``numeric`` are right-aligned."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    cell = lambda i, v: ('<td class="n">' if i in numeric else "<td>") + html.escape("" if v is None else str(v)) + "</td>"  # noqa: E731
    body = "".join("<tr>" + "".join(cell(i, v) for i, v in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _script_json(value) -> str:
    """JSON safe inside a <script> element."""
    return value.replace("</", "<\\/") if isinstance(value, str) else json.dumps(value, separators=(",", ":")).replace("</", "<\\/")


def render_page(title: str, meta: list[str], sections: list[Section], lookup: Optional[dict],
                missing: dict, names: Optional[dict] = None) -> tuple[str, int]:
    """The whole page and its number of charts (not counting the lookup's, drawn on demand).

    Args:
        title: the page heading (the run).
        meta: lines under the heading (warehouse, versions, privacy mode...).
        sections: in page order.
        lookup: user id -> :func:`~interest_lib.report.gather.user_lookup` entry; None = no lookup.
        missing: table -> why it is missing (listed at the top).
        names: category -> its path, shown beside the lookup's category ids.
    """
    figures, parts = {}, []
    for s in sections:
        parts.append(f'<section id="{s.key}"><h2>{html.escape(s.title)}</h2>')
        if s.intro:
            parts.append(f"<p>{s.intro}</p>")
        for note in s.missing:
            parts.append(f'<p class="missing">{html.escape(note)}</p>')
        for name, fig in s.charts.items():
            if fig is None:
                continue
            div = f"chart-{len(figures)}"
            figures[div] = pio.to_json(fig, validate=False, pretty=False)
            parts.append(f'<div class="chart" id="{div}" data-chart="{html.escape(name)}"></div>')
        parts.append(s.html + "</section>")
    if lookup is not None:
        options = "".join(f'<option value="{html.escape(u)}">' for u in lookup)
        parts.append(
            '<section id="lookup"><h2>User lookup</h2><p>Paste a pseudonymous user id (one of the '
            f'{len(lookup)} users sampled into this page; no raw identifiers are stored anywhere) to '
            'see the user\'s interest trajectory and current recommendations with their reasons.</p>'
            '<input id="lookup-id" list="lookup-ids" placeholder="pseudonymous user id">'
            f'<datalist id="lookup-ids">{options}</datalist> <button id="lookup-go">Look up</button>'
            '<div id="lookup-result"></div><div id="lookup-chart" style="display:none"></div></section>')
    top = ""
    if missing:
        top = ('<section id="missing"><h2>What is missing</h2><ul>'
               + "".join(f"<li>{html.escape(why)}</li>" for why in missing.values()) + "</ul></section>")
    draw = "".join(
        f"(function(){{const f={_script_json(j)};Plotly.newPlot('{d}',f.data,f.layout,"
        "{displaylogo:false,responsive:true});})();" for d, j in figures.items())
    page = (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>" + "".join(f'<p class="meta">{m}</p>' for m in meta) + top
        + "".join(parts)
        + f'<script id="plotly-gz" type="application/octet-stream">{plotly_js_packed()}</script>'
        + f"<script>window.REPORT_CHARTS={len(figures)};window.REPORT_READY=false;"
        + f"function drawReport(){{{draw}}}"
        + (f"const LOOKUP={_script_json(lookup)};const NAMES={_script_json(names or {})};{_LOOKUP_JS}"
           if lookup is not None else "")
        + _BOOT_JS + "</script></body></html>")
    return page, len(figures)
