"""Build of the one C extension; everything else about the package is in pyproject.toml.

``pipeline.image._jpegdc`` reads a baseline JPEG's DC coefficients for the fast pHash. It is
optional: without a C compiler the install still succeeds and ``phash_bytes`` decodes with
Pillow instead (same hashes, about half the speed).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "pipeline.image._jpegdc",
            sources=["pipeline/image/_jpegdc.c"],
            extra_compile_args=["-std=gnu11"],
            libraries=["m"],
            optional=True,
        )
    ]
)
