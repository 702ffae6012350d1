"""Decide which sending sources deserve an alert (pure: totals in, alerts out).

A source is (policy domain, source IP). Two kinds:

- ``new_failing_source``: it failed DMARC in the recent window and had no failures in the
  baseline (including a source never seen before): a new IP sending as us without alignment,
  the thing to see within 24 hours.
- ``pass_rate_drop``: it had enough baseline traffic and its recent pass rate fell by at least
  ``drop`` (absolute, 0.2 = 20 points): a DKIM key or SPF include broke for a known sender.
"""

from __future__ import annotations

from dataclasses import dataclass

Totals = dict[tuple[str, str], tuple[int, int]]  # (domain, ip) -> (messages, pass)


@dataclass(frozen=True)
class AlertRules:
    drop: float = 0.2
    min_baseline_messages: int = 10
    min_recent_messages: int = 1


@dataclass(frozen=True)
class Alert:
    kind: str
    domain: str
    source_ip: str
    messages: int
    passed: int
    failed: int
    pass_rate: float
    baseline_pass_rate: float | None
    why: str

    def as_json(self) -> dict[str, object]:
        return {"kind": self.kind, "domain": self.domain, "source_ip": self.source_ip, "messages": self.messages,
                "pass": self.passed, "fail": self.failed, "pass_rate": round(self.pass_rate, 4),
                "baseline_pass_rate": None if self.baseline_pass_rate is None else round(self.baseline_pass_rate, 4),
                "why": self.why}


def classify_alerts(recent: Totals, baseline: Totals, rules: AlertRules | None = None) -> list[Alert]:
    rules = rules or AlertRules()
    alerts: list[Alert] = []
    for (domain, ip), (messages, passed) in sorted(recent.items()):
        failed = messages - passed
        if messages < rules.min_recent_messages or messages <= 0:
            continue
        rate = passed / messages
        base_messages, base_passed = baseline.get((domain, ip), (0, 0))
        base_failed = base_messages - base_passed
        base_rate = base_passed / base_messages if base_messages else None
        if failed > 0 and base_failed == 0:
            seen = "never seen before" if not base_messages else f"passed all {base_messages} messages before"
            alerts.append(Alert("new_failing_source", domain, ip, messages, passed, failed, rate, base_rate,
                                f"{ip} failed DMARC for {failed} of {messages} messages as {domain}; it {seen}. "
                                "If it is yours, fix its SPF/DKIM alignment; if not, someone spoofs the domain."))
        elif (base_rate is not None and base_messages >= rules.min_baseline_messages
              and base_rate - rate >= rules.drop):
            alerts.append(Alert("pass_rate_drop", domain, ip, messages, passed, failed, rate, base_rate,
                                f"{ip} passes DMARC for {rate:.0%} of {domain} mail, down from {base_rate:.0%}; "
                                "check its DKIM key and SPF record."))
    return alerts
