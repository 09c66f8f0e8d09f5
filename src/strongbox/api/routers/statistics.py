"""``/api/v1/statistics``: dashboard statistics beyond seed 000's
``GET /api/v1/backups/statistics`` (which stays exactly as the contract says)."""

from __future__ import annotations

from typing import Literal

from fastapi import Depends, Query

from strongbox.api.deps import api_router, get_services, require
from strongbox.api.schemas.statistics import StatisticsOverview
from strongbox.services.container import Services
from strongbox.services.principal import Principal, Role
from strongbox.services.statistics import MAX_OVERVIEW_DAYS

router = api_router(prefix="/api/v1/statistics", tags=["statistics"])

# The period names of seed 004 (24h, 7d, 30d, 90d) and seed 001 (day, week, month, year).
PERIOD_DAYS = {"24h": 1, "7d": 7, "30d": 30, "90d": 90, "day": 1, "week": 7, "month": 30,
               "year": 365}
Period = Literal["24h", "7d", "30d", "90d", "day", "week", "month", "year"]


@router.get("/overview", response_model=StatisticsOverview,
            summary="Success rate, durations, daily timeline and storage growth")
def statistics_overview(days: int = Query(30, ge=1, le=MAX_OVERVIEW_DAYS,
                                          description="Window: the last N days, today included"),
                        period: Period | None = Query(
                            None, description="Instead of days: 24h, 7d, 30d, 90d, day, "
                                              "week, month (30 days) or year (365 days)"),
                        principal: Principal = Depends(require(Role.VIEWER)),
                        services: Services = Depends(get_services)) -> StatisticsOverview:
    return StatisticsOverview.model_validate(
        services.statistics_overview.compute(
            principal.tenant, PERIOD_DAYS[period] if period else days))
