"""Export: ESP formats, exactly-once batches with a manifest written last, and the send
ledger. Objects go through :mod:`profilecast.storage` (a local folder or S3)."""
