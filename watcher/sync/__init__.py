"""The two pipelines between the ERP and the store, and what serves them: stats, retries,
the journal writer and the bookkeeping of a finished batch.
"""
