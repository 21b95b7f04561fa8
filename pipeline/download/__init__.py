"""The download stage: URL list -> raw WebDataset shards with a per-row parquet."""
