"""Options of ``corpusforge probe train``: every default and command-line option written once, here."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.cli_options import option
from pipeline.errors import UserInputError
from pipeline.probe.fit import FitSettings
from pipeline.probe.model import KINDS, TARGETS
from pipeline.storage import storage_url

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,63}$")
_FIT = "fitting"


@dataclass(frozen=True)
class ProbeTrainOptions:
    """A probe fitted on a dataset's stored image embeddings and a file of labels."""

    dataset: str = option(
        parse=storage_url, help="dataset root scored with jobs/score.py --save-embeddings (any fsspec URL)"
    )
    labels: str = option(
        parse=storage_url,
        metavar="FILE",
        help="uid,label rows (.csv/.tsv/.txt, or .parquet with uid and label columns); "
        "0/1 for a binary probe",
    )
    name: str = option(help="the probe's name: the score column build_shards filters on (e.g. watermark)")
    output: str = option(parse=storage_url, metavar="FILE", help="probe file to write (safetensors)")
    kind: str = option(
        "linear", choices=KINDS, help="linear (logistic/linear regression) or mlp (one hidden layer)"
    )
    target: str = option(
        "binary", choices=TARGETS, help="binary: probability of label 1; regression: predicts the label value"
    )
    hidden: int = option(256, help="hidden units of an mlp probe", group=_FIT)
    epochs: int = option(300, help="full-batch optimisation steps", group=_FIT)
    learning_rate: float = option(0.01, help="AdamW learning rate", group=_FIT)
    weight_decay: float = option(1e-4, help="AdamW weight decay (L2 regularisation)", group=_FIT)
    validation_fraction: float = option(
        0.2,
        help="share of the labels held out to measure the probe (per class for a binary probe)",
        group=_FIT,
    )
    folds: int = option(
        0,
        help="K >= 2: measure the probe and choose its suggested threshold on out-of-fold scores of "
        "every label (K stratified folds, each scored by a probe trained on the others), then train "
        "the probe on all labels; 0: one held-out split (--validation-fraction)",
        group=_FIT,
    )
    seed: int = option(0, help="seed of the split, the folds and the initial weights", group=_FIT)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise UserInputError(f"--name {self.name!r}: a letter, then up to 63 letters, digits, '_' or '-'")
        if not 0 < self.validation_fraction < 1:
            raise UserInputError(f"--validation-fraction must be in (0, 1), got {self.validation_fraction}")
        if self.folds == 1 or self.folds < 0:
            raise UserInputError(f"--folds must be 0 (one held-out split) or >= 2, got {self.folds}")
        if self.epochs < 1 or self.hidden < 1:
            raise UserInputError("--epochs and --hidden must be >= 1")
        if self.learning_rate <= 0 or self.weight_decay < 0:
            raise UserInputError("--learning-rate must be > 0 and --weight-decay >= 0")

    def fit_settings(self) -> FitSettings:
        return FitSettings(
            kind=self.kind,
            target=self.target,
            hidden=self.hidden,
            epochs=self.epochs,
            learning_rate=self.learning_rate,
            weight_decay=self.weight_decay,
            validation_fraction=self.validation_fraction,
            folds=self.folds,
            seed=self.seed,
        )
