"""Compare what DNS publishes with the records a domain needs. Pure: answers in, verdicts out.

Each expected record gets one verdict with a mark (✓ ok, ✖ drift, ? advice or warning,
… pending) and, when it is not ok, an explanation saying what is, what should be and what it
costs (Mail-in-a-Box's status checks). TXT records are compared by what they are for: an apex
may hold several TXT records, but exactly one SPF record; a DKIM record is compared by its key;
a DMARC record by its tags.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from mailfleet.dkim.render_key import parse_dkim_tags, short_fingerprint
from mailfleet.dns.model import DnsRecord, RecordSet
from mailfleet.dns.rules_spf import (
    LOOKUP_LIMIT,
    SpfSyntaxError,
    count_direct_lookups,
    is_spf,
    parse_spf,
    referenced_domains,
    spf_addresses,
    spf_all,
)

MARKS = {"ok": "✓", "drift": "✖", "missing": "✖", "warn": "?", "pending": "…"}


@dataclass(frozen=True)
class Published:
    """What the name server answered for (name, type): the values in presentation form
    (TXT: the strings of each record joined), or an error when it gave no usable answer."""

    values: tuple[str, ...] = ()
    error: str | None = None
    nxdomain: bool = False


@dataclass(frozen=True)
class Verdict:
    record: DnsRecord
    status: str  # ok | drift | missing | warn | pending
    found: tuple[str, ...] = ()
    explanation: str = ""

    @property
    def mark(self) -> str:
        return MARKS[self.status]

    @property
    def is_drift(self) -> bool:
        return self.status in ("drift", "missing")


def normalise_name(value: str) -> str:
    return value.strip().rstrip(".").lower() + "."


def normalise(rtype: str, value: str) -> str:
    """Presentation form that compares equal when DNS means the same thing."""
    value = " ".join(value.split())
    if rtype in ("CNAME", "PTR", "NS"):
        return normalise_name(value)
    if rtype == "MX":
        pref, _, target = value.partition(" ")
        return f"{int(pref)} {normalise_name(target)}"
    if rtype == "SRV":
        prio, weight, port, target = value.split(" ")
        return f"{int(prio)} {int(weight)} {int(port)} {normalise_name(target)}"
    if rtype == "TLSA":
        usage, selector, mtype, data = value.split(" ", 3)
        return f"{int(usage)} {int(selector)} {int(mtype)} {''.join(data.split()).lower()}"
    if rtype in ("A", "AAAA"):
        return str(ipaddress.ip_address(value))
    if rtype == "TXT":
        return "; ".join(part.strip() for part in value.split(";") if part.strip())
    return value


def _tags(text: str) -> dict[str, str]:
    tags = {}
    for part in text.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            tags[key.strip().lower()] = value.strip()
    return tags


def _missing(record: DnsRecord, published: Published) -> str:
    where = f"{record.name}. {record.rtype}"
    if published.error:
        return f"{where}: {published.error}"
    if published.nxdomain:
        return f"{where}: the name does not exist in DNS; publish {record.rtype} {record.value!r}"
    return f"{where}: no such record; publish {record.rtype} {record.value!r}"


def _check_spf(record: DnsRecord, values: tuple[str, ...], published: Published,
               include_lookups: Mapping[str, int]) -> Verdict:
    spfs = [v for v in values if is_spf(v)]
    if not spfs:
        return Verdict(record, "missing", values, _missing(record, published) +
                       " — without SPF, receivers cannot tell the fleet's mail from forgeries and DMARC rests on DKIM alone")
    if len(spfs) > 1:
        return Verdict(record, "drift", tuple(spfs), f"{len(spfs)} SPF records at {record.name}: receivers return "
                       "permerror (RFC 7208 §4.5) and SPF fails for all mail; keep exactly one")
    found = spfs[0]
    try:
        terms = parse_spf(found)
    except SpfSyntaxError as exc:
        return Verdict(record, "drift", (found,), f"the published SPF record is invalid ({exc}): receivers return "
                       "permerror; publish the expected one")
    expected = parse_spf(record.value)
    problems = []
    lacking = sorted(spf_addresses(expected) - spf_addresses(terms))
    extra = sorted(spf_addresses(terms) - spf_addresses(expected))
    if lacking:
        problems.append(f"it lacks {', '.join(lacking)}: mail the fleet sends from there fails SPF")
    if extra:
        problems.append(f"it also allows {', '.join(extra)}, which no fleet host of this domain uses")
    qualifier = spf_all(terms)
    if qualifier != spf_all(expected):
        shown = "no 'all'" if qualifier is None else f"'{qualifier}all'"
        problems.append(f"it ends in {shown} instead of '-all': forgeries are not failed outright")
    lookups = count_direct_lookups(terms) + sum(include_lookups.get(d, 0) for d in referenced_domains(terms))
    if lookups > LOOKUP_LIMIT:
        problems.append(f"it needs {lookups} DNS lookups, more than the {LOOKUP_LIMIT} receivers evaluate "
                        "(RFC 7208 §4.6.4): SPF returns permerror and mail fails DMARC where DKIM fails too")
    elif {t.name for t in terms} - {"ip4", "ip6", "all"}:
        extra_terms = [str(t) for t in terms if t.name not in ("ip4", "ip6", "all")]
        problems.append(f"it has terms the fleet does not need ({', '.join(extra_terms)}; {lookups}/{LOOKUP_LIMIT} "
                        "DNS lookups)")
    if problems:
        return Verdict(record, "drift", (found,), "wrong SPF: " + "; ".join(problems))
    return Verdict(record, "ok", (found,))


def _check_dkim(record: DnsRecord, values: tuple[str, ...], published: Published) -> Verdict:
    keys = [v for v in values if "p=" in v.replace(" ", "")]
    if not keys:
        return Verdict(record, "missing", values, _missing(record, published) +
                       " — receivers cannot verify this selector's signatures: DKIM fails, and DMARC with it")
    expected = parse_dkim_tags(record.value).get("p", "")
    found_keys = [parse_dkim_tags(v).get("p", "") for v in keys]
    if expected in found_keys:
        return Verdict(record, "ok", tuple(keys))
    shown = ", ".join(short_fingerprint(k) if k else "an empty (revoked) key" for k in found_keys)
    return Verdict(record, "drift", tuple(keys),
                   f"stale DKIM key at {record.name}: DNS publishes {shown}, the fleet signs with "
                   f"{short_fingerprint(expected)}; every signature fails until the record is replaced with ours")


def _check_dmarc(record: DnsRecord, values: tuple[str, ...], published: Published) -> Verdict:
    dmarcs = [v for v in values if v.replace(" ", "").upper().startswith("V=DMARC1")]
    if not dmarcs:
        return Verdict(record, "missing", values, _missing(record, published) +
                       " — receivers apply no policy to forgeries of this domain and send no reports")
    if len(dmarcs) > 1:
        return Verdict(record, "drift", tuple(dmarcs), "several DMARC records: receivers ignore them all (RFC 7489 §6.6.3)")
    want, have = _tags(record.value), _tags(dmarcs[0])
    diffs = [f"{k}={have.get(k, '(absent)')} instead of {k}={v}" for k, v in want.items() if have.get(k) != v]
    diffs += [f"extra {k}={v}" for k, v in have.items() if k not in want]
    if diffs:
        return Verdict(record, "drift", tuple(dmarcs), "DMARC differs from the inventory: " + "; ".join(diffs))
    return Verdict(record, "ok", tuple(dmarcs))


def _check_plain(records: list[DnsRecord], published: Published) -> list[Verdict]:
    """Non-TXT record sets (and plain TXT): every expected value present; extras are drift."""
    rtype = records[0].rtype
    found = {normalise(rtype, v): v for v in published.values}
    wanted = {normalise(rtype, r.value) for r in records}
    extras = [v for k, v in found.items() if k not in wanted]
    verdicts = []
    for record in records:
        if normalise(rtype, record.value) not in found:
            if record.level == "advice":
                seen = published.error or ("found " + (", ".join(published.values) or "nothing"))
                text = (f"{record.name}. {record.rtype}: {seen}; "
                        f"{record.why.removeprefix('advice: ')}")
                verdicts.append(Verdict(record, "warn", published.values, text))
            else:
                text = _missing(record, published)
                if published.values and rtype != "TXT":
                    text = (f"{record.name}. {record.rtype} is {', '.join(published.values)}, "
                            f"should be {record.value}")
                verdicts.append(Verdict(record, "missing" if not published.values else "drift",
                                        published.values, text + f" — {record.why}"))
        elif extras and rtype != "TXT" and record.level != "advice":
            verdicts.append(Verdict(record, "drift", published.values,
                                    f"{record.name}. also has {rtype} {', '.join(extras)}, which the inventory does not "
                                    "name" + (": senders may deliver there" if rtype == "MX" else "")))
            extras = []
        else:
            verdicts.append(Verdict(record, "ok", (record.value,)))
    return verdicts


def plan_check(record_set: RecordSet, published: Mapping[tuple[str, str], Published],
               include_lookups: Mapping[str, int] | None = None) -> list[Verdict]:
    """One verdict per expected record, in the record set's order."""
    include_lookups = include_lookups or {}
    by_key: dict[tuple[str, str], list[DnsRecord]] = defaultdict(list)
    for record in record_set.records:
        if not record.pending:
            by_key[(record.name, record.rtype)].append(record)
    verdicts: dict[int, Verdict] = {}
    for key, records in by_key.items():
        answer = published.get(key, Published(error="not queried"))
        values = answer.values
        if key[1] == "TXT":
            plain = []
            for record in records:
                if record.kind == "spf":
                    verdict = _check_spf(record, values, answer, include_lookups)
                elif record.kind == "dkim":
                    verdict = _check_dkim(record, values, answer)
                elif record.kind == "dmarc":
                    verdict = _check_dmarc(record, values, answer)
                else:
                    plain.append(record)
                    continue
                verdicts[id(record)] = verdict
            for record in plain:
                want = normalise("TXT", record.value)
                hit = any(normalise("TXT", v) == want for v in values)
                verdicts[id(record)] = Verdict(record, "ok", (record.value,)) if hit else \
                    Verdict(record, "missing" if not values else "drift", values, _missing(record, answer)
                            + f" — {record.why}")
        else:
            for record, verdict in zip(records, _check_plain(records, answer)):
                verdicts[id(record)] = verdict
    out = []
    for record in record_set.records:
        if record.pending:
            out.append(Verdict(record, "pending", (), f"{record.name}: {record.why}"))
        else:
            out.append(verdicts[id(record)])
    return out
