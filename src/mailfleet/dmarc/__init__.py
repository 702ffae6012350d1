"""DMARC aggregate and SMTP TLS reports: safe parsing, SQLite storage, IMAP fetching, alerts.

Pure core: ``model``, ``extract``, ``parse_aggregate``, ``parse_tlsrpt``, ``parse_input``,
``classify_alerts``. Shell: ``store`` (SQLite), ``ingest`` (files), ``fetch`` (IMAP), ``enrich``
(reverse DNS).
"""
