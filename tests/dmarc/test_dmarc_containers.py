"""Containers senders really use: e-mails with attachments, multi-member zips, gzip with junk
after it, mislabelled types, and the lenient parsing of sloppy XML."""

from __future__ import annotations

import gzip
import io
import zipfile
from email.message import EmailMessage
from pathlib import Path

from mailfleet.dmarc.extract import sniff
from mailfleet.dmarc.parse_aggregate import parse_aggregate
from mailfleet.dmarc.parse_input import parse_input

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "dmarc"
GOOGLE = (FIXTURES / "cry-inc" / "google.xml").read_bytes()
OUTLOOK = (FIXTURES / "cry-inc" / "outlook.xml").read_bytes()
TLSRPT = (FIXTURES / "parsedmarc" / "rfc8460.json").read_bytes()


def report_email(*attachments: tuple[bytes, str, str, str]) -> bytes:
    message = EmailMessage()
    message["From"] = "noreply-dmarc-support@google.com"
    message["To"] = "dmarc@example.com"
    message["Subject"] = "Report domain: foo-bar.io Submitter: google.com"
    message.set_content("This is an aggregate report from google.com.")
    for data, maintype, subtype, filename in attachments:
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return bytes(message)


def zipped(*members: tuple[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return buffer.getvalue()


def test_email_with_zip_attachment() -> None:
    eml = report_email((zipped(("google.com!foo-bar.io!1709683200!1709769599.xml", GOOGLE)), "application", "zip",
                        "google.com!foo-bar.io!1709683200!1709769599.zip"))
    outcome = parse_input("report.eml", eml)
    assert outcome.error == ""
    assert [r.meta.org_name for r in outcome.reports] == ["google.com"]
    assert "report.eml!" in outcome.reports[0].source


def test_email_with_gzip_labelled_as_zip_and_a_tls_report() -> None:
    """GMX labels gzip as zip; types are sniffed from bytes, not trusted from headers."""
    eml = report_email((gzip.compress(OUTLOOK), "application", "zip", "report.zip"),
                       (gzip.compress(TLSRPT), "application", "tlsrpt+gzip", "tls.json.gz"))
    outcome = parse_input("two.eml", eml)
    assert outcome.error == ""
    assert [len(r.records) for r in outcome.reports] == [2]
    assert [t.org_name for t in outcome.tls_reports] == ["Company-X"]


def test_email_without_a_report_is_rejected() -> None:
    outcome = parse_input("chat.eml", report_email((b"hello", "application", "octet-stream", "x.bin")))
    assert outcome.error == "no DMARC aggregate or SMTP TLS report found in it"


def test_yahoo_unused_payload_is_rejected() -> None:
    outcome = parse_input("unused.xml.gz", gzip.compress(b"unused"))
    assert "not a report" in outcome.error


def test_zip_with_two_reports_keeps_both() -> None:
    outcome = parse_input("two.zip", zipped(("a.xml", GOOGLE), ("b.xml", OUTLOOK), ("README.txt", b"hi")))
    assert [r.meta.org_name for r in outcome.reports] == ["google.com", "Outlook.com"]


def test_zip_member_that_is_not_a_report_is_skipped_when_others_are() -> None:
    outcome = parse_input("mixed.zip", zipped(("a.xml", GOOGLE), ("b.xml", b"<html><body>hi</body></html>")))
    assert len(outcome.reports) == 1
    assert any("not a DMARC aggregate report" in w for w in outcome.warnings)


def test_gzip_with_trailing_crlf_like_mimecast() -> None:
    outcome = parse_input("mimecast.xml.gz", gzip.compress(GOOGLE) + b"\r\n")
    assert outcome.error == "" and len(outcome.reports) == 1


def test_zip_inside_gzip() -> None:
    outcome = parse_input("odd.zip.gz", gzip.compress(zipped(("a.xml", GOOGLE))))
    assert outcome.error == "" and outcome.reports[0].meta.report_id == "3166094538684628578"


def test_truncated_gzip_is_rejected() -> None:
    data = gzip.compress(GOOGLE)
    assert "truncated" in parse_input("cut.xml.gz", data[: len(data) // 2]).error


def test_sniff() -> None:
    assert sniff(b"PK\x03\x04rest") == "zip"
    assert sniff(b"\x1f\x8b\x08") == "gzip"
    assert sniff(b"\xef\xbb\xbf  <?xml") == "xml"
    assert sniff(b"\n {") == "json"
    assert sniff(b"Return-Path: <a@b>\r\n") == "email"
    assert sniff(b"unused") == "unknown"


def _report(records: str, policy: str = "<domain>example.com</domain><p>reject</p>", ns: str = "") -> bytes:
    xmlns = f' xmlns="{ns}"' if ns else ""
    return (f"<feedback{xmlns}><report_metadata><org_name>Yahoo</org_name><email>d@yahoo.com</email>"
            "<report_id>&lt;42@yahoo.com&gt;</report_id>"
            "<date_range><begin> 1709510400 </begin><end>1709596799.5</end></date_range></report_metadata>"
            f"<policy_published>{policy}</policy_published>{records}</feedback>").encode()


RECORD = ("<record><row><source_ip>{ip}</source_ip><count>{count}</count><policy_evaluated>"
          "<disposition>{disp}</disposition><dkim>{dkim}</dkim><spf>{spf}</spf>{reason}</policy_evaluated></row>"
          "<identifiers><header_from>Example.COM</header_from></identifiers>"
          "<auth_results><spf><domain>example.com</domain><result>{spf}</result></spf></auth_results></record>")


def rec(ip: str = "192.0.2.1", count: str = "3", disp: str = "none", dkim: str = "pass", spf: str = "fail",
        reason: str = "") -> str:
    return RECORD.format(ip=ip, count=count, disp=disp, dkim=dkim, spf=spf, reason=reason)


def test_lenient_fields() -> None:
    report = parse_aggregate([_report(rec(dkim="PASS", spf="Fail", disp="Quarantine"))])
    meta = report.meta
    assert meta.report_id == "42@yahoo.com"  # <...> wrapper removed
    assert (meta.begin, meta.end) == (1709510400, 1709596799)  # spaces and decimals tolerated
    assert meta.policy.sp == "reject"  # missing sp defaults to p
    assert (meta.policy.adkim, meta.policy.aspf) == ("r", "r")
    record = report.records[0]
    assert (record.dkim, record.spf, record.disposition, record.header_from) == (
        "pass", "fail", "quarantine", "example.com")
    assert record.envelope_from == "example.com"  # backfilled from the SPF domain
    assert record.spf_results[0].scope == "mfrom"


def test_yahoo_bel_characters_in_comments_are_dropped() -> None:
    reason = "<reason><type>local_policy</type><comment>arc=pass as[3].d=google.com\x07\x07</comment></reason>"
    report = parse_aggregate([_report(rec(reason=reason))])
    assert report.records[0].reasons == (("local_policy", "arc=pass as[3].d=google.com"),)
    assert "control characters removed from the XML" in report.warnings


def test_unreadable_record_is_skipped_and_the_rest_kept() -> None:
    records = rec(ip="not-an-ip") + rec(ip="2001:DB8::1") + rec(count="lots") + rec(ip="198.51.100.7", count="5")
    report = parse_aggregate([_report(records)])
    assert [(r.source_ip, r.count) for r in report.records] == [("2001:db8::1", 3), ("198.51.100.7", 5)]
    assert sum("skipped" in w for w in report.warnings) == 2


def test_missing_policy_results_count_as_fail_with_a_warning() -> None:
    report = parse_aggregate([_report(rec(dkim="", spf=""))])
    assert (report.records[0].dkim, report.records[0].spf) == ("fail", "fail")
    assert not report.records[0].dmarc_pass
    assert any("missing" in w for w in report.warnings)


def test_namespaced_dmarcbis_and_draft_detection() -> None:
    ns = parse_aggregate([_report(rec(), ns="urn:ietf:params:xml:ns:dmarc-2.0")])
    assert ns.meta.schema == "rfc9990" and len(ns.records) == 1
    assert parse_aggregate([_report(rec())]).meta.schema == "draft"


def test_report_without_identity_is_rejected() -> None:
    bad = b"<feedback><report_metadata><org_name>x</org_name></report_metadata></feedback>"
    outcome = parse_input("bad.xml", bad)
    assert "policy_published" in outcome.error
    no_id = _report(rec()).replace(b"&lt;42@yahoo.com&gt;", b"")
    assert "report_id" in parse_input("noid.xml", no_id).error


def test_not_feedback_is_rejected() -> None:
    assert "root element is <html>" in parse_input("page.xml", b"<html><body><p>x</p></body></html>").error


def test_streaming_in_tiny_chunks_gives_the_same_report() -> None:
    whole = parse_aggregate([OUTLOOK])
    pieces = parse_aggregate([OUTLOOK[i:i + 7] for i in range(0, len(OUTLOOK), 7)])
    assert pieces.records == whole.records and pieces.meta == whole.meta
    assert pieces.content_sha256 == whole.content_sha256
