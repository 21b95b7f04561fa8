"""img2dataset 1.47.0 in a virtual environment of its own, for the tests and the benchmarks.

Its dependencies (OpenCV, albumentations, pandas, wandb, ...) must not meet the project's, so it
gets a venv, installed with the versions in ``benchmarks/img2dataset-constraints.txt``. The tests
keep it in pytest's cache folder under a key of that file, the img2dataset version and the
The tests use ``.venv-img2dataset``, made by ``make venv-img2dataset`` (a step of ``make test``,
like the Airflow venv), so no test reaches the package index; the download benchmark keeps its
own in ``benchmarks/_work``. img2dataset itself runs under the tests' socket guard, on loopback
only.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)

VERSION = "1.47.0"
CONSTRAINTS = Path(__file__).resolve().parents[1] / "benchmarks" / "img2dataset-constraints.txt"
# Environment of img2dataset runs: no update checks, no telemetry, loopback only.
QUIET_ENV = {
    "NO_ALBUMENTATIONS_UPDATE": "1",
    "WANDB_MODE": "disabled",
    "WANDB_DISABLED": "true",
    "HF_HUB_OFFLINE": "1",
    "no_proxy": "127.0.0.1,localhost",
    "NO_PROXY": "127.0.0.1,localhost",
}
_COMPLETE = ".corpusforge-complete"  # written last: a venv without it is rebuilt


def ensure_img2dataset(venv: Path) -> Path:
    """Create the img2dataset venv at ``venv`` unless it is complete; return its executable."""
    exe = venv / "bin" / "img2dataset"
    if (venv / _COMPLETE).exists() and exe.exists():
        return exe
    if (
        not (venv / _COMPLETE).exists()
        and exe.exists()
        and installed_version(venv / "bin" / "python") == VERSION
    ):
        (venv / _COMPLETE).write_text(VERSION)  # made before the marker existed (benchmarks/_work)
        return exe
    shutil.rmtree(venv, ignore_errors=True)
    log.info("creating %s with img2dataset==%s (one-off, a minute or more)", venv, VERSION)
    started = time.perf_counter()
    # The base interpreter's venv module (this process may run in the project's own venv).
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=_unguarded())
    install = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", f"img2dataset=={VERSION}"]
    if CONSTRAINTS.exists():
        install += ["-c", str(CONSTRAINTS)]
    subprocess.run(install, check=True, env={**_unguarded(), **QUIET_ENV})
    found = installed_version(venv / "bin" / "python")
    if found != VERSION:
        raise RuntimeError(f"img2dataset {VERSION} did not install into {venv} (found {found})")
    (venv / _COMPLETE).write_text(VERSION)
    log.info("img2dataset venv ready in %.0f s", time.perf_counter() - started)
    return exe


def installed_version(python: Path) -> str | None:
    """img2dataset's version in the venv of ``python``, or None."""
    if not python.exists():
        return None
    probe = "import importlib.metadata as m; print(m.version('img2dataset'))"
    result = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, env=_unguarded())
    return result.stdout.strip() if result.returncode == 0 else None


TEST_VENV = Path(__file__).resolve().parents[1] / ".venv-img2dataset"  # made by `make venv-img2dataset`


def installed_img2dataset(venv: Path = TEST_VENV) -> Path:
    """The img2dataset executable of an already complete venv; ``FileNotFoundError`` saying how
    to make it otherwise. Tests never install it themselves: pip would leave loopback."""
    exe = venv / "bin" / "img2dataset"
    if not ((venv / _COMPLETE).exists() and exe.exists()):
        raise FileNotFoundError(
            f"no img2dataset {VERSION} venv at {venv}: run `make venv-img2dataset` (make test does)"
        )
    return exe


def main() -> int:
    """``python -m testkit.img2dataset VENV``: create the venv (the Makefile's install step)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if len(sys.argv) != 2:
        print("usage: python -m testkit.img2dataset VENV", file=sys.stderr)
        return 2
    ensure_img2dataset(Path(sys.argv[1]))
    return 0


def run_img2dataset(exe: Path, runs: dict[str, list[str]], logs: Path, timeout: float = 600) -> None:
    """Run img2dataset once per entry of ``runs`` (name -> arguments), all at once, each logging
    to ``logs/NAME.log``; this environment plus :data:`QUIET_ENV` (the tests' socket guard stays
    on). Raise with a failed run's log tail."""
    env = {**os.environ, **QUIET_ENV}
    env.pop("VIRTUAL_ENV", None)
    logs.mkdir(parents=True, exist_ok=True)
    started = []
    try:
        for name, args in runs.items():
            with open(logs / f"{name}.log", "w") as out:
                process = subprocess.Popen([str(exe), *args], stdout=out, stderr=subprocess.STDOUT, env=env)
            started.append((name, process))
        for name, process in started:
            code = process.wait(timeout=timeout)
            if code != 0:
                tail = (logs / f"{name}.log").read_text()[-3000:]
                raise RuntimeError(f"img2dataset ({name}) exited with {code}:\n{tail}")
    finally:
        for _, process in started:
            if process.poll() is None:
                process.kill()
                process.wait()


def _unguarded() -> dict[str, str]:
    """This environment without PYTHONPATH (the tests' socket guard) and venv variables."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}


if __name__ == "__main__":
    sys.exit(main())
