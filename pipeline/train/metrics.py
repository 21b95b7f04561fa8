"""Metrics to ``metrics.jsonl``, ``metrics.csv`` (long format: step,name,value) and TensorBoard."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any


class MetricsLogger:
    """Appends one JSON line and one CSV row per metric per call; used by rank 0 only."""

    def __init__(self, folder: str | Path, tensorboard: bool = True) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._jsonl = open(self.folder / "metrics.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        csv_path = self.folder / "metrics.csv"
        new = not csv_path.exists() or csv_path.stat().st_size == 0
        self._csv_handle = open(csv_path, "a", encoding="utf-8", newline="")  # noqa: SIM115
        self._csv = csv.writer(self._csv_handle)
        if new:
            self._csv.writerow(["step", "name", "value"])
        self._tb: Any = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.folder / "tensorboard"))

    def log(self, step: int, metrics: dict[str, float]) -> None:
        """Record ``metrics`` (name -> number) at optimiser step ``step``."""
        self._jsonl.write(json.dumps({"step": step, "time": time.time(), **metrics}) + "\n")
        self._jsonl.flush()
        for name, value in metrics.items():
            self._csv.writerow([step, name, value])
            if self._tb is not None:
                self._tb.add_scalar(name, value, step)
        self._csv_handle.flush()
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        """Flush and close every sink."""
        self._jsonl.close()
        self._csv_handle.close()
        if self._tb is not None:
            self._tb.close()
