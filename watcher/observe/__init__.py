"""What people and machines read: console, metrics, HTTP API, logs, history, the heartbeat
and the status report.
"""
