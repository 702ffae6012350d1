"""Parse SMTP TLS reports (RFC 8460): JSON, usually gzip-compressed (``.json.gz``).

The JSON arrives already bounded by the extraction caps. Lenient like the aggregate parser:
a policy or failure detail that cannot be read is skipped with a warning; a report without its
identifying fields (organization, report id, date range) is rejected.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from mailfleet.dmarc.model import Limits, Rejected, TlsFailure, TlsPolicy, TlsReport


def parse_tlsrpt(chunks: Iterable[bytes], source: str = "", limits: Limits | None = None) -> TlsReport:
    limits = limits or Limits()
    data = b"".join(chunks)
    digest = hashlib.sha256(data).hexdigest()
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise Rejected(f"{source}: not valid JSON, so not an SMTP TLS report ({exc})") from None
    if not isinstance(doc, dict):
        raise Rejected(f"{source}: the JSON is not an object, so not an SMTP TLS report")
    warnings: list[str] = []
    org = _str(doc.get("organization-name"))
    report_id = _str(doc.get("report-id"))
    date_range = doc.get("date-range") if isinstance(doc.get("date-range"), dict) else {}
    begin = _epoch(date_range.get("start-datetime"))
    end = _epoch(date_range.get("end-datetime"))
    missing = [name for name, value in (("organization-name", org), ("report-id", report_id),
                                        ("date-range/start-datetime", begin), ("date-range/end-datetime", end))
               if value in ("", None)]
    if missing:
        raise Rejected(f"{source}: SMTP TLS report lacks {', '.join(missing)}; it cannot be identified or stored")
    policies: list[TlsPolicy] = []
    raw_policies = doc.get("policies") if isinstance(doc.get("policies"), list) else []
    for index, entry in enumerate(raw_policies, 1):
        try:
            policies.append(_policy(entry, warnings, limits))
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            _warn(warnings, limits, f"policy {index} skipped: {exc}")
    assert begin is not None and end is not None
    return TlsReport(org, report_id, begin, end, _str(doc.get("contact-info")), tuple(policies),
                     tuple(warnings), digest, source)


def _policy(entry: Any, warnings: list[str], limits: Limits) -> TlsPolicy:
    policy = entry["policy"]
    summary = entry.get("summary") or {}
    failures: list[TlsFailure] = []
    for index, detail in enumerate(entry.get("failure-details") or [], 1):
        if not isinstance(detail, dict):
            _warn(warnings, limits, f"failure detail {index} skipped: not an object")
            continue
        failures.append(TlsFailure(
            result_type=_str(detail.get("result-type")).lower(),
            sending_mta_ip=_str(detail.get("sending-mta-ip")),
            receiving_mx_hostname=_str(detail.get("receiving-mx-hostname")).lower().rstrip("."),
            receiving_ip=_str(detail.get("receiving-ip")),
            failed_session_count=_int(detail.get("failed-session-count")),
            additional_information=_str(detail.get("additional-information")),
            failure_reason_code=_str(detail.get("failure-reason-code"))))
    mx = policy.get("mx-host")
    mx_hosts = tuple(_str(m) for m in mx) if isinstance(mx, list) else ((_str(mx),) if mx else ())
    return TlsPolicy(
        policy_type=_str(policy.get("policy-type")).lower(),
        policy_domain=_str(policy.get("policy-domain")).lower().rstrip("."),
        mx_hosts=mx_hosts,
        successful_sessions=_int(summary.get("total-successful-session-count")),
        failed_sessions=_int(summary.get("total-failure-session-count")),
        failures=tuple(failures))


def _warn(warnings: list[str], limits: Limits, text: str) -> None:
    if len(warnings) < limits.max_warnings:
        warnings.append(text)


def _str(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ("" if value is None else str(value))


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a session count")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if value is None:
        return 0
    raise ValueError(f"{value!r} is not a session count")


def _epoch(value: Any) -> int | None:
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None  # RFC 8460 mandates UTC with an offset; guessing would shift whole days
    return int(moment.timestamp())
