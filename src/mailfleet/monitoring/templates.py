"""Load the Grafana templates shipped as package data (``grafana/**.j2``). Effectful (reads files)."""

from __future__ import annotations

from importlib import resources

TEMPLATE_PATHS = ("docker-compose.yml.j2", "provisioning/datasources/mailfleet.yaml.j2",
                  "provisioning/dashboards/mailfleet.yaml.j2", "provisioning/alerting/mailfleet.yaml.j2")


def load_grafana_templates() -> dict[str, str]:
    base = resources.files("mailfleet.monitoring").joinpath("grafana")
    return {path: base.joinpath(path).read_text(encoding="utf-8") for path in TEMPLATE_PATHS}


def load_dashboard_texts() -> dict[str, str]:
    base = resources.files("mailfleet.monitoring").joinpath("dashboards")
    return {name: base.joinpath(name).read_text(encoding="utf-8") for name in ("dmarc.json", "mailflow.json")}
