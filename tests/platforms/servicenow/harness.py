"""Run business_rule.js under Node with fake Glide APIs (business_rule_harness.js), for the tests.

`scenario_for(payload)` builds the instance state a delivery describes: the incident as
`current`, as `previous` (current with each change undone), the caller's sys_user record,
the journal entry of the new comment and the tags. Running the script on that state must
give back exactly the payload; that is how the fixtures are known to be what the script sends.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "platforms" / "servicenow" / "business_rule.js"
HARNESS = Path(__file__).resolve().parent / "business_rule_harness.js"
NODE = shutil.which("node")

SECRET = "kT3rN9-example-shared-secret_0123456789"
URL = "https://escalator.example.com/webhooks/servicenow"
NOW_MS = 1_793_610_000_000  # 2026-11-02 09:00:00 UTC
CALLER_FIELDS = "region=u_region,tier=u_tier,language=preferred_language"

# Top-level payload keys that are incident fields (the rest is built by the script).
INCIDENT_FIELDS = (
    "sys_id", "number", "sys_mod_count", "sys_created_on", "sys_updated_on", "sys_updated_by",
    "short_description", "state", "impact", "urgency", "priority",
    "assignment_group", "assigned_to", "caller_id",
)  # fmt: skip
REFERENCES = {
    "incident.caller_id": "sys_user",
    "incident.assignment_group": "sys_user_group",
    "incident.assigned_to": "sys_user",
    "incident.company": "core_company",
    "sys_user.location": "cmn_location",
    "label_entry.label": "label",
}


def run_business_rule(scenario: dict[str, Any]) -> dict[str, Any]:
    """What the script did for `scenario`: {"requests": [...], "logs": [...]}."""
    assert NODE is not None, "node is not installed"
    done = subprocess.run(
        [NODE, str(HARNESS)],
        input=json.dumps({"script": str(SCRIPT), **scenario}),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"business_rule.js failed under the harness:\n{done.stderr}")
    return json.loads(done.stdout)


def scenario_for(payload: dict[str, Any], **properties: str) -> dict[str, Any]:
    """The instance state (records, properties) under which the script sends `payload`."""
    table = payload.get("table", "incident")
    current: dict[str, Any] = {name: payload.get(name, "") for name in INCIDENT_FIELDS}
    current.update(payload.get("extra_fields") or {})
    previous = None
    if payload["operation"] == "update":
        previous = dict(current)
        for change in payload["changes"]:
            previous[change["field"]] = change["previous"] or ""
    changed = [change["field"] for change in payload["changes"]] if payload["operation"] == "update" else []
    if payload.get("comment"):
        changed.append("comments")
    if payload.get("work_note_added"):
        changed.append("work_notes")

    records: dict[str, list[dict[str, Any]]] = {"sys_user": [], "sys_journal_field": [], "label_entry": []}
    records["label"] = []
    caller = payload.get("caller")
    if caller:
        records["sys_user"].append(
            {
                "sys_id": payload["caller_id"],
                "user_name": caller["user_name"],
                "name": caller["name"],
                "email": caller["email"],
                "u_region": caller["region"],
                "u_tier": caller["tier"],
                "preferred_language": caller["language"],
            }
        )
    comment = payload.get("comment")
    if comment:
        records["sys_journal_field"].append(
            {
                "sys_id": comment["sys_id"],
                "name": table,
                "element_id": payload["sys_id"],
                "element": "comments",
                "value": comment["text"],
                "sys_created_by": comment["author"],
                "sys_created_on": comment["created"],
            }
        )
    for number, tag in enumerate(payload.get("tags") or []):
        label_id = f"{number:032x}"
        records["label"].append({"sys_id": label_id, "name": tag, "viewable_by": "everyone"})
        records["label_entry"].append({"label": label_id, "table": table, "table_key": payload["sys_id"]})

    props = {
        "x_escalator.url": URL,
        "x_escalator.secret": SECRET,
        "x_escalator.caller_fields": CALLER_FIELDS,
        "x_escalator.extra_fields": ",".join(payload.get("extra_fields") or {}),
        "glide.servlet.uri": payload["instance_url"] + "/",
    }
    props.update(properties)
    return {
        "now_ms": NOW_MS,
        "operation": payload["operation"],
        "table": table,
        "properties": props,
        "current": current,
        "previous": previous,
        "changed": changed,
        "records": records,
        "references": REFERENCES,
        "fields": {table: ["comments", "work_notes"]},
    }
