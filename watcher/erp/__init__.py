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
    from watcher.erp.folders.layout import (
        inbound_folders,
        is_candidate,
        nothing_waiting,
        oldest_landed,
        prepare,
        remove_stale_temps,
        scan,
    )
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
    from watcher.erp.registry import BUILT_IN, load_format

__all__ = [
    "BUILT_IN",
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
    "inbound_folders",
    "is_candidate",
    "load_format",
    "nothing_waiting",
    "oldest_claimed",
    "oldest_landed",
    "prepare",
    "prune",
    "read_failed",
    "remove_stale_temps",
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
        "BUILT_IN": "registry",
        "ChallengeFormat": "formats.challenge",
        **dict.fromkeys(
            ("inbound_folders", "nothing_waiting", "prepare", "remove_stale_temps"),
            "folders.layout",
        ),
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
