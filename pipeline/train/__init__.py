"""Contrastive (CLIP) training."""
