"""The learned rate per limit key, kept for the next job: a JSON file in data_dir
(no Redis) — the shared limiter keeps it in Redis (``redis_gcra.MEMORY_PREFIX``)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path


class FileMemory:
    """``{key: [rate requests/s, expires unix s]}`` in ``path``, entries dropped ``ttl_s`` after
    their last save. Several processes may save: the last write wins (a whole-file replace)."""

    def __init__(self, path: Path, ttl_s: float):
        self.path, self.ttl_s = Path(path), ttl_s

    def _read(self) -> dict[str, list[float]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # none yet, or unreadable: nothing remembered
            return {}
        now = time.time()
        return {k: v for k, v in data.items() if isinstance(v, list) and len(v) == 2 and v[1] > now} \
            if isinstance(data, dict) else {}

    def load(self, key: str) -> float | None:
        """The remembered rate of ``key`` (requests/s), None when none or expired."""
        entry = self._read().get(key)
        return float(entry[0]) if entry else None

    def save(self, key: str, rate: float | None) -> None:
        """Remember ``rate`` for ``key`` (None: forget it). Best effort: a failed write is ignored
        (the next job then learns again)."""
        data = self._read()
        if rate is None:
            data.pop(key, None)
        else:
            data[key] = [round(rate, 4), time.time() + self.ttl_s]
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(data), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError:
            tmp.unlink(missing_ok=True)
