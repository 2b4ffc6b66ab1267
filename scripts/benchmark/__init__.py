"""Benchmark of the real worker against its service levels, beside floors.

The service levels are docs/spec.md §7's; each figure stands beside a floor measured in the
same run (``./scripts/bench``; see docs/performance-bench.md).

``scenarios`` times the worker (``watcher run --no-console`` or ``watcher once`` on the
embedded store, in temporary folders, watched from outside); ``floors`` is the bare work
of the same scenarios as a plain script would do it; ``report`` makes the rows, their
verdicts and the table; ``machine`` records what the run ran on and under; ``scales``
holds the sizes (full, quick, tiny); ``worker`` and ``workload`` the worker's process and
the data it is fed. Nothing here is imported by the ``watcher`` package.
"""
