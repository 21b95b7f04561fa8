"""Options of ``corpusforge import-img2dataset`` (and ``jobs/import_img2dataset.py``)."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.cli_options import option, section
from pipeline.image.options import ImageOptions
from pipeline.storage import storage_url


@dataclass(frozen=True)
class ImportOptions:
    """Where img2dataset's output is, which dataset it becomes, and how its images were made."""

    source: str = option(parse=storage_url, help="img2dataset's output folder (any fsspec URL)")
    dataset: str = option(parse=storage_url, help="dataset root folder to create (any fsspec URL)")
    # The image options of the img2dataset run: recorded in raw/_options.json, where dedup reads
    # how to prepare benchmark images like the corpus' (the format is taken from the images).
    image: ImageOptions = section(ImageOptions, "image options the img2dataset run used (for dedup)")
    overwrite: bool = option(False, help="delete the dataset's raw/ first instead of resuming")
