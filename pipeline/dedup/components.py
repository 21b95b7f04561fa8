"""Connected components of a duplicate graph, as a Spark job: one kept sample per group.

Groups are the connected components of an undirected edge list (single linkage: if A matches B
and B matches C, all three form one group even when A and C are far apart). Each group keeps its
**representative**: the member with the largest original image (``area``), ties broken by the
smallest uid. Everything runs in Spark DataFrames; the driver holds no pair, group or label, only
counts (one small job per round to decide whether to stop).

The algorithm is the alternating large-star / small-star contraction (Kiveris et al., "Connected
Components in MapReduce and Beyond", SoCC 2014; GraphFrames uses the same). Every node is named by
its *rank key*, a string that sorts like ``(-area, uid)``, so the smallest key of a component is its
representative. With each undirected edge stored once as ``(hi, lo)``, ``hi > lo``:

- *large-star*: every node ``u`` links each of its larger neighbours to the smallest key among
  ``u`` and its neighbours;
- *small-star*: every node ``u`` links itself and its smaller neighbours to the smallest of them.

Both keep the components and shrink them towards stars around their smallest key; a round is one
of each, and it takes O(log² n) rounds (in practice a handful even for long chains). The loop stops
when the edges form stars (no key is both a ``hi`` and a ``lo``, and every ``hi`` has one ``lo``):
then each ``(hi, lo)`` is a member and its representative. Each round's edges are materialised with
``localCheckpoint`` so the query plan (lineage) does not grow with the number of rounds.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

log = logging.getLogger(__name__)

GROUPS_SCHEMA = "uid string, shard int, representative string"

# Rank keys: 20 decimal digits of (2**63 - 1 - area), then the uid. Fixed width, so string order
# is (-area, uid) order for every long area (byte order of UTF-8 is code point order, like Python).
_KEY_DIGITS = 20
_MAX_LONG = (1 << 63) - 1
_MAX_INT = (1 << 31) - 1
# A safety stop: large-star / small-star needs O(log² n) rounds; far more means a bug.
MAX_ROUNDS = 200


def rank_key(area: Column, uid: Column) -> Column:
    """The rank key column of (``area``, ``uid``) columns: sorts like ``(-area, uid)``."""
    from pyspark.sql import functions as F

    inverted = F.lit(_MAX_LONG).cast("decimal(20,0)") - area.cast("decimal(20,0)")
    return F.concat(F.lpad(inverted.cast("string"), _KEY_DIGITS, "0"), uid)


def uid_of(key: Column) -> Column:
    """The uid column of a rank key column."""
    return key.substr(_KEY_DIGITS + 1, _MAX_INT)


def connected_groups(edges: DataFrame, samples: DataFrame) -> DataFrame:
    """Every group member that is not its group's representative, with the representative.

    ``edges``: columns ``a`` string, ``b`` string (undirected; duplicates and self-loops allowed).
    ``samples``: ``uid`` string, ``shard`` int, ``area`` long (at least every uid the edges name,
    one row per uid; an edge naming an unknown uid is ignored).
    Returns one row per group member that is NOT its group's representative: ``uid`` string,
    ``shard`` int, ``representative`` string. Representative = largest area, then smallest uid.
    """
    from pyspark.sql import functions as F

    stars = _contract(_keyed_edges(edges, samples))
    members = stars.select(uid_of(F.col("hi")).alias("uid"), uid_of(F.col("lo")).alias("representative"))
    return members.join(samples.select("uid", F.col("shard").cast("int").alias("shard")), "uid").select(
        "uid", "shard", "representative"
    )


def _keyed_edges(edges: DataFrame, samples: DataFrame) -> DataFrame:
    """The edges as distinct ``(hi, lo)`` rank keys, ``hi > lo`` (self-loops dropped)."""
    from pyspark.sql import functions as F

    keys = samples.select("uid", rank_key(F.col("area"), F.col("uid")).alias("key"))
    named = (
        edges.where(F.col("a") != F.col("b"))
        .join(keys.withColumnRenamed("uid", "a").withColumnRenamed("key", "ka"), "a")
        .join(keys.withColumnRenamed("uid", "b").withColumnRenamed("key", "kb"), "b")
    )
    return named.select(F.greatest("ka", "kb").alias("hi"), F.least("ka", "kb").alias("lo")).dropDuplicates()


def _contract(edges: DataFrame) -> DataFrame:
    """Large-star and small-star rounds until the edges are stars around each component's minimum."""
    current = edges.localCheckpoint(eager=True)
    for round_number in range(1, MAX_ROUNDS + 1):
        if _is_star_forest(current):
            log.info("connected components: %d rounds", round_number - 1)
            return current
        current = _small_star(_large_star(current)).localCheckpoint(eager=True)
    raise RuntimeError(f"connected components did not converge in {MAX_ROUNDS} rounds")


def _both_ways(edges: DataFrame) -> DataFrame:
    """Every edge from both ends: (node, neighbour)."""
    return edges.selectExpr("hi AS node", "lo AS other").unionByName(
        edges.selectExpr("lo AS node", "hi AS other")
    )


def _large_star(edges: DataFrame) -> DataFrame:
    """Each node's larger neighbours linked to the smallest key of the node and its neighbours."""
    from pyspark.sql import functions as F

    both = _both_ways(edges)
    smallest = both.groupBy("node").agg(F.least(F.min("other"), F.col("node")).alias("m"))
    larger = both.where(F.col("other") > F.col("node"))
    # No distinct here: at most one row per edge, and small-star's distinct follows.
    return larger.join(smallest, "node").select(F.col("other").alias("hi"), F.col("m").alias("lo"))


def _small_star(edges: DataFrame) -> DataFrame:
    """Each node and its smaller neighbours linked to the smallest of them."""
    from pyspark.sql import functions as F

    smallest = edges.groupBy("hi").agg(F.min("lo").alias("m"))
    joined = edges.join(smallest, "hi")
    neighbours = joined.where(F.col("lo") != F.col("m")).select(
        F.col("lo").alias("hi"), F.col("m").alias("lo")
    )
    centres = smallest.select("hi", F.col("m").alias("lo"))
    return neighbours.unionByName(centres).distinct()


def _is_star_forest(edges: DataFrame) -> bool:
    """True when every ``hi`` has one ``lo`` and no key is both a ``hi`` and a ``lo`` (one small job)."""
    from pyspark.sql import functions as F

    ends = edges.select(
        F.col("hi").alias("key"), F.lit(1).alias("as_hi"), F.lit(0).alias("as_lo")
    ).unionByName(edges.select(F.col("lo").alias("key"), F.lit(0).alias("as_hi"), F.lit(1).alias("as_lo")))
    per_key = ends.groupBy("key").agg(F.sum("as_hi").alias("as_hi"), F.max("as_lo").alias("as_lo"))
    bad = per_key.where((F.col("as_hi") > 1) | ((F.col("as_hi") > 0) & (F.col("as_lo") > 0)))
    return bad.limit(1).count() == 0
