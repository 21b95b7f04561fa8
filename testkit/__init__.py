"""Servers and data makers shared by ``tests/`` and ``benchmarks/``; never shipped, never imported
by ``pipeline/``: the soak and hostile HTTP servers, fabricated datasets, dedup quality transforms
and synthetic training shards."""
