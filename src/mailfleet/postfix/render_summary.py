"""Human text for ``logs.summary`` (``--json`` prints the data itself). Pure."""

from __future__ import annotations

from typing import Any


def render_summary_text(summary: dict[str, Any]) -> str:
    """A short human report; ``--json`` gives everything."""
    keys = ("received", "delivered", "forwarded", "deferred", "bounced", "rejected", "expired")
    lines = ["Grand totals (fleet-wide)"]
    lines += [f"  {summary[key]:>9}  {key}" for key in keys]
    lines.append(f"  {summary['deferrals']:>9}  deferral attempts")
    if summary["per_day"]:
        lines.append("\nPer day (UTC)        received  delivered  deferred  bounced  rejected")
        for day in summary["per_day"]:
            lines.append(
                f"  {day['day']:<18} {day['received']:>8}  {day['delivered']:>9}  {day['deferred']:>8}"
                f"  {day['bounced']:>7}  {day['rejected']:>8}"
            )
    if summary["per_domain"]:
        lines.append("\nRecipient domains    delivered  deferred  bounced  avg delay")
        for row in summary["per_domain"]:
            avg = "" if row["avg_delay"] is None else f"{row['avg_delay']:.2f}s"
            lines.append(
                f"  {row['domain'][:18]:<18} {row['delivered']:>9}  {row['deferred']:>8}  {row['bounced']:>7}  {avg:>9}"
            )
    if summary["top_deferral_reasons"]:
        lines.append("\nTop deferral reasons")
        lines += [f"  {row['count']:>7}  {row['reason']}" for row in summary["top_deferral_reasons"]]
    if summary["queue_delay"]:
        lines.append("\nActive-queue wait (delays b) per transport   attempts     p50     p95     max")
        for row in summary["queue_delay"]:
            lines.append(
                f"  {row['transport'][:40]:<40} {row['deliveries']:>10} {row['b_p50']:>7.2f} {row['b_p95']:>7.2f}"
                f" {row['b_max']:>7.2f}"
            )
    return "\n".join(lines)
