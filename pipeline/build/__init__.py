"""build_shards: select samples and write the final, globally shuffled WebDataset shards."""
