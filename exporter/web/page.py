"""The status page at /: server-rendered HTML, no external assets, readable on a phone."""

import html
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from exporter import __version__
from exporter.service.live import DirectorHealth, LiveRow
from exporter.service.overview import CatalogHealth, StatusRow, human_age, problems

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2430;background:#f6f7f9}
header{padding:12px 16px;background:#1d2430;color:#fff}
header h1{font-size:18px;margin:0}
header p{margin:4px 0 0;color:#c9d1dc}
main{padding:12px 16px}
/* Each pill takes its state's colours (the never pill is white on dark red). */
.summary span{display:inline-block;margin:0 8px 8px 0;padding:4px 10px;border-radius:12px}
.controls{display:flex;flex-wrap:wrap;gap:8px;margin:8px 0}
.controls input,.controls select{font:inherit;padding:6px;border:1px solid #b9c2cf;
border-radius:4px}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{padding:6px 8px;border-bottom:1px solid #e4e8ee;text-align:left;vertical-align:top}
th{cursor:pointer;user-select:none;background:#eef1f5;position:sticky;top:0}
td.reason{max-width:28em;color:#5a6474;font-size:12px}
.state{font-weight:600;border-radius:4px;padding:2px 6px}
.s-ok{background:#d7f2df;color:#14532d}.s-failing{background:#fdf0c4;color:#713f12}
.s-late{background:#fbd5d5;color:#7f1d1d}.s-never{background:#7f1d1d;color:#fff}
.down{background:#fbd5d5;padding:8px;border-radius:4px;margin-bottom:8px}
.running{color:#1d4ed8}
.live{margin:0 0 12px}.live td,.live th{cursor:default}
.k-missed,.k-blocked{background:#fbd5d5;color:#7f1d1d}.k-waiting{background:#fdf0c4;color:#713f12}
.k-running{background:#dbe6fb;color:#1d4ed8}.k-next{background:#e4e8ee}
@media (max-width:700px){thead{display:none}tr{display:block;margin-bottom:8px;
border:1px solid #e4e8ee}td{display:block;border:0;padding:2px 8px}td:empty{display:none}
td::before{content:attr(data-h) ": ";font-weight:600}}
"""

_JS = """
const q = document.getElementById('q'), only = document.getElementById('only');
const rows = [...document.querySelectorAll('table:not(.live) tbody tr')];
function apply() {
  const t = q.value.toLowerCase(), p = only.value;
  sessionStorage.setItem('q', q.value); sessionStorage.setItem('only', p);
  let n = 0;
  for (const r of rows) {
    const st = r.dataset.state;
    const show = r.textContent.toLowerCase().includes(t)
      && (p === 'all' || (p === 'problems' && st !== 'ok') || st === p);
    r.hidden = !show; if (show) n++;
  }
  document.getElementById('shown').textContent = n;
}
const url = new URLSearchParams(location.search);
q.value = url.get('q') ?? sessionStorage.getItem('q') ?? '';
only.value = url.get('only') ?? sessionStorage.getItem('only') ?? 'all';
q.oninput = apply; only.onchange = apply; apply();
document.querySelectorAll('table:not(.live) th').forEach((th, i) => th.onclick = () => {
  const tb = document.querySelector('table:not(.live) tbody');
  const dir = th.dataset.dir === 'asc' ? 'desc' : 'asc'; th.dataset.dir = dir;
  const key = r => r.children[i].dataset.sort ?? r.children[i].textContent;
  [...tb.rows].sort((a, b) => {
    const x = key(a), y = key(b), nx = parseFloat(x), ny = parseFloat(y);
    const c = isNaN(nx) || isNaN(ny) ? x.localeCompare(y) : nx - ny;
    return dir === 'asc' ? c : -c;
  }).forEach(r => tb.appendChild(r));
});
setTimeout(() => location.reload(), REFRESH * 1000);
"""


def _when(ts: float | None) -> str:
    """Format a Unix time as UTC, or a dash."""
    if ts is None:
        return "–"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _cell(header: str, text: str, sort: str | float | None = None, cls: str = "") -> str:
    """Return one table cell, escaped, with its header for the phone layout."""
    attrs = f' data-h="{html.escape(header)}"'
    if sort is not None:
        attrs += f' data-sort="{html.escape(str(sort))}"'
    if cls:
        attrs += f' class="{cls}"'
    return f"<td{attrs}>{text}</td>"


def _directors(rows: Sequence[LiveRow], health: Sequence[DirectorHealth], now: float) -> str:
    """Return the Directors' section: who is down, what waits, what was missed, what comes."""
    if not health:
        return ""
    e = html.escape
    down = "".join(
        f'<div class="down">Director <b>{e(h.name)}</b> does not answer: {e(h.error)}</div>'
        for h in health if not h.up)
    body = []
    for r in rows:
        when = r.when_text(now)
        body.append(
            f'<tr><td data-h="What"><span class="state k-{r.kind}">{e(r.kind)}</span></td>'
            f'<td data-h="Director">{e(r.director)}</td><td data-h="Client">{e(r.client)}</td>'
            f'<td data-h="Job">{e(r.job)}</td><td data-h="Level">{e(r.level)}</td>'
            f'<td data-h="State">{e(r.what)}</td><td data-h="When">{when}</td></tr>')
    names = ", ".join(f"{e(h.name)} ({e(h.version) or '?'}, {'up' if h.up else 'down'})"
                      for h in health)
    table = ("<table class=\"live\"><thead><tr><th>What</th><th>Director</th><th>Client</th>"
             "<th>Job</th><th>Level</th><th>State</th><th>When</th></tr></thead><tbody>"
             + "".join(body) + "</tbody></table>") if body else ""
    return f"<h2>Now, from the Directors: {names}</h2>{down}{table}"


def render_page(
    rows: Sequence[StatusRow], health: Sequence[CatalogHealth], nonce: str, refresh: int = 60,
    now: float | None = None, standby: bool = False,
    live: tuple[Sequence[LiveRow], Sequence[DirectorHealth]] = ((), ()),
) -> str:
    """Return the whole status page."""
    now = time.time() if now is None else now
    e = html.escape
    counts = problems(rows)
    summary = "".join(
        f'<span class="s-{state.label}">{e(state.label)}: {n}</span>' for state, n in counts.items()
    )
    down = "".join(
        f'<div class="down">Catalog <b>{e(h.name)}</b> is unreachable: {e(h.error)} — showing '
        "the last known state.</div>" for h in health if not h.up
    )
    if standby:
        down += ('<div class="down">This replica stands by: another replica polls the catalogs '
                 "and shows their state.</div>")
    body = []
    for r in rows:
        age = r.age(now)
        limit = f" / SLA {human_age(r.max_age)}" if r.max_age is not None else ""
        running = (f'<span class="running">running since {_when(r.running_since)}</span>'
                   if r.running_since is not None else "")
        body.append(
            f'<tr data-state="{r.standing.label}">'
            + _cell("State", f'<span class="state s-{r.standing.label}">{r.standing.label}</span>',
                    int(r.standing))
            + _cell("Catalog", e(r.catalog)) + _cell("Client", e(r.client))
            + _cell("Job", e(r.job) or "–") + _cell("Level", e(r.level) or "–")
            + _cell("Last success", f"{_when(r.last_success)}<br>{human_age(age)}{limit}"
                    + (" · Virtual Full" if r.virtual_full else ""), -1 if age is None else age)
            + _cell("Last run", e(r.last_status) or "–")
            + _cell("Last failure", _when(r.last_failure), r.last_failure or 0)
            + _cell("Reason", e(r.reason), cls="reason")
            + _cell("Running", running, r.running_since or 0)
            + "</tr>"
        )
    headers = "".join(f"<th>{h}</th>" for h in (
        "State", "Catalog", "Client", "Job", "Level", "Last success", "Last run", "Last failure",
        "Reason", "Running"))
    catalogs = ", ".join(
        f"{e(h.name)} ({e(h.product)} {h.version}, {'up' if h.up else 'down'})" for h in health
    )
    script = _JS.replace("REFRESH", str(int(refresh)))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Bacula backups – status</title><style nonce="{nonce}">{_CSS}</style></head>
<body><header><h1>Bacula backups</h1><p>Catalogs: {catalogs} · {_when(now)} ·
bacula-exporter {e(__version__)}</p></header>
<main>{down}{_directors(live[0], live[1], now)}<div class="summary">{summary}</div>
<div class="controls"><input id="q" type="search" placeholder="Filter: client, job, reason…"
aria-label="Filter"><select id="only" aria-label="Show"><option value="all">all</option>
<option value="problems">problems</option><option value="never">never</option>
<option value="late">late</option><option value="failing">failing</option>
<option value="ok">ok</option></select><span><span id="shown">{len(rows)}</span> shown</span></div>
<table><thead><tr>{headers}</tr></thead><tbody>
{"".join(body)}
</tbody></table></main>
<script nonce="{nonce}">{script}</script></body></html>
"""
