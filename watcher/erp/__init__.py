"""The customer's system: an ERP format (bytes ⇄ orders, pure) times an exchange (folders).

The face other rooms import from: the port's names, the format registry, the challenge's
own format (the sample data is written in it) and the folder exchange's commands.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from watcher.core.faces import lazy
from watcher.erp.port import (
    Backlog,
    ErpFormat,
    FileVerdict,
    InboundSource,
    NotFiled,
    OutboundFile,
    OutboundSink,
    Taken,
    Trouble,
)

if TYPE_CHECKING:
    from watcher.erp.folders.failed import failed_lines, read_failed
    from watcher.erp.folders.layout import oldest_landed
    from watcher.erp.folders.upkeep import folder_counts, prune, requeue
    from watcher.erp.formats.challenge import ChallengeFormat
    from watcher.erp.formats.challenge.mapping import tracos_to_erp
    from watcher.erp.registry import load_format

__all__ = [
    "Backlog",
    "ChallengeFormat",
    "ErpFormat",
    "FileVerdict",
    "InboundSource",
    "NotFiled",
    "OutboundFile",
    "OutboundSink",
    "Taken",
    "Trouble",
    "failed_lines",
    "folder_counts",
    "load_format",
    "oldest_landed",
    "prune",
    "read_failed",
    "requeue",
    "tracos_to_erp",
]
__getattr__ = lazy(
    __name__,
    {
        "ChallengeFormat": "formats.challenge",
        "failed_lines": "folders.failed",
        "folder_counts": "folders.upkeep",
        "load_format": "registry",
        "oldest_landed": "folders.layout",
        "prune": "folders.upkeep",
        "read_failed": "folders.failed",
        "requeue": "folders.upkeep",
        "tracos_to_erp": "formats.challenge.mapping",
    },
)
