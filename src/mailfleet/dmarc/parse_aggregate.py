"""Parse DMARC aggregate reports (RFC 7489, the old draft, RFC 9990 with or without namespace).

Streaming and bounded: chunks are fed to lxml's pull parser and each ``<record>`` is turned into
a ``Record`` and dropped from the tree as soon as it closes, so memory stays flat however many
records a report has (parsedmarc holds the whole document as dicts, about 13 times its size).

Safe: a DOCTYPE or ENTITY declaration anywhere rejects the report (no billion laughs, no external
entities); the parser itself is built with entities unresolved, no network, no DTD loading and
libxml2's default depth limit (``huge_tree`` off), which stops a 10,000-level nesting at 256.

Lenient where senders are sloppy, strict where it matters: C0 control characters (Yahoo's BEL)
are dropped, broken markup is recovered, results are lower-cased, ``sp`` defaults to ``p``,
unknown result words (``hardfail``) are kept as written. A record without a usable source IP or
count is skipped with a warning; a report without the natural-key fields (org, report id, domain,
date range) is rejected, since it could not be deduplicated.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterable

from lxml import etree

from mailfleet.dmarc.model import (
    AggregateReport,
    DkimResult,
    Limits,
    Policy,
    Record,
    Rejected,
    ReportMeta,
    SpfResult,
    Unsafe,
)

DMARC2_NAMESPACE = "urn:ietf:params:xml:ns:dmarc-2.0"
_CONTROL = bytes(c for c in range(32) if c not in (9, 10, 13)) + b"\x7f"
_FORBIDDEN = (b"<!DOCTYPE", b"<!ENTITY", b"<!doctype", b"<!entity")
_SLICE = 256 * 1024
_TRAILING_LINE = re.compile(r"\s+line \d+$")
_TAGS = ("{*}record", "{*}report_metadata", "{*}policy_published", "{*}version")
_IPV4 = re.compile(r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)")
_RFC9990_ONLY = ("testing", "discovery_method", "generator")


_LOCAL_NAMES: dict[object, str] = {}


def _local(tag: object) -> str:
    """The tag without its namespace (RFC 9990 reports are namespaced, older ones not); cached,
    since a report repeats the same dozen tags thousands of times."""
    name = _LOCAL_NAMES.get(tag)
    if name is None:
        name = tag[tag.rfind("}") + 1:] if isinstance(tag, str) else ""  # "" for comments
        if len(_LOCAL_NAMES) < 10_000:
            _LOCAL_NAMES[tag] = name
    return name


def _text(el: etree._Element) -> str:
    text = el.text
    return text.strip() if text else ""


def _children(el: etree._Element) -> dict[str, str]:
    out: dict[str, str] = {}
    for child in el:
        name = _local(child.tag)
        if name and name not in out:
            out[name] = _text(child)
    return out


class AggregateParser:
    """Feed bytes, get records back as they complete; ``close()`` returns the report's metadata.

    Records arrive before the report is known to be whole, so a caller that stores them must do
    so inside a transaction it can roll back when ``close()`` raises ``Rejected``."""

    def __init__(self, source: str = "", limits: Limits | None = None) -> None:
        self.source = source
        self.limits = limits or Limits()
        self._parser = etree.XMLPullParser(
            events=("end",), tag=_TAGS, recover=True, resolve_entities=False,
            no_network=True, huge_tree=False, load_dtd=False, remove_comments=True, remove_pis=True,
            remove_blank_text=True, collect_ids=False)
        self._hash = hashlib.sha256()
        self._tail = b""
        self._records = 0
        self._skipped = 0
        self._messages = 0
        self._warnings: list[str] = []
        self._metadata: dict[str, str] | None = None
        self._errors: list[str] = []
        self._policy: dict[str, str] | None = None
        self._version = ""
        self._namespace = ""
        self._root_seen = False
        self._ips: dict[str, str] = {}
        self._events = 0
        self._gap = 0

    # -- feeding -------------------------------------------------------------------------------
    def feed(self, chunk: bytes) -> list[Record]:
        """Parse more bytes; return the records they completed. Big chunks are fed in slices so
        the between-records cap is checked before junk can pile up in memory."""
        if len(chunk) <= _SLICE:
            return self._feed(chunk)
        records: list[Record] = []
        for start in range(0, len(chunk), _SLICE):
            records.extend(self._feed(chunk[start:start + _SLICE]))
        return records

    def _feed(self, chunk: bytes) -> list[Record]:
        self._hash.update(chunk)
        window = self._tail + chunk[:16]
        for marker in _FORBIDDEN:
            if marker in chunk or marker in window:
                raise Unsafe(f"{self.source}: the XML declares a DOCTYPE or ENTITY; reports never need one "
                             "and it is how entity-expansion and external-entity attacks work")
        self._tail = chunk[-16:]
        clean = chunk.translate(None, _CONTROL)
        if len(clean) != len(chunk) and len(self._warnings) < self.limits.max_warnings:
            if "control characters removed from the XML" not in self._warnings:
                self._warnings.append("control characters removed from the XML")
        try:
            self._parser.feed(clean)
        except etree.XMLSyntaxError as exc:
            raise Rejected(f"{self.source}: unreadable XML ({exc})") from None
        events = self._events
        records = self._drain()
        if self._events == events:
            self._gap += len(chunk)
            if self._gap > self.limits.max_bytes_between_records:
                raise Unsafe(f"{self.source}: {self._gap} bytes of XML without a complete record or header; "
                             f"over the cap of {self.limits.max_bytes_between_records} (junk or an attack)")
        else:
            self._gap = len(chunk)
        return records

    def close(self) -> tuple[ReportMeta, tuple[str, ...], str, int]:
        """Finish; return (metadata, warnings, sha256 of the XML, message count)."""
        try:
            root = self._parser.close()
        except etree.XMLSyntaxError as exc:
            if not self._root_seen:
                raise Rejected(f"{self.source}: not an XML report ({exc})") from None
            self._warn(f"XML damaged near the end: {exc}")
            root = None
        if root is not None and not self._root_seen and _local(root.tag) != "feedback":
            raise Rejected(f"{self.source}: not a DMARC aggregate report (the root element is "
                           f"<{_local(root.tag)}>, not <feedback>)")
        leftovers = self._drain()
        if leftovers:
            raise AssertionError("records after close")  # the caller drained every feed
        for entry in list(self._parser.feed_error_log)[: self.limits.max_warnings]:
            message = f"line {entry.line}: {_error_text(entry.message)}"
            if "Excessive depth" in entry.message or "XML_PARSE_HUGE" in entry.message:
                raise Unsafe(f"{self.source}: XML nested too deeply ({message})")
            self._warn(f"recovered from broken XML at {message}")
        meta = self._build_meta()
        return meta, tuple(self._warnings), self._hash.hexdigest(), self._messages

    @property
    def record_count(self) -> int:
        return self._records

    @property
    def early_meta(self) -> ReportMeta | None:
        """The metadata once both header sections have been read, to skip a duplicate early."""
        if self._metadata is None or self._policy is None:
            return None
        try:
            return self._build_meta()
        except Rejected:
            return None

    # -- internals -----------------------------------------------------------------------------
    def _warn(self, text: str) -> None:
        if len(self._warnings) < self.limits.max_warnings:
            self._warnings.append(text)
        elif len(self._warnings) == self.limits.max_warnings:
            self._warnings.append("further warnings suppressed")

    def _drain(self) -> list[Record]:
        out: list[Record] = []
        for _event, el in self._parser.read_events():
            self._events += 1
            name = _local(el.tag)
            if not self._root_seen:
                self._check_root(el)
            if name == "record":
                record = self._record(el)
                if record is not None:
                    out.append(record)
                    self._records += 1
                    self._messages += record.count
                    if self._records > self.limits.max_records:
                        raise Unsafe(f"{self.source}: more than {self.limits.max_records} records, over the cap")
                el.clear(keep_tail=False)
                parent = el.getparent()
                if parent is not None:
                    while el.getprevious() is not None:
                        del parent[0]
            elif name == "report_metadata":
                self._metadata = self._read_metadata(el)
            elif name == "policy_published":
                self._policy = _children(el)
            elif name == "version":
                self._version = _text(el)
        return out

    def _check_root(self, el: etree._Element) -> None:
        root = el
        while root.getparent() is not None:
            root = root.getparent()
        if _local(root.tag) != "feedback":
            raise Rejected(f"{self.source}: not a DMARC aggregate report (the root element is "
                           f"<{_local(root.tag)}>, not <feedback>)")
        tag = el.tag
        self._namespace = tag[1:tag.index("}")] if tag.startswith("{") else ""
        self._root_seen = True

    def _read_metadata(self, el: etree._Element) -> dict[str, str]:
        out: dict[str, str] = {}
        for child in el:
            name = _local(child.tag)
            if name == "date_range":
                for part in child:
                    out[_local(part.tag)] = _text(part)
            elif name == "error":
                if len(self._errors) < self.limits.max_warnings:
                    self._errors.append(_text(child))
            elif name and name not in out:
                out[name] = _text(child)
        return out

    def _record(self, el: etree._Element) -> Record | None:
        # The hot loop: written flat, with local lookups, because it runs once per record.
        local = _LOCAL_NAMES.get
        ip = count_text = disposition = dkim = spf = ""
        header_from = envelope_from = envelope_to = ""
        reasons: list[tuple[str, str]] = []
        dkims: list[DkimResult] = []
        spfs: list[SpfResult] = []
        for part in el:
            name = local(part.tag) or _local(part.tag)
            if name == "row":
                for item in part:
                    iname = local(item.tag) or _local(item.tag)
                    if iname == "policy_evaluated":
                        for pe in item:
                            pname = local(pe.tag) or _local(pe.tag)
                            text = pe.text
                            if pname == "disposition":
                                disposition = text.strip().lower() if text else ""
                            elif pname == "dkim":
                                dkim = text.strip().lower() if text else ""
                            elif pname == "spf":
                                spf = text.strip().lower() if text else ""
                            elif pname == "reason":
                                fields = _children(pe)
                                reasons.append((fields.get("type", "").lower(), fields.get("comment", "")))
                    elif iname == "source_ip":
                        text = item.text
                        ip = text.strip() if text else ""
                    elif iname == "count":
                        text = item.text
                        count_text = text.strip() if text else ""
            elif name == "auth_results":
                for item in part:
                    iname = local(item.tag) or _local(item.tag)
                    domain = selector = result = ""
                    for field_el in item:
                        fname = local(field_el.tag) or _local(field_el.tag)
                        text = field_el.text
                        if fname == "domain":
                            domain = text.strip().lower() if text else ""
                        elif fname == "result":
                            result = text.strip().lower() if text else ""
                        elif fname == "selector" or fname == "scope":
                            selector = text.strip() if text else ""
                    if iname == "dkim":
                        dkims.append(DkimResult(domain, selector, result))
                    elif iname == "spf":
                        spfs.append(SpfResult(domain, selector.lower() or "mfrom", result))
            elif name == "identifiers" or name == "identities":
                for item in part:
                    iname = local(item.tag) or _local(item.tag)
                    text = item.text
                    if iname == "header_from":
                        header_from = text.strip().lower() if text else ""
                    elif iname == "envelope_from":
                        envelope_from = text.strip().lower() if text else ""
                    elif iname == "envelope_to":
                        envelope_to = text.strip().lower() if text else ""
        return self._finish_record(ip, count_text, disposition, dkim, spf, header_from, envelope_from, envelope_to,
                                   reasons, dkims, spfs)

    def _finish_record(self, ip: str, count_text: str, disposition: str, dkim: str, spf: str, header_from: str,
                       envelope_from: str, envelope_to: str, reasons: list[tuple[str, str]],
                       dkims: list[DkimResult], spfs: list[SpfResult]) -> Record | None:
        """Validate and default the fields of one record: skip it with a warning when unreadable."""
        source_ip = self._ips.get(ip) or self._ip(ip)
        if source_ip is None:
            self._skip(f"record {self._records + self._skipped + 1} skipped: source_ip {ip!r} is not an IP address")
            return None
        if count_text.isdigit():
            count = int(count_text)
        else:
            self._skip(f"record {self._records + self._skipped + 1} skipped: count {count_text!r} is not a whole number")
            return None
        if not dkim or not spf:
            self._warn(f"record for {source_ip}: policy_evaluated dkim/spf missing, counted as fail")
            dkim = dkim or "fail"
            spf = spf or "fail"
        if not envelope_from and spfs and spfs[-1].domain:
            envelope_from = spfs[-1].domain
        return Record(source_ip, count, disposition or "none", dkim, spf, header_from, envelope_from, envelope_to,
                      tuple(reasons), tuple(dkims), tuple(spfs))

    def _skip(self, text: str) -> None:
        self._skipped += 1
        self._warn(text)

    def _ip(self, text: str) -> str | None:
        """Validate and normalise a source IP (IPv6 to its compressed form); valid ones are cached."""
        if _IPV4.fullmatch(text):
            value: str | None = text
        else:
            try:
                value = ipaddress.ip_address(text).compressed
            except ValueError:
                return None
        if len(self._ips) < 100_000:
            self._ips[text] = value
        return value

    def _build_meta(self) -> ReportMeta:
        meta = self._metadata
        policy = self._policy
        if meta is None:
            raise Rejected(f"{self.source}: no <report_metadata>; a report without it cannot be identified")
        if policy is None:
            raise Rejected(f"{self.source}: no <policy_published>; the report does not say which domain it is for")
        missing = []
        org_email = meta.get("email", "")
        org_name = meta.get("org_name", "") or org_email.rpartition("@")[2]
        report_id = meta.get("report_id", "").strip("<>").strip()
        domain = policy.get("domain", "").lower().rstrip(".")
        if not org_name:
            missing.append("org_name (and no email to fall back on)")
        if not report_id:
            missing.append("report_id")
        if not domain:
            missing.append("policy_published/domain")
        begin = _epoch(meta.get("begin", ""))
        end = _epoch(meta.get("end", ""))
        if begin is None:
            missing.append("date_range/begin")
        if end is None:
            missing.append("date_range/end")
        if missing:
            raise Rejected(f"{self.source}: missing or unreadable {', '.join(missing)}; "
                           "these identify a report, so it cannot be stored")
        assert begin is not None and end is not None
        if end < begin:
            self._warn(f"date_range end {end} is before begin {begin}; swapped")
            begin, end = end, begin
        p = policy.get("p", "").lower()
        pct_text = policy.get("pct", "")
        pct = int(pct_text) if pct_text.isdigit() else None
        if self._namespace == DMARC2_NAMESPACE or any(policy.get(k) for k in _RFC9990_ONLY) or meta.get("generator"):
            schema = "rfc9990"
        elif self._version:
            schema = "rfc7489"
        else:
            schema = "draft"
        return ReportMeta(
            org_name=org_name, org_email=org_email, report_id=report_id, begin=begin, end=end,
            policy=Policy(domain=domain, p=p, sp=policy.get("sp", "").lower() or p, np=policy.get("np", "").lower(),
                          adkim=policy.get("adkim", "").lower() or "r", aspf=policy.get("aspf", "").lower() or "r",
                          pct=pct, fo=policy.get("fo", ""), testing=policy.get("testing", "").lower(),
                          discovery_method=policy.get("discovery_method", "").lower()),
            schema=schema, namespace=self._namespace, extra_contact_info=meta.get("extra_contact_info", ""),
            generator=meta.get("generator", ""), errors=tuple(self._errors))


def _error_text(message: str) -> str:
    """libxml2 sometimes appends "line N" to a message; the line is reported separately."""
    return _TRAILING_LINE.sub("", message.strip())


def _epoch(text: str) -> int | None:
    text = text.strip().partition(".")[0]
    if not text.isdigit():
        return None
    return int(text)


def parse_aggregate(chunks: Iterable[bytes], source: str = "", limits: Limits | None = None) -> AggregateReport:
    """Parse a whole report into memory (``dmarc.parse``, parallel ingest workers, tests); ingest
    streams records into SQLite instead."""
    parser = AggregateParser(source, limits)
    records: list[Record] = []
    for chunk in chunks:
        records.extend(parser.feed(chunk))
    meta, warnings, digest, _ = parser.close()
    return AggregateReport(meta, tuple(records), warnings, digest, source)
