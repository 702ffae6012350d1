"""Parse one input (any container) into whole reports in memory: what ``dmarc.parse`` prints.

Ingest does not use this (it streams records into SQLite); the decisions are the same: a
payload that is not a report is skipped when the input holds others, an ``Unsafe`` input is
refused whole, and an input that yields nothing is rejected with the first reason found.
"""

from __future__ import annotations

from typing import BinaryIO

from mailfleet.dmarc.extract import iter_payloads
from mailfleet.dmarc.model import AggregateReport, Limits, ParseOutcome, Rejected, TlsReport, Unsafe, iso_utc
from mailfleet.dmarc.parse_aggregate import parse_aggregate
from mailfleet.dmarc.parse_tlsrpt import parse_tlsrpt


def parse_input(name: str, source: BinaryIO | bytes, limits: Limits | None = None) -> ParseOutcome:
    limits = limits or Limits()
    outcome = ParseOutcome(file=name)
    skipped: list[str] = []
    try:
        for payload in iter_payloads(name, source, limits):
            try:
                if payload.kind == "aggregate":
                    outcome.reports.append(parse_aggregate(payload.chunks, payload.name, limits))
                else:
                    outcome.tls_reports.append(parse_tlsrpt(payload.chunks, payload.name, limits))
            except Unsafe:
                raise
            except Rejected as exc:
                skipped.append(exc.reason)
    except Unsafe as exc:
        outcome = ParseOutcome(file=name, error=exc.reason)
    except Rejected as exc:
        if not outcome.reports and not outcome.tls_reports:
            outcome.error = exc.reason
    else:
        if not outcome.reports and not outcome.tls_reports:
            outcome.error = skipped[0] if skipped else "no report found in it"
        else:
            outcome.warnings.extend(skipped)
    outcome.error = outcome.error.removeprefix(f"{name}: ")
    return outcome


def report_to_json(report: AggregateReport) -> dict[str, object]:
    """The ``dmarc.parse --json`` shape of one aggregate report (the contract in DESIGN.md),
    plus additive fields (schema, policy, warnings, sha256)."""
    meta = report.meta
    return {
        "org_name": meta.org_name,
        "report_id": meta.report_id,
        "domain": meta.domain,
        "begin": iso_utc(meta.begin),
        "end": iso_utc(meta.end),
        "records": [
            {"source_ip": r.source_ip, "count": r.count, "disposition": r.disposition, "dkim": r.dkim,
             "spf": r.spf, "header_from": r.header_from}
            for r in report.records
        ],
        "org_email": meta.org_email,
        "schema": meta.schema,
        "policy": {"p": meta.policy.p, "sp": meta.policy.sp, "np": meta.policy.np, "adkim": meta.policy.adkim,
                   "aspf": meta.policy.aspf, "pct": meta.policy.pct, "testing": meta.policy.testing},
        "messages": sum(r.count for r in report.records),
        "warnings": list(report.warnings),
        "sha256": report.content_sha256,
        "file": report.source,
    }


def tls_report_to_json(report: TlsReport) -> dict[str, object]:
    return {
        "org_name": report.org_name,
        "report_id": report.report_id,
        "begin": iso_utc(report.begin),
        "end": iso_utc(report.end),
        "policies": [
            {"policy_type": p.policy_type, "policy_domain": p.policy_domain, "mx_hosts": list(p.mx_hosts),
             "successful_sessions": p.successful_sessions, "failed_sessions": p.failed_sessions,
             "failures": [{"result_type": f.result_type, "sending_mta_ip": f.sending_mta_ip,
                           "receiving_mx_hostname": f.receiving_mx_hostname, "receiving_ip": f.receiving_ip,
                           "failed_session_count": f.failed_session_count} for f in p.failures]}
            for p in report.policies
        ],
        "warnings": list(report.warnings),
        "file": report.source,
    }
