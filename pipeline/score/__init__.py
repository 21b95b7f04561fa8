"""The score stage: CLIP similarity of every downloaded image-caption pair."""
