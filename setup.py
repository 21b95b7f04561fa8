"""Build of the one C extension; everything else about the package is in pyproject.toml.

``pipeline.image._phash`` computes phash()'s 32x32 Lanczos thumbnail and DCT hash in C (the
download job hashes every stored image). It is optional: without a C compiler the install still
succeeds and phash() computes the same bits with numpy, about half as fast.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "pipeline.image._phash",
            sources=["pipeline/image/_phash.c"],
            extra_compile_args=["-std=gnu11"],
            libraries=["m"],
            optional=True,
        )
    ]
)
