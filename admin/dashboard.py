"""The panel's home page: what needs a decision today (service/reports/today.py), the
first-run checklist until it is done, the dashboard's charts over a chosen range, and each
chart as CSV."""

from __future__ import annotations

from datetime import date

from flask import make_response, request
from flask_admin import expose
from flask_login import current_user

from service.core.csvfile import csv_text
from service.core.db import utcnow
from service.core.runtime import runtime
from service.core.scores import Policy
from service.inbound.review import WAITING
from service.reports import charts, today
from service.reports import figures as reports

from .auth import AccountView
from .inbound import waiting_count

COLOURS = {"ink": charts.INK, "muted": charts.MUTED, "bar": charts.BAR,
           "reference": charts.REFERENCE, "band_fill": charts.BAND_FILL,
           "band_ink": charts.BAND_INK}

REPORT_DAYS = (date(1970, 1, 1), date(2999, 12, 31))  # a range's dates stay within these


def report_range(args) -> reports.Range:
    """The dashboard's range from the query string; bad values (unreadable, reversed, longer
    than three years, outside REPORT_DAYS) fall back to the default (the last six months by
    month)."""
    today = utcnow().date()
    period = args.get("period") if args.get("period") in reports.PERIODS else "month"
    try:
        end = date.fromisoformat(args.get("end", "")) if args.get("end") else today
        start = (date.fromisoformat(args["start"]) if args.get("start")
                 else reports.months_before(today, 5))
    except ValueError:
        start, end = reports.months_before(today, 5), today
    if (start > end or (end - start).days > 3 * 366 or start < REPORT_DAYS[0]
            or end > REPORT_DAYS[1]):
        start, end = reports.months_before(today, 5), today
    return reports.Range(start, end, period)


def decisions() -> dict:
    """The home page's "needs a decision today" lists, for the logged-in user."""
    now = utcnow()
    return {"suggested": today.suggested(Policy.from_settings(runtime.settings), now),
            "re_engaged": today.re_engaged(), "replies": today.replies_waiting(WAITING),
            "overdue": today.overdue(current_user.email, current_user.role, now),
            "manages_no_one": current_user.role == "sales_manager"
            and not today.manages_anyone(current_user.email)}


def drawn(data: dict, period: str) -> dict:
    """Each chart's layout (service/reports/charts.py)."""
    stages = ("lead", "mql", "sql", "nurture", "disqualified", "customer")

    def labels(key):
        return reports.label(key, period)

    return {
        "mqls": charts.volume_chart(data["volume"], period, labels),
        "conversion": charts.conversion_chart(data["conversion"], period, labels),
        "sla": charts.sla_chart(data["sla"]["rates"]),
        "reasons": charts.count_chart(data["reasons"]),
        "sources": charts.count_chart([row[:2] for row in data["sources"]]),
        "campaigns": charts.count_chart([(f"{s} / {c}", m) for s, c, m, _, _ in
                                         data["campaigns"]]),
        "definitions": charts.count_chart([row[:2] for row in data["definitions"]]),
        "origins": charts.count_chart(data["origins"].items()),
        "funnel": charts.count_chart([(s, data["funnel"]["stages"].get(s, 0))
                                      for s in stages]),
    }


def minutes(value) -> str:
    if value is None:
        return "—"
    hours, rest = divmod(int(value), 60)
    return f"{hours} h {rest:02d} min" if hours else f"{rest} min"


class HomeView(AccountView):
    """/admin/: the dashboard, beside the account pages of the index view."""

    @expose("/")
    def index(self):
        span = report_range(request.args)
        data = reports.dashboard(runtime.settings, span)
        return self.render(
            "admin/home.html", data=data, periods=reports.PERIODS, minutes=minutes,
            inbound_waiting=waiting_count(), decisions=decisions(), steps=today.first_run(),
            drawn=drawn(data, span.period), colours=COLOURS, label=reports.label,
            threshold=runtime.settings.scoring.suggest_threshold,
            sla_rows=list(zip(data["sla"]["by_rep"], data["sla"]["rates"], strict=True)))

    @expose("/report.csv")
    def report_csv(self):
        chart = request.args.get("chart", "")
        if chart not in reports.CHARTS:
            return "No such chart.", 404
        rows = reports.chart_csv(runtime.settings, report_range(request.args),
                                 chart)
        response = make_response(csv_text(rows))
        response.headers["Content-Type"] = "text/csv; charset=utf-8"
        response.headers["Content-Disposition"] = (
            f"attachment; filename={request.args.get('chart')}.csv")
        return response
