"""Where the monitoring host keeps things, and how Grafana runs there. One place for every path."""

from __future__ import annotations

from dataclasses import dataclass

# frser-sqlite-datasource (Apache-2.0) pinned; Grafana OSS image pinned. Neither can be pulled
# or run on the build machine (no registry access): see docs/monitoring.md.
GRAFANA_IMAGE = "grafana/grafana-oss:11.6.0"
SQLITE_PLUGIN = "frser-sqlite-datasource 3.5.0"
GRAFANA_UID = 472  # the user the official image runs as


@dataclass(frozen=True)
class MonitoringLayout:
    """Paths on the monitoring host (absolute)."""

    root: str = "/opt/mailfleet"  # venv/, wheels/, grafana/
    config_dir: str = "/etc/mailfleet"  # inventory.yaml, secrets/ (0700), mailfleet.env (0600)
    data_dir: str = "/var/lib/mailfleet"  # dmarc.sqlite, logs.sqlite (group of Grafana's gid)
    data_gid: int = 472

    @property
    def venv(self) -> str:
        return f"{self.root}/venv"

    @property
    def wheels(self) -> str:
        return f"{self.root}/wheels"

    @property
    def grafana_dir(self) -> str:
        return f"{self.root}/grafana"

    @property
    def mailfleet(self) -> str:
        return f"{self.venv}/bin/mailfleet"

    @property
    def inventory(self) -> str:
        return f"{self.config_dir}/inventory.yaml"

    @property
    def dmarc_db(self) -> str:
        return f"{self.data_dir}/dmarc.sqlite"

    @property
    def logs_db(self) -> str:
        return f"{self.data_dir}/logs.sqlite"


@dataclass(frozen=True)
class GrafanaSettings:
    bind_address: str = "127.0.0.1"
    port: int = 3000
    root_url: str = "http://localhost:3000/"
    image: str = GRAFANA_IMAGE
    plugin: str = SQLITE_PLUGIN
    alert_interval: str = "5m"
    tx_threshold: float = 60.0
