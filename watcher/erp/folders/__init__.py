"""The folder exchange, whole: files come in through one folder and go out through another.

source (take, claim, file away), sink (durable outbound files), claims and locks, filing,
layout (names and folders), failed (the failed folder read back), upkeep (requeue, prune).
"""
