"""``make package``: corpusforge's wheel and the packed executor environment built from it.

    python -m tools.pack_env [--out-dir build/package] [--without torch,...] [--compress-level 1]

1. The wheel, with the C extension (``pipeline/image/_phash.c``), built from a copy of the
   sources so nothing is written into the checkout; a wheel without the extension is refused.
2. A fresh virtual environment (``OUT/NAME/``) on the base interpreter: the wheel's runtime
   dependencies (plus ``--extras``), then the wheel itself; never an editable install. pyspark
   is left out: Spark puts its own ``pyspark.zip`` and py4j on the Python workers' PYTHONPATH,
   and a second copy (0.5 GB) would only shadow nothing or clash with the cluster's version.
3. The environment checked from outside the checkout (``pipeline`` and its C extension import
   from the environment), then packed with venv-pack into ``OUT/NAME.tar.gz`` for
   ``spark-submit --archives OUT/NAME.tar.gz#environment``.

The environment's ``bin/python`` links to the base interpreter, so workers need the same Python
at the same path (see docs/scaling.md, "Packed environment").
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.cli_options import comma_strings, option, options_parser, parse_options, show_commas
from pipeline.errors import UserInputError
from pipeline.logs import setup_logging

log = logging.getLogger("corpusforge.package")

ROOT = Path(__file__).resolve().parents[1]
# What the wheel is built from (pyproject.toml's packages, setup.py's extension, the readme).
WHEEL_SOURCES = ("pyproject.toml", "setup.py", "README.md", "pipeline", "schemas")
# Never packed: Spark provides pyspark and py4j to its Python workers.
ALWAYS_WITHOUT = ("pyspark",)
# What executors that only run download (and dedup, build_shards) can do without: the model and
# training stack and the report's plotting.
DOWNLOAD_ONLY_WITHOUT = ("torch", "torchvision", "open-clip-torch", "tensorboard", "matplotlib")
# Run by the environment's own interpreter, outside the checkout: where pipeline comes from.
_CHECK = """
import json, sys, pipeline, pipeline.image._phash as phash, pipeline.download.job
print(json.dumps({"prefix": sys.prefix, "pipeline": pipeline.__file__, "phash": phash.__file__}))
"""


def base_python() -> str:
    """The interpreter this one's virtual environment (if any) was made from."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return str(Path(sys.base_prefix) / "bin" / version)


@dataclass(frozen=True)
class PackOptions:
    """What ``make package`` builds, and where."""

    out_dir: str = option("build/package", help="folder for the wheel, the environment and its archive")
    name: str = option("corpusforge-env", help="the environment's folder name; the archive is NAME.tar.gz")
    extras: tuple[str, ...] = option(
        ("s3",),
        parse=comma_strings,
        show=show_commas,
        help="corpusforge's optional dependency groups to install (s3: s3fs for s3:// paths)",
    )
    without: tuple[str, ...] = option(
        (),
        parse=comma_strings,
        show=show_commas,
        help="runtime dependencies to leave out besides pyspark, e.g. "
        f"{','.join(DOWNLOAD_ONLY_WITHOUT)} for executors that never score or train",
    )
    python: str = option(
        base_python(),
        help="the interpreter the environment is made from; workers need it at the same path",
    )
    # Level 1 halves the full environment (6.4 -> 3.4 GB) in 2.5 min; 4 saves 3% more in 3.8 min.
    compress_level: int = option(
        1, help="gzip level of the archive: 0 stores (fastest to pack and unpack), 9 is smallest"
    )
    no_archive: bool = option(False, help="build and check the environment, do not pack it")

    def __post_init__(self) -> None:
        if not 0 <= self.compress_level <= 9:
            raise UserInputError(f"--compress-level must be 0 to 9, got {self.compress_level}")


@dataclass(frozen=True)
class Packaged:
    """What :func:`package` made: the wheel, the environment and its archive (None: not packed)."""

    wheel: Path
    env: Path
    archive: Path | None


def _run(command: Sequence[str], **kwargs: object) -> subprocess.CompletedProcess:
    """Run ``command`` with its output captured; a failure raises with the output's tail."""
    log.debug("running %s", " ".join(command))
    done = subprocess.run(list(command), capture_output=True, text=True, check=False, **kwargs)
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed with exit code {done.returncode}:\n"
            f"{(done.stdout + done.stderr)[-4000:]}"
        )
    return done


def _clean_env() -> dict[str, str]:
    """This environment without PYTHONPATH and virtual-environment variables."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}


def build_wheel(out_dir: Path, source: Path = ROOT) -> Path:
    """corpusforge's wheel in ``out_dir`` (older ones there are removed), built from a copy of
    ``source``; raises UserInputError when the C extension did not build."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("corpusforge-*.whl"):
        old.unlink()
    with tempfile.TemporaryDirectory(prefix="corpusforge-wheel-") as tmp:
        copy = Path(tmp) / "src"
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.so", "*.egg-info")
        for name in WHEEL_SOURCES:
            if (source / name).is_dir():
                shutil.copytree(source / name, copy / name, ignore=ignore)
            else:
                copy.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source / name, copy / name)
        # The running interpreter's setuptools: no build environment to download.
        _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
              "-w", str(out_dir), str(copy)])  # fmt: skip
    (wheel,) = out_dir.glob("corpusforge-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        if not any(n.startswith("pipeline/image/_phash") and n.endswith(".so") for n in archive.namelist()):
            raise UserInputError(
                f"{wheel} has no pipeline/image/_phash extension: a C compiler and Python headers are "
                "needed (sudo apt-get install -y gcc python3-dev)"
            )
    return wheel


def _metadata(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return archive.read(name).decode()


def wheel_requirements(wheel: Path, extras: Iterable[str] = (), without: Iterable[str] = ()) -> list[str]:
    """The wheel's runtime requirements with ``extras``, less pyspark and the names in ``without``."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    dropped = {canonicalize_name(n) for n in (*ALWAYS_WITHOUT, *without)}
    environments = [{"extra": ""}, *({"extra": e} for e in extras)]
    chosen: list[str] = []
    for line in _metadata(wheel).splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        requirement = Requirement(line.split(":", 1)[1].strip())
        name = canonicalize_name(requirement.name)
        if name == "corpusforge" or name in dropped:
            continue
        marker = requirement.marker
        if marker is None or any(marker.evaluate(env) for env in environments):
            requirement.marker = None
            chosen.append(str(requirement))
    return chosen


def wheel_digest(wheel: Path) -> str:
    """sha256 of the wheel's member names and contents (its zip timestamps change every build)."""
    digest = hashlib.sha256()
    with zipfile.ZipFile(wheel) as archive:
        for name in sorted(archive.namelist()):
            digest.update(name.encode() + b"\0" + archive.read(name) + b"\0")
    return digest.hexdigest()


def build_env(env: Path, wheel: Path, requirements: Sequence[str], python: str) -> dict[str, str]:
    """A fresh virtual environment at ``env`` with ``requirements`` and then the wheel (no deps).

    The environment gets no pip of its own: the running pip installs into it (``pip --python``).
    Returns where the environment's interpreter finds ``pipeline`` and its C extension, checked
    to be inside ``env``.
    """
    if not Path(python).is_file():
        raise UserInputError(f"--python {python}: no such interpreter")
    shutil.rmtree(env, ignore_errors=True)
    _run([python, "-m", "venv", "--without-pip", str(env)])
    pip = [sys.executable, "-m", "pip", "--python", str(env / "bin" / "python"), "install", "-q"]
    _run([*pip, *requirements], env=_clean_env())
    _run([*pip, "--no-deps", str(wheel)], env=_clean_env())
    # From a folder outside the checkout, with no PYTHONPATH: the environment alone.
    with tempfile.TemporaryDirectory(prefix="corpusforge-check-") as cwd:
        done = _run([str(env / "bin" / "python"), "-c", _CHECK], cwd=cwd, env=_clean_env())
    found = json.loads(done.stdout.strip().splitlines()[-1])
    inside = Path(found["prefix"]).resolve()
    for key in ("pipeline", "phash"):
        if not Path(found[key]).resolve().is_relative_to(inside):
            raise RuntimeError(f"{env}: {key} imports from {found[key]}, outside the environment")
    return found


def pack_env(env: Path, archive: Path, compress_level: int) -> Path:
    """``env`` packed by venv-pack into ``archive`` (a .tar.gz), replaced only once complete."""
    import venv_pack

    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name(archive.name + ".partial")
    venv_pack.pack(
        prefix=str(env), output=str(partial), format="tar.gz", compress_level=compress_level, force=True
    )
    partial.chmod(0o644)  # venv-pack writes it private
    partial.replace(archive)
    return archive


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if not p.is_symlink())


def package(options: PackOptions) -> Packaged:
    """Build the wheel, the environment and (unless ``no_archive``) its archive."""
    if not Path(options.python).is_file():
        raise UserInputError(f"--python {options.python}: no such interpreter")
    out = Path(options.out_dir).resolve()
    started = time.monotonic()
    wheel = build_wheel(out)
    log.info("built %s (%.1f s)", wheel, time.monotonic() - started)
    requirements = wheel_requirements(wheel, options.extras, options.without)
    env = out / options.name
    started = time.monotonic()
    found = build_env(env, wheel, requirements, options.python)
    log.info(
        "environment %s: %.0f MB, %d requirements, pipeline from %s (%.1f s)",
        env, _size(env) / 1e6, len(requirements), found["pipeline"], time.monotonic() - started,
    )  # fmt: skip
    if options.no_archive:
        return Packaged(wheel, env, None)
    started = time.monotonic()
    archive = pack_env(env, out / f"{options.name}.tar.gz", options.compress_level)
    log.info(
        "packed %s: %.0f MB at gzip level %d (%.1f s)",
        archive, _size(archive) / 1e6, options.compress_level, time.monotonic() - started,
    )  # fmt: skip
    return Packaged(wheel, env, archive)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tools.pack_env [options]``; exit code 2 on a bad option or input."""
    setup_logging()
    description = "Build corpusforge's wheel and the packed executor environment (make package)."
    parser = options_parser(PackOptions, "python -m tools.pack_env", description)
    options = parse_options(PackOptions, parser, argv)
    try:
        package(options)
    except UserInputError as exc:
        log.error("%s", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
