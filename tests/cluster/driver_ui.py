"""A job's live Spark UI REST API (``/api/v1``) on 127.0.0.1: which tasks run on which executor now.

Jobs submitted by the tests run with ``spark.ui.enabled=false`` unless a test turns the UI on
(:func:`ui_conf`); it then listens on 127.0.0.1 (``SPARK_LOCAL_IP``) only. Requests bypass any
HTTP proxy of the environment, so they cannot leave the machine.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from tests.cluster.standalone import free_port

# No ProxyHandler settings: an http_proxy in the environment must not see loopback requests.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def ui_conf(port: int) -> dict[str, str]:
    """Spark settings that turn the driver's UI on at ``port`` (no fallback to another port)."""
    return {"spark.ui.enabled": "true", "spark.ui.port": str(port), "spark.port.maxRetries": "0"}


@dataclass(frozen=True)
class RunningTask:
    """A task attempt the driver counts as running."""

    task_id: int
    stage_id: int
    index: int
    attempt: int
    executor_id: str


class DriverUI:
    """Reads a driver's UI REST API; every read returns None while the UI is not (or no longer) up."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}/api/v1"

    @property
    def conf(self) -> dict[str, str]:
        return ui_conf(self.port)

    def get(self, path: str) -> Any | None:
        try:
            with _OPENER.open(f"{self.base}/{path}", timeout=10) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def app_id(self) -> str | None:
        apps = self.get("applications")
        return apps[0]["id"] if apps else None

    def running_tasks(self, app_id: str) -> list[RunningTask]:
        """Task attempts running now, in every active stage."""
        stages = self.get(f"applications/{app_id}/stages?status=active&details=true&taskStatus=RUNNING") or []
        return [
            RunningTask(
                int(task["taskId"]),
                int(stage["stageId"]),
                int(task["index"]),
                int(task["attempt"]),
                str(task["executorId"]),
            )
            for stage in stages
            for task in (stage.get("tasks") or {}).values()
            if task.get("status") == "RUNNING"
        ]
