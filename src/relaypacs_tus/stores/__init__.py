"""Upload stores: the local folder (embedded default) and S3-compatible object storage."""
