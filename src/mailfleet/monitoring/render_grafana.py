"""Grafana's files for the monitoring host: the Compose file and provisioning, from the templates.

Pure: template texts and settings in, ``{relative path: content}`` out (relative to the host's
Grafana folder, ``MonitoringLayout.grafana_dir``). Rendered with Jinja2 and StrictUndefined:
a template naming a value we do not pass is an error, not an empty string.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

import jinja2

from mailfleet.errors import MailfleetError
from mailfleet.monitoring.model import GrafanaSettings, MonitoringLayout
from mailfleet.monitoring.render_dashboards import ALERT_NEW_FAILING_SQL, ALERT_TX_DELAY_SQL


def _check(settings: GrafanaSettings) -> None:
    try:
        address = ipaddress.ip_address(settings.bind_address)
    except ValueError:
        raise MailfleetError(f"Grafana bind address {settings.bind_address!r} is not an IP address") from None
    if not address.is_loopback and not address.is_private:
        raise MailfleetError(f"Grafana would listen on the public address {address}; bind it to 127.0.0.1 and "
                             "reach it through an SSH tunnel or the host's TLS proxy")
    if not 1 <= settings.port <= 65535:
        raise MailfleetError(f"Grafana port {settings.port} is not a TCP port")


def render_grafana_files(templates: Mapping[str, str], dashboards: Mapping[str, str], layout: MonitoringLayout,
                         settings: GrafanaSettings) -> dict[str, str]:
    _check(settings)
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
    context = {
        "grafana_dir": layout.grafana_dir, "data_dir": layout.data_dir, "data_gid": layout.data_gid,
        "dmarc_db": layout.dmarc_db, "logs_db": layout.logs_db, "image": settings.image, "plugin": settings.plugin,
        "bind_address": settings.bind_address, "port": settings.port, "root_url": settings.root_url,
        "alert_interval": settings.alert_interval, "tx_threshold": f"{settings.tx_threshold:g}",
        "new_failing_sql": ALERT_NEW_FAILING_SQL, "tx_delay_sql": ALERT_TX_DELAY_SQL,
    }
    files: dict[str, str] = {}
    for path, text in templates.items():
        try:
            files[path.removesuffix(".j2")] = env.from_string(text).render(context)
        except jinja2.TemplateError as exc:
            raise MailfleetError(f"Grafana template {path}: {exc}") from None
    for name, text in dashboards.items():
        files[f"dashboards/{name}"] = text
    return files
