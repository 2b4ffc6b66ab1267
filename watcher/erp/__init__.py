"""The customer's system: an ERP format (bytes ⇄ orders, pure) times an exchange (folders)."""
