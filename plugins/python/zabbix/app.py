"""A Tocsin transformer written in Python: Zabbix webhook alerts to Tocsin events.

Proof that any language targeting the tocsin:plugin WIT works; built with
componentize-py (see build.sh). Configure a Zabbix webhook media type whose script
POSTs this JSON (Zabbix macros in the values) to /v1/ingest/zabbix:

    {"event_id": "{EVENT.ID}", "host": "{HOST.NAME}", "trigger": "{EVENT.NAME}",
     "severity": "{EVENT.SEVERITY}", "status": "{EVENT.STATUS}",
     "message": "{EVENT.OPDATA}", "tags": "{EVENT.TAGSJSON}", "time": "{EVENT.TIME.EPOCH}"}

`status` PROBLEM is unhealthy and RESOLVED healthy; severity High and Disaster page,
the others open a ticket. Tags (Zabbix's [{"tag": k, "value": v}] list) become labels.
"""

import json
import re

import wit_world
from componentize_py_types import Err
from wit_world.imports import host, types

PAGING = {"high", "disaster"}


def monitor_name(trigger: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.:/-]+", "-", trigger.strip()).strip("-").lower()
    return name[:128] or "zabbix-trigger"


class WitWorld(wit_world.WitWorld):
    def transform(self, input: types.RawInput, config: str) -> list[types.Event]:
        try:
            body = json.loads(bytes(input.body).decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise Err(f"not a Zabbix webhook payload: {e}")
        alerts = body if isinstance(body, list) else [body]
        events = []
        for i, alert in enumerate(alerts):
            if not isinstance(alert, dict):
                raise Err(f"item {i}: expected an object")
            status = str(alert.get("status", "")).upper()
            if status not in ("PROBLEM", "RESOLVED", "OK"):
                raise Err(f"item {i}: status must be PROBLEM or RESOLVED, got {status!r}")
            host_name = str(alert.get("host", "")).strip()
            trigger = str(alert.get("trigger", "")).strip()
            if not host_name or not trigger:
                raise Err(f"item {i}: host and trigger are required")
            labels = [types.Label("host", host_name)]
            tags = alert.get("tags") or []
            if isinstance(tags, str):
                tags = json.loads(tags) if tags.strip().startswith("[") else []
            for tag in tags:
                if isinstance(tag, dict) and tag.get("tag"):
                    labels.append(types.Label(str(tag["tag"]).lower(), str(tag.get("value", ""))))
            severity = str(alert.get("severity", "")).lower()
            priority = types.Priority.HIGH if severity in PAGING else types.Priority.LOW
            since = None
            if str(alert.get("time", "")).isdigit():
                since = int(alert["time"]) * 1000
            message = str(alert.get("message", "")) or None
            events.append(
                types.Event(
                    alert=types.Alert(
                        monitor=monitor_name(trigger),
                        status=types.Status.UNHEALTHY if status == "PROBLEM" else types.Status.HEALTHY,
                        since=since,
                        message=message,
                        count=None,
                    ),
                    context=labels,
                    filters=[],
                    grouping=None,
                    alerting=types.Alerting(priority=priority, channel=None, ticket_queue=None),
                    plugins=[],
                )
            )
        host.log(host.Level.INFO, f"zabbix: {len(events)} events")
        return events
