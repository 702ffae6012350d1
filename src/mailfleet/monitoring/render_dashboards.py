"""The two Grafana dashboards (DMARC, mail flow) as data: panels, their SQL, their layout.

Pure. The JSON files in ``dashboards/`` are this module's output, committed so that Grafana
provisioning, reviewers and the HTML report read the same thing; regenerate them with
``python -m mailfleet.monitoring.render_dashboards`` (a test fails when they drift).

Every query targets the frser-sqlite-datasource plugin and uses only Grafana's global time
variables ``$__from``/``$__to`` (epoch milliseconds; the plugin's frontend interpolates them for
panels and its backend for alert rules, ``pkg/plugin/variables.go``) and Grafana's
``${var:sqlstring}`` formatting,
so ``parse_panels.render_query`` can run the very same text against a store in tests and in
``mailfleet report``. Each target names the columns its panel expects (``mailfleetColumns``;
the plugin ignores unknown keys) and a test checks them against a real ingest.

Schemas read (see the stores' docstrings): DMARC ``record``/``report``/``ip_info`` (``day``
is the epoch of 00:00 UTC); logs ``deliveries``/``rejects`` (``ts`` REAL epoch seconds).
"""

from __future__ import annotations

import json
from typing import Any

# The transport the priority component gives bulk mail (postfix/bulk/smtp -> "bulk").
from mailfleet.priority.classify import BULK_TRANSPORT

DMARC_DS = {"type": "frser-sqlite-datasource", "uid": "mailfleet-dmarc"}
LOGS_DS = {"type": "frser-sqlite-datasource", "uid": "mailfleet-logs"}
SCHEMA_VERSION = 39
FROM, TO = "($__from / 1000)", "($__to / 1000)"  # epoch seconds
DMARC_RANGE = f"day >= ({FROM} / 86400) * 86400 AND day <= {TO}"
DMARC_DOMAIN = "domain IN (${domain:sqlstring})"
LOGS_RANGE = f"ts >= {FROM} AND ts < {TO}"
LOGS_HOST = "host IN (${host:sqlstring})"
LOGS_DOMAIN = "COALESCE(rcpt_domain, '') IN (${domain:sqlstring})"
CLASS_SQL = f"CASE WHEN transport = '{BULK_TRANSPORT}' THEN 'bulk' ELSE 'transactional' END"
# A deferral reason as a group: without "host X[ip] said: ", with the first <address> and the
# first [bracketed] part (an IP, a queue id) masked, cut to something a table can show. SQLite has
# no regular expressions; this catches what varies per recipient in the common replies.
_SAID = ("(CASE WHEN reply LIKE 'host % said: %' THEN substr(reply, instr(reply, ' said: ') + 7) "
         "ELSE COALESCE(reply, '') END)")


def _mask(text: str, opening: str, closing: str) -> str:
    at, end = f"instr({text}, '{opening}')", f"instr(substr({text}, instr({text}, '{opening}')), '{closing}')"
    return (f"(CASE WHEN {at} > 0 AND {end} > 0 THEN substr({text}, 1, {at}) || '…' || "
            f"substr({text}, {at} + {end} - 1) ELSE {text} END)")


REASON_SQL = f"substr({_mask(_mask(_SAID, '<', '>'), '[', ']')}, 1, 120)"
# Units of table columns (Grafana unit ids): epoch-millisecond columns shown as dates.
COLUMN_UNITS = {"first_seen": "dateTimeAsIso", "last_seen": "dateTimeAsIso", "last_report": "dateTimeAsIso",
                "pass_rate": "percent", "deferral_rate": "percent", "p50": "s", "p95": "s", "p99": "s", "max": "s"}
TX_DELAY_THRESHOLD = 60.0  # seconds of ``b`` (active queue) at p95 for transactional mail


def _target(sql: str, columns: list[str], *, uid: dict[str, str], series: bool) -> dict[str, Any]:
    text = " ".join(sql.split())
    return {"refId": "A", "datasource": dict(uid), "queryText": text, "rawQueryText": text,
            "queryType": "time series" if series else "table", "timeColumns": ["time"] if series else [],
            "mailfleetColumns": columns}


def _panel(pid: int, title: str, kind: str, sql: str, columns: list[str], grid: tuple[int, int, int, int], *,
           ds: dict[str, str], description: str, unit: str = "short", stack: bool = False,
           series: bool = False) -> dict[str, Any]:
    x, y, w, h = grid
    defaults: dict[str, Any] = {"unit": unit}
    options: dict[str, Any] = {}
    if kind == "timeseries":
        defaults["custom"] = {"drawStyle": "bars" if stack else "line", "fillOpacity": 70 if stack else 10,
                              "stacking": {"mode": "normal" if stack else "none", "group": "A"},
                              "lineWidth": 1 if stack else 2, "showPoints": "auto"}
        options = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                   "tooltip": {"mode": "multi", "sort": "desc"}}
        series = True
    elif kind == "piechart":
        options = {"pieType": "donut", "legend": {"displayMode": "table", "placement": "right", "showLegend": True,
                                                   "values": ["value", "percent"]},
                   "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": True}}
    elif kind == "stat":
        options = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                   "colorMode": "value", "graphMode": "none", "textMode": "value_and_name", "justifyMode": "auto"}
    elif kind == "table":
        options = {"showHeader": True, "cellHeight": "sm", "footer": {"show": False, "reducer": ["sum"]}}
    overrides = [{"matcher": {"id": "byName", "options": column}, "properties": [{"id": "unit", "value": unit_of}]}
                 for column in columns if (unit_of := COLUMN_UNITS.get(column)) and kind == "table"]
    return {"id": pid, "type": kind, "title": title, "description": description, "datasource": dict(ds),
            "gridPos": {"x": x, "y": y, "w": w, "h": h},
            "fieldConfig": {"defaults": defaults, "overrides": overrides}, "options": options,
            "targets": [_target(sql, columns, uid=ds, series=series)]}


def _variable(name: str, label: str, sql: str, ds: dict[str, str]) -> dict[str, Any]:
    text = " ".join(sql.split())
    # frser answers variable queries through metricFindQuery(query: string): a plain SQL string
    # returning one column.
    return {"name": name, "label": label, "type": "query", "datasource": dict(ds), "query": text,
            "refresh": 2, "includeAll": True, "multi": True, "sort": 1,
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]}, "hide": 0, "options": []}


def _dashboard(uid: str, title: str, description: str, tags: list[str], variables: list[dict[str, Any]],
               panels: list[dict[str, Any]], time_from: str) -> dict[str, Any]:
    return {"uid": uid, "title": title, "description": description, "tags": tags, "editable": True,
            "schemaVersion": SCHEMA_VERSION, "version": 1, "timezone": "utc", "graphTooltip": 1,
            "time": {"from": time_from, "to": "now"}, "refresh": "15m", "fiscalYearStartMonth": 0,
            "templating": {"list": variables}, "annotations": {"list": []}, "links": [], "panels": panels}


def render_dmarc_dashboard() -> dict[str, Any]:
    ds = DMARC_DS
    where = f"WHERE {DMARC_RANGE} AND {DMARC_DOMAIN}"
    p = []
    p.append(_panel(1, "Messages reported", "stat", f"SELECT COALESCE(SUM(count), 0) AS messages FROM record {where}",
                    ["messages"], (0, 0, 6, 4), ds=ds, description="Messages receivers saw from your domains."))
    p.append(_panel(2, "DMARC pass rate", "stat",
                    f"SELECT ROUND(100.0 * SUM(CASE WHEN dmarc_pass THEN count ELSE 0 END) / MAX(SUM(count), 1), 1) "
                    f"AS pass_rate FROM record {where}",
                    ["pass_rate"], (6, 0, 6, 4), ds=ds, unit="percent",
                    description="Share of messages that passed DMARC (aligned DKIM or SPF)."))
    p.append(_panel(3, "Failing sources", "stat",
                    f"SELECT COUNT(DISTINCT source_ip) AS failing_sources FROM record {where} AND NOT dmarc_pass",
                    ["failing_sources"], (12, 0, 6, 4), ds=ds,
                    description="Source IPs with at least one message that failed DMARC."))
    p.append(_panel(4, "Reports", "stat",
                    f"SELECT COUNT(*) AS reports FROM report {where}",
                    ["reports"], (18, 0, 6, 4), ds=ds, description="Aggregate reports received in the range."))
    p.append(_panel(5, "DMARC pass / fail per day", "timeseries",
                    f"SELECT day AS time, SUM(CASE WHEN dmarc_pass THEN count ELSE 0 END) AS pass, "
                    f"SUM(CASE WHEN dmarc_pass THEN 0 ELSE count END) AS fail FROM record {where} "
                    "GROUP BY day ORDER BY day",
                    ["time", "pass", "fail"], (0, 4, 12, 8), ds=ds, stack=True,
                    description="Messages per day (UTC, the middle of each report's range) by DMARC result."))
    p.append(_panel(6, "Pass rate per source IP per day (top 10 sources)", "timeseries",
                    f"WITH top AS (SELECT source_ip FROM record {where} GROUP BY source_ip "
                    "ORDER BY SUM(count) DESC LIMIT 10) "
                    "SELECT day AS time, source_ip, "
                    "ROUND(100.0 * SUM(CASE WHEN dmarc_pass THEN count ELSE 0 END) / SUM(count), 1) AS pass_rate "
                    f"FROM record {where} AND source_ip IN (SELECT source_ip FROM top) "
                    "GROUP BY day, source_ip ORDER BY day, source_ip",
                    ["time", "source_ip", "pass_rate"], (12, 4, 12, 8), ds=ds, unit="percent",
                    description="DMARC pass rate of the ten busiest sending IPs, one line per IP."))
    p.append(_panel(7, "Messages by disposition", "piechart",
                    f"SELECT disposition, SUM(count) AS messages FROM record {where} "
                    "GROUP BY disposition ORDER BY messages DESC",
                    ["disposition", "messages"], (0, 12, 8, 8), ds=ds,
                    description="What receivers did: none (delivered), quarantine, reject."))
    p.append(_panel(8, "DKIM alignment", "piechart",
                    f"SELECT dkim AS result, SUM(count) AS messages FROM record {where} "
                    "GROUP BY dkim ORDER BY messages DESC",
                    ["result", "messages"], (8, 12, 8, 8), ds=ds,
                    description="Policy-evaluated DKIM: pass means a valid signature aligned with the From domain."))
    p.append(_panel(9, "SPF alignment", "piechart",
                    f"SELECT spf AS result, SUM(count) AS messages FROM record {where} "
                    "GROUP BY spf ORDER BY messages DESC",
                    ["result", "messages"], (16, 12, 8, 8), ds=ds,
                    description="Policy-evaluated SPF: pass means SPF passed for a domain aligned with From."))
    p.append(_panel(10, "By reporting organisation", "table",
                    "SELECT r.org_name AS reporter, COUNT(DISTINCT r.id) AS reports, SUM(c.count) AS messages, "
                    "SUM(CASE WHEN c.dmarc_pass THEN c.count ELSE 0 END) AS pass, "
                    "SUM(CASE WHEN c.dmarc_pass THEN 0 ELSE c.count END) AS fail, "
                    "ROUND(100.0 * SUM(CASE WHEN c.dmarc_pass THEN c.count ELSE 0 END) / SUM(c.count), 1) AS pass_rate "
                    f"FROM report r JOIN record c ON c.report_pk = r.id WHERE {DMARC_RANGE.replace('day', 'r.day')} "
                    f"AND r.{DMARC_DOMAIN} "
                    "GROUP BY r.org_name ORDER BY messages DESC",
                    ["reporter", "reports", "messages", "pass", "fail", "pass_rate"], (0, 20, 12, 8), ds=ds,
                    description="Who sent reports, and what they saw."))
    p.append(_panel(11, "By domain", "table",
                    "SELECT domain, SUM(count) AS messages, SUM(CASE WHEN dmarc_pass THEN count ELSE 0 END) AS pass, "
                    "SUM(CASE WHEN dmarc_pass THEN 0 ELSE count END) AS fail, "
                    "ROUND(100.0 * SUM(CASE WHEN dmarc_pass THEN count ELSE 0 END) / SUM(count), 1) AS pass_rate, "
                    "COUNT(DISTINCT source_ip) AS sources "
                    f"FROM record {where} GROUP BY domain ORDER BY messages DESC",
                    ["domain", "messages", "pass", "fail", "pass_rate", "sources"], (12, 20, 12, 8), ds=ds,
                    description="DMARC compliance per policy domain."))
    p.append(_panel(12, "Sources", "table",
                    "SELECT source_ip, COALESCE((SELECT ptr FROM ip_info WHERE ip = source_ip), '') AS ptr, "
                    "SUM(count) AS messages, SUM(CASE WHEN dmarc_pass THEN 0 ELSE count END) AS fail, "
                    "ROUND(100.0 * SUM(CASE WHEN dmarc_pass THEN count ELSE 0 END) / SUM(count), 1) AS pass_rate, "
                    "GROUP_CONCAT(DISTINCT domain) AS domains "
                    f"FROM record {where} GROUP BY source_ip ORDER BY messages DESC LIMIT 200",
                    ["source_ip", "ptr", "messages", "fail", "pass_rate", "domains"], (0, 28, 24, 8), ds=ds,
                    description="Every sending IP with its reverse DNS (from dmarc.enrich) and DMARC result."))
    p.append(_panel(13, "New failing sources", "table",
                    "SELECT source_ip, domain, MIN(day) * 1000 AS first_seen, SUM(count) AS messages, "
                    "SUM(CASE WHEN dmarc_pass THEN 0 ELSE count END) AS fail "
                    f"FROM record {where} AND NOT dmarc_pass AND NOT EXISTS ("
                    "SELECT 1 FROM record old WHERE old.source_ip = record.source_ip "
                    f"AND old.domain = record.domain AND old.day < ({FROM} / 86400) * 86400) "
                    "GROUP BY source_ip, domain ORDER BY fail DESC",
                    ["source_ip", "domain", "first_seen", "messages", "fail"], (0, 36, 12, 8), ds=ds,
                    description="Sources failing DMARC that were never seen for the domain before the range: "
                                "a new service sending as you, or a spoofer. first_seen is epoch milliseconds."))
    p.append(_panel(14, "Published policies", "table",
                    "SELECT domain, p, sp, pct, adkim, aspf, COUNT(*) AS reports, MAX(day) * 1000 AS last_report "
                    f"FROM report {where} GROUP BY domain, p, sp, pct, adkim, aspf ORDER BY domain, last_report DESC",
                    ["domain", "p", "sp", "pct", "adkim", "aspf", "reports", "last_report"], (12, 36, 12, 8), ds=ds,
                    description="The DMARC record receivers found, as they reported it: a change shows as a new row."))
    variables = [_variable("domain", "Domain", "SELECT DISTINCT domain FROM report ORDER BY domain", ds)]
    return _dashboard("mailfleet-dmarc", "Mailfleet · DMARC", "DMARC aggregate reports (mailfleet dmarc store)",
                      ["mailfleet", "dmarc"], variables, p, "now-30d")


def render_mailflow_dashboard() -> dict[str, Any]:
    ds = LOGS_DS
    dwhere = f"WHERE {LOGS_RANGE} AND {LOGS_HOST} AND {LOGS_DOMAIN}"
    rdomain = "COALESCE(lower(substr(rcpt, instr(rcpt, '@') + 1)), '')"
    rwhere = (f"WHERE {LOGS_RANGE} AND {LOGS_HOST} AND action IN ('reject', 'milter-reject') "
              f"AND (rcpt IS NULL OR {rdomain} IN (${{domain:sqlstring}}))")
    outcome = ("SUM(status = 'sent') AS delivered, SUM(status = 'deferred') AS deferred, "
               "SUM(status = 'bounced') AS bounced")
    p = []
    p.append(_panel(1, "Outcomes", "stat",
                    f"SELECT d.delivered, d.deferred, d.bounced, r.rejected FROM "
                    f"(SELECT {outcome} FROM deliveries {dwhere}) d, "
                    f"(SELECT COUNT(*) AS rejected FROM rejects {rwhere}) r",
                    ["delivered", "deferred", "bounced", "rejected"], (0, 0, 24, 4), ds=ds,
                    description="Delivery attempts by status, and refused transactions (reject, milter-reject)."))
    p.append(_panel(2, "Delivered / deferred / bounced / rejected per day", "timeseries",
                    "SELECT time, SUM(delivered) AS delivered, SUM(deferred) AS deferred, SUM(bounced) AS bounced, "
                    "SUM(rejected) AS rejected FROM ("
                    f"SELECT CAST(ts / 86400 AS INTEGER) * 86400 AS time, {outcome}, 0 AS rejected "
                    f"FROM deliveries {dwhere} GROUP BY 1 UNION ALL "
                    "SELECT CAST(ts / 86400 AS INTEGER) * 86400 AS time, 0, 0, 0, COUNT(*) "
                    f"FROM rejects {rwhere} GROUP BY 1) GROUP BY time ORDER BY time",
                    ["time", "delivered", "deferred", "bounced", "rejected"], (0, 4, 24, 8), ds=ds, stack=True,
                    description="Per UTC day, all selected hosts and recipient domains."))
    p.append(_panel(3, "Per host and day", "table",
                    "SELECT day, host, SUM(delivered) AS delivered, SUM(deferred) AS deferred, "
                    "SUM(bounced) AS bounced, SUM(rejected) AS rejected FROM ("
                    f"SELECT date(ts, 'unixepoch') AS day, host, {outcome}, 0 AS rejected "
                    f"FROM deliveries {dwhere} GROUP BY 1, 2 UNION ALL "
                    "SELECT date(ts, 'unixepoch'), host, 0, 0, 0, COUNT(*) "
                    f"FROM rejects {rwhere} GROUP BY 1, 2) GROUP BY day, host ORDER BY day DESC, host",
                    ["day", "host", "delivered", "deferred", "bounced", "rejected"], (0, 12, 12, 9), ds=ds,
                    description="Delivery attempts by status per fleet host and UTC day."))
    p.append(_panel(4, "Per recipient domain", "table",
                    f"SELECT COALESCE(rcpt_domain, '') AS domain, {outcome}, "
                    "ROUND(100.0 * SUM(status = 'deferred') / COUNT(*), 1) AS deferral_rate "
                    f"FROM deliveries {dwhere} GROUP BY 1 ORDER BY COUNT(*) DESC LIMIT 100",
                    ["domain", "delivered", "deferred", "bounced", "deferral_rate"], (12, 12, 12, 9), ds=ds,
                    description="Where mail goes, and which destinations push back."))
    p.append(_panel(5, "Top deferral reasons", "table",
                    f"SELECT {REASON_SQL} AS reason, COUNT(*) AS attempts, COUNT(DISTINCT message_id) AS messages, "
                    "GROUP_CONCAT(DISTINCT host) AS hosts, MAX(ts) * 1000 AS last_seen "
                    f"FROM deliveries {dwhere} AND status = 'deferred' GROUP BY 1 ORDER BY attempts DESC LIMIT 15",
                    ["reason", "attempts", "messages", "hosts", "last_seen"], (0, 21, 24, 8), ds=ds,
                    description="The remote server's words (without 'host X said:'), most frequent first."))
    pct = ("SELECT {key}, COUNT(*) AS deliveries, "
           "MIN(CASE WHEN rn >= 0.50 * n THEN b END) AS p50, MIN(CASE WHEN rn >= 0.95 * n THEN b END) AS p95, "
           "MIN(CASE WHEN rn >= 0.99 * n THEN b END) AS p99, MAX(b) AS max FROM ("
           "SELECT {key}, b, ROW_NUMBER() OVER (PARTITION BY {key} ORDER BY b) AS rn, "
           "COUNT(*) OVER (PARTITION BY {key}) AS n FROM (SELECT {inner} FROM deliveries "
           f"{dwhere} AND b IS NOT NULL AND COALESCE(relay, '') != 'none')) GROUP BY {{key}} ORDER BY {{key}}")
    p.append(_panel(6, "Queue delay per transport (b: seconds in the active queue)", "table",
                    pct.replace("{key}", "transport").replace("{inner}", "COALESCE(transport, '') AS transport, b"),
                    ["transport", "deliveries", "p50", "p95", "p99", "max"], (0, 29, 12, 8), ds=ds, unit="s",
                    description="The b of delays=a/b/c/d: waiting for a delivery agent. A high p95 on a "
                                "transactional transport while bulk is busy means bulk starves it."))
    p.append(_panel(7, "Bulk vs transactional", "piechart",
                    f"SELECT {CLASS_SQL} AS class, COUNT(*) AS deliveries FROM deliveries {dwhere} "
                    "GROUP BY 1 ORDER BY 1",
                    ["class", "deliveries"], (12, 29, 12, 8), ds=ds,
                    description=f"Delivery attempts on the '{BULK_TRANSPORT}' transport vs every other transport."))
    p.append(_panel(8, "Bulk vs transactional per day", "timeseries",
                    f"SELECT CAST(ts / 86400 AS INTEGER) * 86400 AS time, SUM(transport = '{BULK_TRANSPORT}') AS bulk, "
                    f"SUM(COALESCE(transport, '') != '{BULK_TRANSPORT}') AS transactional "
                    f"FROM deliveries {dwhere} GROUP BY 1 ORDER BY 1",
                    ["time", "bulk", "transactional"], (0, 37, 12, 8), ds=ds, stack=True,
                    description="Delivery attempts per UTC day by class."))
    p.append(_panel(9, "Queue delay p95 by class per day", "timeseries",
                    "SELECT time, class, MIN(CASE WHEN rn >= 0.95 * n THEN b END) AS p95 FROM ("
                    "SELECT time, class, b, ROW_NUMBER() OVER (PARTITION BY time, class ORDER BY b) AS rn, "
                    "COUNT(*) OVER (PARTITION BY time, class) AS n FROM ("
                    f"SELECT CAST(ts / 86400 AS INTEGER) * 86400 AS time, {CLASS_SQL} AS class, b FROM deliveries "
                    f"{dwhere} AND b IS NOT NULL AND COALESCE(relay, '') != 'none')) "
                    "GROUP BY time, class ORDER BY time, class",
                    ["time", "class", "p95"], (12, 37, 12, 8), ds=ds, unit="s",
                    description=f"Alert fires when transactional p95 exceeds {TX_DELAY_THRESHOLD:g} s."))
    variables = [_variable("host", "Host", "SELECT DISTINCT host FROM deliveries ORDER BY host", ds),
                 _variable("domain", "Recipient domain",
                           "SELECT DISTINCT COALESCE(rcpt_domain, '') FROM deliveries ORDER BY 1", ds)]
    return _dashboard("mailfleet-mailflow", "Mailfleet · Mail flow", "Postfix deliveries across the fleet "
                      "(mailfleet logs store)", ["mailfleet", "postfix"], variables, p, "now-7d")


# Alert queries: one number each; the rule fires when it is above the threshold.
ALERT_NEW_FAILING_SQL = " ".join(f"""
    SELECT COUNT(*) AS new_failing FROM (SELECT source_ip, domain FROM record
    WHERE day >= ({FROM} / 86400) * 86400 AND NOT dmarc_pass AND NOT EXISTS (
        SELECT 1 FROM record old WHERE old.source_ip = record.source_ip AND old.domain = record.domain
        AND old.day < ({FROM} / 86400) * 86400)
    GROUP BY source_ip, domain)""".split())
ALERT_TX_DELAY_SQL = " ".join(f"""
    SELECT COALESCE(MIN(CASE WHEN rn >= 0.95 * n THEN b END), 0) AS p95 FROM (
        SELECT b, ROW_NUMBER() OVER (ORDER BY b) AS rn, COUNT(*) OVER () AS n FROM deliveries
        WHERE ts >= {FROM} AND ts < {TO} AND b IS NOT NULL AND COALESCE(relay, '') != 'none'
        AND COALESCE(transport, '') != '{BULK_TRANSPORT}')""".split())


def render_dashboards() -> dict[str, dict[str, Any]]:
    """File name -> dashboard."""
    return {"dmarc.json": render_dmarc_dashboard(), "mailflow.json": render_mailflow_dashboard()}


def render_dashboard_json(dashboard: dict[str, Any]) -> str:
    return json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":  # pragma: no cover - regenerates the committed JSON
    import pathlib

    target = pathlib.Path(__file__).with_name("dashboards")
    for name, board in render_dashboards().items():
        (target / name).write_text(render_dashboard_json(board), encoding="utf-8")
        print(f"wrote {target / name}")
