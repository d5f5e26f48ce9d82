"""The cache's metadata in one SQL implementation over ``vega.server.db``.

Narinfos per namespace, objects, attestations, promotions, revocations, the
reproduction queue and dispatch failures.

Spec: house-style.md §4.9; issue 4 ("Storage").
"""

from __future__ import annotations

from vega.server.store.sql import (
    MIGRATIONS,
    SHARED,
    AttestationRow,
    CacheCounts,
    ObjectRecord,
    PromotionRecord,
    ReproRow,
    Store,
)

__all__ = [
    "MIGRATIONS",
    "SHARED",
    "AttestationRow",
    "CacheCounts",
    "ObjectRecord",
    "PromotionRecord",
    "ReproRow",
    "Store",
]
