"""Captions: unicode repair, language identification and the caption rules of build_shards."""
