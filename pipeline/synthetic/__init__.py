"""The synthetic world: generated scenes with captions and labels, and a server that can misbehave."""
