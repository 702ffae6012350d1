"""The monitoring host: Grafana dashboards and provisioning for the DMARC and Postfix log stores,
and the deploy steps that install mailfleet, its scheduled jobs and Grafana there.

* ``render_dashboards``: the dashboards as data (their JSON lives in ``dashboards/``).
* ``parse_panels``: panels and their SQL out of a dashboard, Grafana's macros expanded.
* ``render_grafana``: provisioning files and the Compose file, from ``grafana/`` templates.
"""
