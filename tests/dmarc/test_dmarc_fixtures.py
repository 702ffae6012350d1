"""Every real-world sample in tests/fixtures/dmarc/ is parsed or rejected for a stated reason,
and checked against values written down here by reading the files."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailfleet.dmarc.parse_input import parse_input

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "dmarc"

# file: (org_name, report_id, domain, schema, begin, end, records, messages, dmarc pass, dmarc fail)
AGGREGATE = {
    "cry-inc/aol.xml": ("AOL", "website.com_1504828800", "website.com", "draft", 1504742400, 1504828800, 1, 1, 1, 0),
    "cry-inc/gmxnet.xml": ("GMX", "6d2be94cbabf4e838a3cf58fb4a42ab5", "myserver.com", "rfc9990",
                           1733184000, 1733270399, 1, 1, 1, 0),
    "cry-inc/google.xml": ("google.com", "3166094538684628578", "foo-bar.io", "draft", 1709683200, 1709769599,
                           1, 1, 1, 0),
    "cry-inc/hardfail.xml": ("reporting org", "abcdef", "mydomain.org", "draft", 1727049600, 1727135999, 1, 1, 0, 1),
    "cry-inc/mailru.xml": ("Mail.Ru", "28327321193681154911721360800", "foobar.de", "draft",
                           1721260800, 1721347200, 1, 1, 0, 1),
    "cry-inc/outlook.xml": ("Outlook.com", "a4f4ef0654474d3faa5dca167a34a86a", "random.net", "rfc7489",
                            1709683200, 1709769600, 2, 3, 3, 0),
    "cry-inc/webde.xml": ("WEB.DE", "a3345c7cb5fd4f26aa62144bf449a54b", "foobar.com", "rfc9990",
                          1722816000, 1722902399, 1, 1, 1, 0),
    "cry-inc/yahoo.xml": ("Yahoo", "1709600619.487850", "random.org", "draft", 1709510400, 1709596799, 1, 1, 1, 0),
    "parsedmarc/invalid_xml.xml": ("veeam.com", "sonexushealth.com:1530233361", "example.com", "draft",
                                   1530133200, 1530219600, 1, 1, 0, 1),
    "parsedmarc/nice-input.xml": ("google.com", "11038226378739404135", "example.com", "draft",
                                  1718236800, 1718323199, 20, 3047, 3047, 0),
    "parsedmarc/nice-input.xml.gz": ("google.com", "11038226378739404135", "example.com", "draft",
                                     1718236800, 1718323199, 20, 3047, 3047, 0),
    "parsedmarc/nice-input.xml.zip": ("google.com", "11038226378739404135", "example.com", "draft",
                                      1718236800, 1718323199, 20, 3047, 3047, 0),
    "parsedmarc/old_draft_from_wiki.xml": ("acme.com", "9391651994964116463", "example.com", "draft",
                                           1335571200, 1335657599, 1, 2, 2, 0),
    "parsedmarc/report_with_upper_cased_pass.xml": ("example.com", "aggr_report_example.com_20191202_1638",
                                                    "example.com", "draft", 1574955300, 1575304683, 1, 1, 1, 0),
    "parsedmarc/rfc9990-sample.xml": ("Sample Reporter", "3v98abbp8ya9n3va8yr8oa3ya", "example.com", "rfc9990",
                                      302832000, 302918399, 1, 123, 123, 0),
    "tierpod/test.xml.gz": ("Test Inc.", "1.id.0", "test.net", "draft", 1524182400, 1524268799, 2, 7, 5, 2),
    "tierpod/test.xml.gz.gz": ("Test Inc.", "1.id.0", "test.net", "draft", 1524182400, 1524268799, 2, 7, 5, 2),
    "tierpod/test.xml.zip": ("Test Inc.", "1.id.0", "test.net", "draft", 1524182400, 1524268799, 2, 7, 5, 2),
    # its only record has an empty source_ip: skipped with a warning, the report itself is kept
    "tierpod/test_empty.xml": ("Test Inc.", "1.id.0", "test.net", "draft", 1524182400, 1524268799, 0, 0, 0, 0),
}
# file: (organization, report id, policies, successful sessions, failed sessions, failure details)
TLS = {
    "cry-inc/google.json": ("Google Inc.", None, None, None, None, None),
    "cry-inc/microsoft.json": ("Microsoft Corporation", "133925885310113267+random.net", 2, 4, 0, 0),
    "parsedmarc/rfc8460.json": ("Company-X", "5065427c-23d3-47ca-b6e0-946ea0e8c4be", 1, 5326, 303, 3),
}
REJECTED = {"parsedmarc/empty.xml": "empty file"}


def _parse(name: str):  # type: ignore[no-untyped-def]
    path = FIXTURES / name
    with open(path, "rb") as handle:
        return parse_input(name, handle)


def test_every_fixture_has_an_expectation() -> None:
    files = {str(p.relative_to(FIXTURES)) for p in FIXTURES.rglob("*")
             if p.is_file() and p.name not in ("LICENSE", "SOURCE.md")}
    assert files == set(AGGREGATE) | set(TLS) | set(REJECTED)


@pytest.mark.parametrize("name", sorted(AGGREGATE))
def test_aggregate_fixture(name: str) -> None:
    org, report_id, domain, schema, begin, end, records, messages, passed, failed = AGGREGATE[name]
    outcome = _parse(name)
    assert outcome.error == ""
    assert len(outcome.reports) == 1 and not outcome.tls_reports
    report = outcome.reports[0]
    meta = report.meta
    assert (meta.org_name, meta.report_id, meta.domain, meta.schema, meta.begin, meta.end) == (
        org, report_id, domain, schema, begin, end)
    assert len(report.records) == records
    assert sum(r.count for r in report.records) == messages
    if passed is not None:
        assert sum(r.count for r in report.records if r.dmarc_pass) == passed
        assert sum(r.count for r in report.records if not r.dmarc_pass) == failed
    for record in report.records:
        assert record.dkim == record.dkim.lower() and record.spf == record.spf.lower()
        assert record.disposition in ("none", "quarantine", "reject", "pass")
    assert len(report.content_sha256) == 64


def test_nice_input_first_record() -> None:
    """Values read from the file with ElementTree independently of our parser."""
    report = _parse("parsedmarc/nice-input.xml").reports[0]
    first = report.records[0]
    assert (first.source_ip, first.count, first.dkim, first.spf, first.disposition) == (
        "209.85.220.69", 1, "fail", "pass", "none")


def test_same_report_in_three_containers_has_one_hash() -> None:
    hashes = {_parse(f"parsedmarc/nice-input.xml{ext}").reports[0].content_sha256 for ext in ("", ".gz", ".zip")}
    assert len(hashes) == 1
    tierpod = {_parse(f"tierpod/test.xml{ext}").reports[0].content_sha256 for ext in (".gz", ".gz.gz", ".zip")}
    assert len(tierpod) == 1


def test_upper_case_results_are_lowered() -> None:
    record = _parse("parsedmarc/report_with_upper_cased_pass.xml").reports[0].records[0]
    assert (record.disposition, record.dkim, record.spf) == ("none", "pass", "pass")
    assert record.dkim_results[0].result == "pass"


def test_hardfail_kept_as_written() -> None:
    record = _parse("cry-inc/hardfail.xml").reports[0].records[0]
    assert record.spf_results[0].result == "hardfail"
    assert record.dkim_results[0].domain == ""


def test_missing_sp_defaults_to_p() -> None:
    meta = _parse("cry-inc/yahoo.xml").reports[0].meta
    assert meta.policy.p == "reject" and meta.policy.sp == "reject"


def test_rfc9990_fields() -> None:
    meta = _parse("parsedmarc/rfc9990-sample.xml").reports[0].meta
    assert meta.namespace == "urn:ietf:params:xml:ns:dmarc-2.0"
    assert meta.generator == "Example DMARC Aggregate Reporter v1.2"
    assert (meta.policy.np, meta.policy.testing, meta.policy.discovery_method) == ("none", "n", "treewalk")
    record = _parse("parsedmarc/rfc9990-sample.xml").reports[0].records[0]
    assert record.disposition == "pass" and record.count == 123
    outlook = _parse("cry-inc/outlook.xml").reports[0]
    assert outlook.meta.namespace == "" and outlook.meta.schema == "rfc7489"
    assert [r.envelope_to for r in outlook.records] == ["live.de", "outlook.de"]


def test_broken_xml_is_recovered_with_warnings() -> None:
    report = _parse("parsedmarc/invalid_xml.xml").reports[0]
    assert report.records[0].source_ip == "199.230.200.36"
    assert any("recovered from broken XML" in w for w in report.warnings)


def test_empty_record_is_skipped_with_a_warning() -> None:
    report = _parse("tierpod/test_empty.xml").reports[0]
    assert report.records == ()
    assert any("source_ip" in w and "skipped" in w for w in report.warnings)


@pytest.mark.parametrize("name", sorted(TLS))
def test_tls_fixture(name: str) -> None:
    org, report_id, policies, ok, failed, details = TLS[name]
    outcome = _parse(name)
    assert outcome.error == "" and not outcome.reports
    report = outcome.tls_reports[0]
    assert report.org_name == org
    assert report.end > report.begin
    if report_id is not None:
        assert report.report_id == report_id
        assert len(report.policies) == policies
        assert sum(p.successful_sessions for p in report.policies) == ok
        assert sum(p.failed_sessions for p in report.policies) == failed
        assert sum(len(p.failures) for p in report.policies) == details


def test_rfc8460_details() -> None:
    report = _parse("parsedmarc/rfc8460.json").tls_reports[0]
    policy = report.policies[0]
    assert (policy.policy_type, policy.policy_domain, policy.mx_hosts) == (
        "sts", "company-y.example", ("*.mail.company-y.example",))
    assert report.begin == 1459468800 and report.end == 1459555199
    assert [f.failed_session_count for f in policy.failures] == [100, 200, 3]


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_rejected_fixture(name: str) -> None:
    outcome = _parse(name)
    assert REJECTED[name] in outcome.error
    assert not outcome.reports
