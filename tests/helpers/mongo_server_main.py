"""Run SecantusDB (a MongoDB-wire server) as replica set ``rs0`` for the test suite.

Started by ``tests/mongo_server.py`` with the interpreter of an isolated tool environment
(``.tools/mongo-server``, made by ``./scripts/test``): SecantusDB is GPL-2.0-only and beta,
a test tool, never a dependency of the product. Prints ``listening PORT`` once it accepts
connections; SIGTERM or SIGINT stops it cleanly.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from secantus import SecantusDBServer  # type: ignore[import-not-found]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--storage", default=":memory:")
    parser.add_argument("--sync-on-commit", action="store_true")
    parser.add_argument("--standalone", action="store_true", help="no replica set, no streams")
    parser.add_argument("--test-commands", action="store_true", help="configureFailPoint on")
    args = parser.parse_args()
    server = SecantusDBServer(
        host="127.0.0.1",
        port=args.port,
        storage_path=args.storage,
        replica_set_name=None if args.standalone else "rs0",
        enable_test_commands=args.test_commands,
        sync_on_commit=args.sync_on_commit,
    )
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    server.start()
    print(f"listening {server.address[1]}", flush=True)
    stopping.wait()
    server.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
