"""What one try to deliver a notification came to, whatever the channel."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Outcome:
    """``delivered``; else ``retry`` says whether another try may succeed (a network
    error, an HTTP 5xx, an SMTP 4xx) or the target said no for good (an HTTP 4xx)."""

    delivered: bool
    retry: bool = False
    status_code: int | None = None
    error: str | None = None

    @classmethod
    def ok(cls, status_code: int | None = None) -> Outcome:
        return cls(True, status_code=status_code)

    @classmethod
    def transient(cls, error: str, status_code: int | None = None) -> Outcome:
        return cls(False, retry=True, status_code=status_code, error=error)

    @classmethod
    def permanent(cls, error: str, status_code: int | None = None) -> Outcome:
        return cls(False, retry=False, status_code=status_code, error=error)
