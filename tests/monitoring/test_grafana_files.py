"""The seam to Grafana, tested hard because Grafana cannot run here (no image registry).

Dashboards against a JSON Schema generated from Grafana's published types (@grafana/schema),
the Compose file against the Compose specification's JSON schema, provisioning files by strict
structure and by cross-reference (datasource uids, mount paths, alert queries that run).
"""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from ruamel.yaml import YAML

from mailfleet.errors import MailfleetError
from mailfleet.monitoring import render_dashboards as rd
from mailfleet.monitoring.model import GrafanaSettings, MonitoringLayout
from mailfleet.monitoring.parse_panels import render_query
from mailfleet.monitoring.render_grafana import render_grafana_files
from mailfleet.monitoring.templates import load_dashboard_texts, load_grafana_templates

SCHEMAS = Path(__file__).resolve().parents[1] / "fixtures" / "schemas"
LAYOUT = MonitoringLayout()


def _yaml(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(io.StringIO(text))


@pytest.fixture(scope="module")
def files() -> dict[str, str]:
    return render_grafana_files(load_grafana_templates(), load_dashboard_texts(), LAYOUT, GrafanaSettings())


@pytest.mark.parametrize("name", ["dmarc.json", "mailflow.json"])
def test_dashboard_matches_grafana_schema(name: str, files: dict[str, str]) -> None:
    schema = json.loads((SCHEMAS / "grafana-dashboard" / "dashboard.schema.json").read_text())
    board = json.loads(files[f"dashboards/{name}"])
    jsonschema.Draft7Validator(schema).validate(board)
    broken = dict(board, panels=[dict(board["panels"][0], gridpos={"x": 0})])
    with pytest.raises(jsonschema.ValidationError):  # the schema is strict enough to catch a typo
        jsonschema.Draft7Validator(schema).validate(broken)


@pytest.mark.parametrize("name", ["dmarc.json", "mailflow.json"])
def test_dashboard_layout_and_variables(name: str, files: dict[str, str]) -> None:
    board = json.loads(files[f"dashboards/{name}"])
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24, panel["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine
    names = {v["name"] for v in board["templating"]["list"]}
    assert "domain" in names
    for panel in board["panels"]:
        for var in names:
            assert f"${{{var}:sqlstring}}" in panel["targets"][0]["queryText"] or panel["type"] == "stat" \
                and "report" in panel["targets"][0]["queryText"], f"{panel['title']} ignores ${var}"


def test_compose_file_matches_the_compose_spec(files: dict[str, str]) -> None:
    schema = json.loads((SCHEMAS / "compose-spec" / "compose-spec.json").read_text())
    compose = _yaml(files["docker-compose.yml"])
    jsonschema.Draft201909Validator(schema).validate(compose)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft201909Validator(schema).validate(dict(compose, services={"grafana": {"ports": "3000"}}))


def test_compose_is_locked_down(files: dict[str, str]) -> None:
    compose = _yaml(files["docker-compose.yml"])
    grafana = compose["services"]["grafana"]
    env = grafana["environment"]
    assert grafana["ports"] == ["127.0.0.1:3000:3000"]
    assert "GF_SECURITY_ADMIN_PASSWORD" not in env  # never in the file: from the secret
    assert env["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/run/secrets/grafana_admin_password"
    assert compose["secrets"]["grafana_admin_password"]["file"] == "./secrets/grafana_admin_password"
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false" and env["GF_USERS_ALLOW_SIGN_UP"] == "false"
    assert env["GF_INSTALL_PLUGINS"].split()[0] == "frser-sqlite-datasource"
    assert grafana["image"].split(":")[1], "the image is pinned"
    mounts = {m.split(":")[1]: m.split(":")[0] for m in grafana["volumes"]}
    assert mounts[LAYOUT.data_dir] == LAYOUT.data_dir
    assert mounts["/etc/grafana/provisioning"] == "./provisioning"
    with pytest.raises(MailfleetError, match="public address"):
        render_grafana_files(load_grafana_templates(), {}, LAYOUT, GrafanaSettings(bind_address="8.8.8.8"))


def test_datasources_point_at_the_stores_grafana_can_see(files: dict[str, str]) -> None:
    doc = _yaml(files["provisioning/datasources/mailfleet.yaml"])
    assert doc["apiVersion"] == 1
    sources = {d["uid"]: d for d in doc["datasources"]}
    assert set(sources) == {rd.DMARC_DS["uid"], rd.LOGS_DS["uid"]}
    for source in sources.values():
        assert set(source) == {"name", "uid", "type", "access", "isDefault", "editable", "jsonData"}
        assert source["type"] == "frser-sqlite-datasource" and source["editable"] is False
        assert source["jsonData"]["path"].startswith(LAYOUT.data_dir + "/")  # mounted into the container
        assert source["jsonData"]["pathOptions"] == "mode=ro"
    assert sources["mailfleet-dmarc"]["jsonData"]["path"] == LAYOUT.dmarc_db
    assert sources["mailfleet-logs"]["jsonData"]["path"] == LAYOUT.logs_db
    assert sum(bool(s["isDefault"]) for s in sources.values()) == 1
    for name in ("dmarc.json", "mailflow.json"):
        board = json.loads(files[f"dashboards/{name}"])
        used = {p["datasource"]["uid"] for p in board["panels"]} | {t["datasource"]["uid"] for p in board["panels"]
                                                                     for t in p["targets"]}
        assert used <= set(sources)


def test_dashboard_provider_reads_the_mounted_folder(files: dict[str, str]) -> None:
    doc = _yaml(files["provisioning/dashboards/mailfleet.yaml"])
    (provider,) = doc["providers"]
    assert doc["apiVersion"] == 1 and provider["type"] == "file" and provider["allowUiUpdates"] is False
    compose = _yaml(files["docker-compose.yml"])
    mounts = {m.split(":")[0]: m.split(":")[1] for m in compose["services"]["grafana"]["volumes"]}
    assert provider["options"]["path"] == mounts["./dashboards"]
    assert {p for p in files if p.startswith("dashboards/")} == {"dashboards/dmarc.json", "dashboards/mailflow.json"}


def test_alert_rules_are_well_formed_and_their_queries_run(files: dict[str, str], dmarc_db: Path,
                                                          logs_db: Path) -> None:
    doc = _yaml(files["provisioning/alerting/mailfleet.yaml"])
    (group,) = doc["groups"]
    assert doc["apiVersion"] == 1 and group["interval"] == "5m" and group["folder"]
    rules = {r["uid"]: r for r in group["rules"]}
    assert set(rules) == {"mailfleet-dmarc-new-failing-source", "mailfleet-transactional-queue-delay"}
    store = {"mailfleet-dmarc": dmarc_db, "mailfleet-logs": logs_db}
    for rule in rules.values():
        refs = {d["refId"]: d for d in rule["data"]}
        assert rule["condition"] in refs and set(rule) >= {"title", "for", "noDataState", "execErrState", "annotations"}
        for item in rule["data"]:
            assert item["model"]["refId"] == item["refId"]
            if item["datasourceUid"] == "__expr__":
                assert item["model"]["expression"] in refs
                continue
            sql = item["model"]["queryText"]
            assert sql in (rd.ALERT_NEW_FAILING_SQL, rd.ALERT_TX_DELAY_SQL)
            conn = sqlite3.connect(store[item["datasourceUid"]])
            ((value,),) = conn.execute(render_query(sql, 0, 2**32, {})).fetchall()
            conn.close()
            assert value > 0
    threshold = rules["mailfleet-transactional-queue-delay"]["data"][2]["model"]["conditions"][0]["evaluator"]
    assert threshold == {"type": "gt", "params": [60]}
