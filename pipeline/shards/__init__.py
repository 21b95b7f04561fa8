"""Writing WebDataset shards with the commit protocol."""
