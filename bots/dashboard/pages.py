"""The dashboard's HTML: the login form and the one read-only page, written here
from a ``core.stats.StatsReport``. Numbers carry ``data-value`` so a check (and a
script of the operator's) can read them without parsing text."""

from __future__ import annotations

import datetime as dt
from html import escape
from typing import Any

from bots.dashboard.svg import ACTIVE, FAILED, SUCCEEDED, Series, hbars, lines, stacked_bars
from core.stats import StatsReport
from core.vendor_health import HEALTHY

CHARGED = "#1565c0"
COST = "#ef6c00"
P50 = "#5c6bc0"
P95 = "#283593"

_STYLE = """
body{font-family:system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:12px;color:#212121}
h1{font-size:1.4em;margin:.2em 0}h2{font-size:1.1em;margin:1.2em 0 .4em}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:8px}
.card{border:1px solid #e0e0e0;border-radius:8px;padding:8px 12px}
.card b{display:block;font-size:1.5em}.muted{color:#757575;font-size:.9em}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,480px),1fr));gap:12px;
margin-top:12px}
svg.chart{width:100%;height:auto;border:1px solid #eee;border-radius:8px}
table{border-collapse:collapse;width:100%;font-size:.95em}
td,th{border-bottom:1px solid #eee;padding:4px 6px;text-align:left}
td.n,th.n{text-align:right}.paused{color:#c62828;font-weight:bold}.ok{color:#2e7d32}
td.why{overflow-wrap:anywhere}input,button{font-size:1em;padding:6px}
.top{display:flex;flex-wrap:wrap;align-items:center;justify-content:space-between;gap:8px}
"""


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>{body}</body></html>"
    )


def login_page(message: str | None = None) -> str:
    note = f'<p class="paused">{escape(message)}</p>' if message else ""
    return _page(
        "imagine-bot dashboard: log in",
        "<h1>imagine-bot dashboard</h1>"
        f"{note}"
        '<form method="post" action="/login">'
        '<label>Token <input type="password" name="token" autocomplete="current-password" '
        'required autofocus></label> <button type="submit">Log in</button></form>'
        '<p class="muted">The token is DASHBOARD_TOKEN, or the one printed when the '
        "dashboard started.</p>",
    )


def _when(ts: float | None) -> str:
    if ts is None:
        return "–"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _day(day: int) -> str:
    return dt.datetime.fromtimestamp(day * 86_400, dt.UTC).strftime("%m-%d")


def _card(key: str, label: str, value: int, note: str = "") -> str:
    extra = f'<span class="muted">{escape(note)}</span>' if note else ""
    return (
        f'<div class="card"><span class="muted">{escape(label)}</span>'
        f'<b id="{key}" data-value="{value}">{value:,}</b>{extra}</div>'
    )


def dashboard_page(report: StatsReport) -> str:
    t = report.totals
    days = len(report.jobs)
    labels = [_day(d.day) for d in report.jobs]
    cards = "".join(
        (
            _card("jobs", "jobs", t.jobs, f"{t.succeeded:,} ok · {t.failed:,} failed"),
            _card("charged", "credits charged", t.charged),
            _card(
                "vendor-cost",
                "vendor cost (credits)",
                t.vendor_cost,
                f"markup {report.markup_percent}%",
            ),
            _card("margin", "margin (credits)", t.margin, f"{t.loss:,} lost on undelivered"),
            _card("purchases", "purchases", t.purchases, f"{t.purchased:,} credits bought"),
            _card("queued", "queued now", sum(q.queued for q in report.queue)),
            _card("running", "running now", sum(q.running for q in report.queue)),
        )
    )
    jobs_chart = stacked_bars(
        "Jobs per day by outcome",
        labels,
        [
            Series("succeeded", SUCCEEDED, [d.succeeded for d in report.jobs]),
            Series("failed", FAILED, [d.failed for d in report.jobs]),
            Series("running", ACTIVE, [d.active for d in report.jobs]),
        ],
    )
    money_chart = lines(
        "Credits charged vs vendor cost",
        labels,
        [
            Series("charged", CHARGED, [d.charged for d in report.money]),
            Series("vendor cost", COST, [report.vendor_cost_of(d) for d in report.money]),
        ],
    )
    times_labels = [f"{x.vendor} {x.tier} (n={x.count:,})" for x in report.times]
    times_chart = hbars(
        "Job time p50 / p95 by vendor and size tier",
        times_labels,
        [
            Series("p50", P50, [x.p50 for x in report.times]),
            Series("p95", P95, [x.p95 for x in report.times]),
        ],
        " s",
    )
    users_chart = hbars(
        "Top users by credits charged",
        [u.name for u in report.top_users],
        [Series("charged", CHARGED, [u.charged for u in report.top_users])],
    )
    failures_chart = hbars(
        "Failures by class",
        [f.error or "unknown" for f in report.failures],
        [Series("jobs", FAILED, [f.count for f in report.failures])],
    )
    vendors = "".join(
        f"<tr><td>{escape(v.name)}</td>"
        + (
            '<td class="ok">healthy</td><td></td><td></td>'
            if v.state == HEALTHY
            else f'<td class="paused">{escape(v.state)}</td><td>{_when(v.since)}</td>'
            # An error code is one long word: it may break anywhere on a phone.
            f'<td class="why">{escape(v.why or "")}<br>next probe {_when(v.probe_at)}</td>'
        )
        + "</tr>"
        for v in report.vendors
    )
    queue = (
        "".join(
            f'<tr><td>{escape(q.queue)}</td><td class="n">{q.queued:,}</td>'
            f'<td class="n">{q.running:,}</td><td>{_when(q.oldest_queued_at)}</td></tr>'
            for q in report.queue
        )
        or '<tr><td colspan="4" class="muted">empty</td></tr>'
    )
    windows = " · ".join(
        f'<a href="/?days={n}">{n} days</a>' if n != days else f"<b>{n} days</b>"
        for n in (7, 30, 90)
    )
    body = (
        '<div class="top"><h1>imagine-bot dashboard</h1>'
        '<form method="post" action="/logout"><button>Log out</button></form></div>'
        f'<p class="muted">Last {days} UTC days ({_when(report.since)} to now) · {windows} · '
        f"generated {_when(report.generated_at)}</p>"
        f'<div class="cards">{cards}</div>'
        f'<div class="grid"><div>{jobs_chart}</div><div>{money_chart}</div>'
        f"<div>{times_chart}</div><div>{users_chart}</div><div>{failures_chart}</div>"
        "<div><h2>Vendors</h2><table><tr><th>vendor</th><th>state</th><th>since</th>"
        "<th>why</th></tr>"
        f"{vendors}</table><h2>Queue now</h2><table><tr><th>queue</th><th class=n>queued</th>"
        f"<th class=n>running</th><th>oldest queued</th></tr>{queue}</table></div></div>"
    )
    return _page("imagine-bot dashboard", body)


def report_json(report: StatsReport) -> dict[str, Any]:
    """The page's figures as JSON (``/api/stats``)."""
    t = report.totals
    return {
        "since": report.since,
        "until": report.until,
        "generated_at": report.generated_at,
        "markup_percent": report.markup_percent,
        "totals": {
            "jobs": t.jobs,
            "succeeded": t.succeeded,
            "failed": t.failed,
            "charged": t.charged,
            "loss": t.loss,
            "vendor_cost": t.vendor_cost,
            "margin": t.margin,
            "purchases": t.purchases,
            "purchased": t.purchased,
        },
        "days": [
            {
                "day": _day(j.day),
                "succeeded": j.succeeded,
                "failed": j.failed,
                "active": j.active,
                "charged": m.charged,
                "loss": m.loss,
                "vendor_cost": report.vendor_cost_of(m),
                "purchases": m.purchases,
            }
            for j, m in zip(report.jobs, report.money, strict=True)
        ],
        "times": [
            {"vendor": x.vendor, "tier": x.tier, "count": x.count, "p50": x.p50, "p95": x.p95}
            for x in report.times
        ],
        "top_users": [
            {"name": u.name, "jobs": u.jobs, "charged": u.charged} for u in report.top_users
        ],
        "failures": [{"error": f.error, "count": f.count} for f in report.failures],
        "queue": [
            {"queue": q.queue, "queued": q.queued, "running": q.running} for q in report.queue
        ],
        "vendors": [
            {
                "name": v.name,
                "state": v.state,
                "since": v.since,
                "why": v.why,
                "probe_at": v.probe_at,
            }
            for v in report.vendors
        ],
    }
