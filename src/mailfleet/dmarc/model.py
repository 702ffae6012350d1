"""Data shapes of DMARC aggregate reports and SMTP TLS reports, and the caps on untrusted input.

Everything here is plain data: the parsers build it, the store saves it, the CLI prints it.
Times are integer UTC epoch seconds, never datetimes in local time (parsedmarc's begin_date
followed the host's time zone, so two hosts disagreed about the same report).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import NamedTuple

SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class Limits:
    """Caps on one input file. Reports come from anyone on the internet, so every stage is bounded.

    ``max_input_bytes`` bounds what is read from the file itself (compressed size);
    ``max_decompressed_bytes`` bounds the total bytes produced by decompression across every
    member and nesting level of that file, counted while streaming, never trusting headers.
    """

    max_input_bytes: int = 64 * 1024 * 1024
    max_decompressed_bytes: int = 128 * 1024 * 1024
    max_zip_members: int = 32
    max_records: int = 1_000_000
    max_nesting: int = 3
    max_email_parts: int = 64
    max_warnings: int = 50
    max_bytes_between_records: int = 1024 * 1024
    max_email_bytes: int = 32 * 1024 * 1024

    def __post_init__(self) -> None:
        for name in ("max_input_bytes", "max_decompressed_bytes", "max_zip_members", "max_records",
                     "max_nesting", "max_email_parts", "max_warnings", "max_bytes_between_records", "max_email_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"limit {name} is {value!r}; it must be a positive integer")


class Rejected(Exception):
    """An input is not a report, or breaks a cap. Carries the reason shown to the user and
    written next to the quarantined file."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Unsafe(Rejected):
    """The whole input is refused, not just one report in it: a cap is exceeded or the content is
    hostile (a DTD, a bomb). Nothing from such a file is stored."""


class DkimResult(NamedTuple):
    domain: str
    selector: str
    result: str


class SpfResult(NamedTuple):
    domain: str
    scope: str
    result: str


class Record(NamedTuple):
    """One ``<record>``: a source IP and how many of its messages got which verdict.

    A NamedTuple rather than a frozen dataclass: just as immutable, and several times cheaper to
    build, which matters at tens of thousands of records per second.

    ``dkim``/``spf`` are the policy-evaluated (DMARC-aligned) results, lower case; the
    ``auth_results`` (raw, unaligned) are kept in ``dkim_results``/``spf_results``.
    """

    source_ip: str
    count: int
    disposition: str
    dkim: str
    spf: str
    header_from: str
    envelope_from: str = ""
    envelope_to: str = ""
    reasons: tuple[tuple[str, str], ...] = ()
    dkim_results: tuple[DkimResult, ...] = ()
    spf_results: tuple[SpfResult, ...] = ()

    @property
    def dmarc_pass(self) -> bool:
        """DMARC passes when either aligned identifier passes (RFC 7489 section 6.6.2)."""
        return self.dkim == "pass" or self.spf == "pass"


@dataclass(frozen=True)
class Policy:
    """``<policy_published>``; missing ``sp`` defaults to ``p``, missing alignment to relaxed."""

    domain: str
    p: str = ""
    sp: str = ""
    np: str = ""
    adkim: str = "r"
    aspf: str = "r"
    pct: int | None = None
    fo: str = ""
    testing: str = ""
    discovery_method: str = ""


@dataclass(frozen=True)
class ReportMeta:
    """Everything about a report except its records. The natural key is
    (org_name, report_id, domain, begin, end); report ids alone collide across days and orgs."""

    org_name: str
    org_email: str
    report_id: str
    begin: int
    end: int
    policy: Policy
    schema: str = "draft"
    namespace: str = ""
    extra_contact_info: str = ""
    generator: str = ""
    errors: tuple[str, ...] = ()

    @property
    def domain(self) -> str:
        return self.policy.domain

    @property
    def natural_key(self) -> tuple[str, str, str, int, int]:
        return (self.org_name, self.report_id, self.domain, self.begin, self.end)

    @property
    def day(self) -> int:
        """The UTC day (epoch of 00:00 UTC) a report's figures count for: the day of the middle
        of its range, so a 08:00-to-08:00 report counts for its first day and a 22:00-to-22:00
        one for its second. Reports spanning several days are not pro-rated."""
        middle = self.begin + max(0, self.end - self.begin) // 2
        return middle - middle % SECONDS_PER_DAY


@dataclass(frozen=True)
class AggregateReport:
    meta: ReportMeta
    records: tuple[Record, ...]
    warnings: tuple[str, ...] = ()
    content_sha256: str = ""
    source: str = ""


@dataclass(frozen=True)
class TlsFailure:
    result_type: str
    sending_mta_ip: str
    receiving_mx_hostname: str
    receiving_ip: str
    failed_session_count: int
    additional_information: str = ""
    failure_reason_code: str = ""


@dataclass(frozen=True)
class TlsPolicy:
    policy_type: str
    policy_domain: str
    mx_hosts: tuple[str, ...]
    successful_sessions: int
    failed_sessions: int
    failures: tuple[TlsFailure, ...] = ()


@dataclass(frozen=True)
class TlsReport:
    """An SMTP TLS report (RFC 8460). Natural key (org_name, report_id, begin, end)."""

    org_name: str
    report_id: str
    begin: int
    end: int
    contact_info: str
    policies: tuple[TlsPolicy, ...]
    warnings: tuple[str, ...] = ()
    content_sha256: str = ""
    source: str = ""


@dataclass(frozen=True)
class FileError:
    file: str
    reason: str


@dataclass
class ParseOutcome:
    """What one input file produced: its reports, or why it was rejected."""

    file: str
    reports: list[AggregateReport] = field(default_factory=list)
    tls_reports: list[TlsReport] = field(default_factory=list)
    error: str = ""
    warnings: list[str] = field(default_factory=list)


def iso_utc(epoch: int) -> str:
    """ISO 8601 in UTC with a ``Z``, as the command-line contract promises."""
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
