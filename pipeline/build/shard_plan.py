"""The deterministic parts of the shard plan: shuffle keys, shard counts, plan digests.

A sample's place in the output depends only on its uid, the seed and the set of kept samples:
kept samples are sorted by ``(shuffle_key(seed, uid), uid)`` and cut into runs of
``samples_per_shard``. Any rerun with the same inputs and options (a resume, a Spark task retry)
therefore puts every sample into the same shard at the same position.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def shuffle_key(seed: int, uid: str) -> int:
    """A pseudo-random signed 64-bit sort key of ``uid`` under ``seed`` (stable across runs and hosts)."""
    digest = hashlib.blake2b(f"{seed}\x00{uid}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def shard_count(kept: int, samples_per_shard: int) -> int:
    """Number of final shards for ``kept`` samples (only the last may be smaller)."""
    return -(-kept // samples_per_shard)


def plan_digest(uids: Iterable[str]) -> str:
    """Identity of one shard's content: its uids in order (the fingerprint of its marker)."""
    digest = hashlib.sha256()
    for uid in uids:
        digest.update(uid.encode())
        digest.update(b"\n")
    return digest.hexdigest()
