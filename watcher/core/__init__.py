"""The pure core: TracOS work orders and the newer-wins rules. No I/O library, no clock."""
