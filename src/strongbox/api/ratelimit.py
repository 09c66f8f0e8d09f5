"""Per-key rate limits (seed 000 section 8) with an in-memory sliding window.

Each key has one window per bucket: creating backups, restoring, uploading, downloading,
and everything else. A window remembers the times of the calls it allowed; a call is
allowed while fewer than ``count`` fall within the last ``window`` seconds. Limits live in
one process: several server processes would each allow the full rate.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass

# (method, route path) → bucket; every other route is in "default".
BUCKETS = {
    ("POST", "/api/v1/backups"): "create_backup",
    ("POST", "/api/v1/restore"): "restore",
    ("POST", "/api/v1/restore/upload"): "restore_upload",
    ("GET", "/api/v1/backups/{backup_id}/download"): "download",
}


def bucket_for(method: str, route_path: str) -> str:
    return BUCKETS.get((method.upper(), route_path), "default")


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    retry_after: int  # seconds until the next call would be allowed (0 if allowed)


class SlidingWindowLimiter:
    def __init__(self, limits: dict[str, tuple[int, float]], *, enabled: bool = True) -> None:
        self.limits = limits
        self.enabled = enabled
        self._calls: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, bucket: str, now: float | None = None) -> Decision:
        count, window = self.limits.get(bucket, self.limits["default"])
        if not self.enabled:
            return Decision(True, count, count, 0)
        now = time.monotonic() if now is None else now
        with self._lock:
            calls = self._calls.setdefault((key, bucket), deque())
            while calls and calls[0] <= now - window:
                calls.popleft()
            if len(calls) >= count:
                oldest = calls[0] if calls else now
                retry = max(1, math.ceil(oldest + window - now))
                return Decision(False, count, 0, retry)
            calls.append(now)
            return Decision(True, count, count - len(calls), 0)
