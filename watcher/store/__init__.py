"""The store: where TracOS work orders live, behind one port (``port.py``).

Two adapters pass one contract suite: ``mongo`` (production) and ``sqlite`` (embedded);
``configured`` picks the one the settings name. Other rooms import the port's names from
here.
"""

from watcher.store.port import (
    Document,
    PutResult,
    Replace,
    StoredDocument,
    SyncMark,
    WorkOrderStore,
)

__all__ = ["Document", "PutResult", "Replace", "StoredDocument", "SyncMark", "WorkOrderStore"]
