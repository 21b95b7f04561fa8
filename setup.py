"""Build of the one C extension; everything else about the package is in pyproject.toml.

``pipeline.image._phash`` computes phash()'s 32x32 Lanczos thumbnail and DCT hash in C (the
download job hashes every stored image). It is optional: without a C compiler the install still
succeeds and phash() computes the same bits with numpy, about half as fast.

``CORPUSFORGE_NO_EXTENSION=1`` leaves it out: the Airflow venv's editable install (the DAG imports
only ``pipeline.orchestration``) then never rebuilds the ``.so`` in place, so it can be made at the
same time as ``.venv``, whose install builds it.
"""

import os

from setuptools import Extension, setup

EXTENSION = Extension(
    "pipeline.image._phash",
    sources=["pipeline/image/_phash.c"],
    extra_compile_args=["-std=gnu11"],
    libraries=["m"],
    optional=True,
)

setup(ext_modules=[] if os.environ.get("CORPUSFORGE_NO_EXTENSION") == "1" else [EXTENSION])
