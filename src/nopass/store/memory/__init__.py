"""An in-memory store: every ``nopass.core.ports`` repository and the ``KeyStore``, with the
SQL implementations' semantics, for unit tests of the flows (no database, no SQLAlchemy).

Never served with: it lives in one process and forgets everything when that process ends.
"""

from __future__ import annotations

from nopass.store.memory.keys import MemoryKeyStore
from nopass.store.memory.tables import (
    AuditRecord,
    DuplicateKey,
    OutboxRecord,
    Tables,
)
from nopass.store.memory.unit_of_work import MemoryStore, MemoryUnitOfWork

__all__ = [
    "AuditRecord",
    "DuplicateKey",
    "MemoryKeyStore",
    "MemoryStore",
    "MemoryUnitOfWork",
    "OutboxRecord",
    "Tables",
]
