"""SPF rules (RFC 7208): build our record, parse published ones, count DNS lookups. Pure.

Receivers stop evaluating an SPF record after 10 DNS-querying terms (§4.6.4) and fail it with
``permerror`` — which, under a DMARC policy, rejects the domain's mail. ``include``, ``a``,
``mx``, ``ptr``, ``exists`` and ``redirect`` each cost one lookup, recursively through
includes and redirects; ``ip4``, ``ip6`` and ``all`` cost none. mailfleet's own records list
addresses only, so they cost nothing; a published record someone extended may not.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

LOOKUP_LIMIT = 10
LOOKUP_MECHANISMS = ("include", "a", "mx", "ptr", "exists")
QUALIFIERS = "+-~?"


@dataclass(frozen=True)
class SpfTerm:
    qualifier: str  # "+", "-", "~", "?" ("" for modifiers)
    name: str  # lower case mechanism or modifier name
    argument: str  # what follows ":" or "=" (may be empty)
    modifier: bool = False

    def __str__(self) -> str:
        if self.modifier:
            return f"{self.name}={self.argument}"
        prefix = "" if self.qualifier == "+" else self.qualifier
        return f"{prefix}{self.name}{':' + self.argument if self.argument else ''}"


class SpfSyntaxError(ValueError):
    pass


def is_spf(text: str) -> bool:
    return text.strip().lower().startswith("v=spf1") and (len(text.strip()) == 6 or text.strip()[6] == " ")


def parse_spf(text: str) -> tuple[SpfTerm, ...]:
    """Split ``v=spf1 ...`` into terms; IP arguments are normalised so ``ip6:2001:DB8::1`` equals
    ``ip6:2001:db8::1``."""
    words = text.split()
    if not words or words[0].lower() != "v=spf1":
        raise SpfSyntaxError(f"an SPF record starts with 'v=spf1', this one with {words[0] if words else 'nothing'!r}")
    terms = []
    for word in words[1:]:
        name, sep, argument = word.partition("=")
        if sep and ":" not in name and "/" not in name:
            terms.append(SpfTerm("", name.lower(), argument, modifier=True))
            continue
        qualifier = "+"
        if word[0] in QUALIFIERS:
            qualifier, word = word[0], word[1:]
        name, _, argument = word.partition(":")
        if "/" in name and not argument:  # a/24, mx/24
            name, _, cidr = name.partition("/")
            argument = "/" + cidr
        name = name.lower()
        if name in ("ip4", "ip6"):
            try:
                argument = str(ipaddress.ip_network(argument, strict=False)) if "/" in argument \
                    else str(ipaddress.ip_address(argument))
            except ValueError:
                raise SpfSyntaxError(f"{word!r} does not hold a valid address") from None
        elif name not in LOOKUP_MECHANISMS + ("all",):
            raise SpfSyntaxError(f"unknown SPF mechanism {name!r}")
        terms.append(SpfTerm(qualifier, name, argument.lower() if name not in ("ip4", "ip6") else argument))
    return tuple(terms)


def count_direct_lookups(terms: Iterable[SpfTerm]) -> int:
    """Lookups this record itself costs (not counting what its includes cost)."""
    return sum(1 for t in terms if (not t.modifier and t.name in LOOKUP_MECHANISMS)
               or (t.modifier and t.name == "redirect"))


def referenced_domains(terms: Iterable[SpfTerm]) -> list[str]:
    """Domains whose SPF records are evaluated too (include targets, redirect)."""
    return [t.argument for t in terms if (t.name == "include" and not t.modifier)
            or (t.modifier and t.name == "redirect")]


def render_spf(ips: Iterable[str], all_qualifier: str = "-") -> str:
    """``v=spf1 ip4:... ip6:... -all``: addresses only, so the record costs no lookups."""
    terms = ["v=spf1"]
    for ip in ips:
        address = ipaddress.ip_address(ip)
        terms.append(f"ip{address.version}:{address}")
    terms.append(f"{all_qualifier}all")
    return " ".join(terms)


def spf_addresses(terms: Iterable[SpfTerm]) -> set[str]:
    return {t.argument for t in terms if t.name in ("ip4", "ip6") and t.qualifier == "+"}


def spf_all(terms: Iterable[SpfTerm]) -> str | None:
    """The qualifier of the final ``all`` (``-`` for hard fail), or None when there is none."""
    for term in terms:
        if term.name == "all" and not term.modifier:
            return term.qualifier
    return None
