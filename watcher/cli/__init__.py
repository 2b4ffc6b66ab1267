"""The ``watcher`` command: the command table, the worker commands, the store commands."""
