"""The built-in ERP formats, one package each; ``watcher.erp.registry`` finds them by name."""
