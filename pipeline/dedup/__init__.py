"""Benchmark decontamination and near-duplicate removal (the dedup job)."""
