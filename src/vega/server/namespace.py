"""An owner's own namespace: list what it serves, stop serving some of it, and the orphan sweep.

``vega cache list`` and ``vega cache delete`` stand on these; the namespace is always the
caller's ``owner:<id>`` (from the verified credential), so nobody lists or deletes another's.
Deleting stops serving a narinfo from that namespace only: the log's record of the push stays
(the log is append-only), and so does anything the shared tier serves.

The sweep (:meth:`NamespaceRules.collect_orphans`, run by ``serve``'s background thread) removes
NAR objects that nothing needs once they are older than the retention setting: uploads never
attested, and owner pushes their owner deleted. It never removes an object served by any
namespace (the shared tier included), the NAR of a promoted path, or the evidence of a CI or
reproducer attestation.

Spec: docs/server-api.md ("Namespace management"); issue 12.
"""

from __future__ import annotations

import logging

from vega.core.cacheapi import DeleteRequest, DeleteResult, NamespaceEntry, NamespaceListing
from vega.core.narinfo import parse_narinfo
from vega.errors import FormatError
from vega.server.servicecore import HASH_PART, OwnerPrincipal, ServiceCore

__all__ = ["NamespaceRules"]

log = logging.getLogger(__name__)


class NamespaceRules(ServiceCore):
    """Listing, deletion and the orphan sweep."""

    def namespace_list(self, owner: OwnerPrincipal, after: str, limit: int) -> NamespaceListing:
        """One page of the owner's namespace, by hash, after ``after`` (``""`` for the first).

        Raises:
            FormatError: ``after`` is not a store-path hash, or ``limit`` is not 1-1000.
        """
        if after and not HASH_PART.fullmatch(after):
            raise FormatError("after: expected a 32-character store-path hash")
        if not 1 <= limit <= 1000:
            raise FormatError("limit: expected an integer from 1 to 1000")
        namespace = f"owner:{owner.user_id}"
        with self.store.read() as tx:
            rows = self.store.list_namespace(tx, namespace, after, limit + 1)
        entries = []
        for hash_part, text, updated_ms in rows[:limit]:
            info = parse_narinfo(text)
            entries.append(
                NamespaceEntry(
                    hash=hash_part,
                    store_path=info.store_path.absolute,
                    nar_size=info.nar_size,
                    file_size=info.file_size or 0,  # the server always writes FileSize
                    pushed_at_ms=updated_ms,
                )
            )
        more = len(rows) > limit
        return NamespaceListing(
            namespace=namespace, entries=tuple(entries), next=entries[-1].hash if more else None
        )

    def namespace_delete(self, owner: OwnerPrincipal, request: DeleteRequest) -> DeleteResult:
        """Stop serving ``request.hashes`` from the owner's namespace (idempotent)."""
        namespace = f"owner:{owner.user_id}"
        deleted, missing = [], []
        with self.store.write() as tx:
            for hash_part in request.hashes:
                if self.store.get_narinfo(tx, namespace, hash_part) is None:
                    missing.append(hash_part)
                else:
                    self.store.delete_narinfo(tx, namespace, hash_part)
                    deleted.append(hash_part)
        return DeleteResult(tuple(deleted), tuple(missing))

    def collect_orphans(self, retention_ms: int, limit: int = 1000) -> int:
        """Remove up to ``limit`` unneeded objects older than ``retention_ms``; return how many."""
        cutoff = self.now() - retention_ms
        with self.store.read() as tx:
            keys = self.store.orphan_objects(tx, cutoff, limit)
        removed = 0
        for key in keys:
            with self.store.write() as tx:
                if not self.store.is_orphan(tx, key, cutoff):
                    continue  # needed again since the listing (a new attestation or push)
                self.store.delete_object(tx, key)
            if self.blobs.delete(key):
                removed += 1
        if removed:
            log.info("orphan sweep removed %d object(s)", removed)
        return removed
