"""The customer's system: an ERP format (bytes ⇄ orders, pure) times an exchange (folders).

The face other rooms import from: the port's names, the format registry, the challenge's
own format (the sample data is written in it) and the folder exchange's commands.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from watcher.core.faces import lazy

if TYPE_CHECKING:
    from watcher.erp.folders.claims import oldest_claimed
    from watcher.erp.folders.failed import failed_lines, read_failed
    from watcher.erp.folders.layout import is_candidate, oldest_landed, scan
    from watcher.erp.folders.upkeep import folder_counts, prune, requeue
    from watcher.erp.formats.challenge import ChallengeFormat
    from watcher.erp.formats.challenge.mapping import tracos_to_erp
    from watcher.erp.port import (
        LISTED,
        Backlog,
        Direction,
        ErpFormat,
        FileVerdict,
        InboundSource,
        NotFiled,
        OutboundFile,
        OutboundSink,
        Rejection,
        Taken,
        Trouble,
    )
    from watcher.erp.registry import load_format

__all__ = [
    "LISTED",
    "Backlog",
    "ChallengeFormat",
    "Direction",
    "ErpFormat",
    "FileVerdict",
    "InboundSource",
    "NotFiled",
    "OutboundFile",
    "OutboundSink",
    "Rejection",
    "Taken",
    "Trouble",
    "failed_lines",
    "folder_counts",
    "is_candidate",
    "load_format",
    "oldest_claimed",
    "oldest_landed",
    "prune",
    "read_failed",
    "requeue",
    "scan",
    "tracos_to_erp",
]
_PORT = (
    "LISTED",
    "Backlog",
    "Direction",
    "ErpFormat",
    "FileVerdict",
    "InboundSource",
    "NotFiled",
    "OutboundFile",
    "OutboundSink",
    "Rejection",
    "Taken",
    "Trouble",
)
# The port's names too: a command that uses one folder helper (``once`` with nothing to
# do, ``status``) does not load every Struct of the port with it.
__getattr__ = lazy(
    __name__,
    {
        **dict.fromkeys(_PORT, "port"),
        "ChallengeFormat": "formats.challenge",
        "failed_lines": "folders.failed",
        "folder_counts": "folders.upkeep",
        "is_candidate": "folders.layout",
        "load_format": "registry",
        "scan": "folders.layout",
        "oldest_landed": "folders.layout",
        "oldest_claimed": "folders.claims",
        "prune": "folders.upkeep",
        "read_failed": "folders.failed",
        "requeue": "folders.upkeep",
        "tracos_to_erp": "formats.challenge.mapping",
    },
)
