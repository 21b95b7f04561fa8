"""Probe scores (``scores/probes/NNNNN.parquet``): one row per (scored sample, probe).

A long table, so one contract holds any set of probes: row ``(uid, probe, score)`` is the output
of the probe named ``probe`` (its ``--name`` at ``corpusforge probe train``) on the sample's stored
image embedding: a probability in [0, 1] for a binary probe, the predicted value for a regression
probe. Written by the score job's ``--probe`` (docs/score.md, "Probes").
"""

import pyarrow as pa

from schemas.contract import versioned

PROBES_VERSION = 1

PROBES_SCHEMA = versioned(
    "probes",
    PROBES_VERSION,
    [
        pa.field("uid", pa.string(), nullable=False),
        pa.field("probe", pa.string(), nullable=False),
        pa.field("score", pa.float32(), nullable=False),
    ],
)
