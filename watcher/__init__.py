"""tracos-sync watcher: keeps TracOS work orders and ERP JSON files in sync."""

__version__ = "1.0.0"
