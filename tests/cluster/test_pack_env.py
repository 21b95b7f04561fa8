"""tools/pack_env.py's pure parts: which requirements a packed environment gets, the cache key."""

from __future__ import annotations

import zipfile
from pathlib import Path

from tools.pack_env import DOWNLOAD_ONLY_WITHOUT, wheel_digest, wheel_requirements

METADATA = """Metadata-Version: 2.4
Name: corpusforge
Version: 0.1.0
Requires-Dist: pyspark<5,>=4.0
Requires-Dist: pyarrow>=15
Requires-Dist: Pillow>=10.3
Requires-Dist: torch==2.14.1
Requires-Dist: open_clip_torch==3.3.0
Provides-Extra: s3
Requires-Dist: s3fs>=2024.2; extra == "s3"
Provides-Extra: dev
Requires-Dist: corpusforge[s3]; extra == "dev"
Requires-Dist: pytest>=8; extra == "dev"
"""


def _wheel(
    path: Path, extra: bytes = b"", when: tuple[int, int, int, int, int, int] = (2026, 1, 1, 0, 0, 0)
) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(zipfile.ZipInfo("pipeline/__init__.py", when), b"" + extra)
        archive.writestr(zipfile.ZipInfo("corpusforge-0.1.0.dist-info/METADATA", when), METADATA)
    return path


def test_runtime_requirements_without_pyspark_nor_dev_extras(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path / "corpusforge-0.1.0-cp311-cp311-linux_x86_64.whl")
    assert wheel_requirements(wheel) == [
        "pyarrow>=15",
        "Pillow>=10.3",
        "torch==2.14.1",
        "open_clip_torch==3.3.0",
    ]
    assert wheel_requirements(wheel, extras=("s3",))[-1] == "s3fs>=2024.2"


def test_download_only_leaves_the_model_stack_out_whatever_the_spelling(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path / "corpusforge-0.1.0-cp311-cp311-linux_x86_64.whl")
    assert wheel_requirements(wheel, ("s3",), DOWNLOAD_ONLY_WITHOUT) == [
        "pyarrow>=15",
        "Pillow>=10.3",
        "s3fs>=2024.2",
    ]


def test_the_cache_key_follows_contents_not_zip_timestamps(tmp_path: Path) -> None:
    first = wheel_digest(_wheel(tmp_path / "a.whl"))
    assert wheel_digest(_wheel(tmp_path / "b.whl", when=(2027, 6, 5, 4, 3, 2))) == first
    assert wheel_digest(_wheel(tmp_path / "c.whl", extra=b"# changed")) != first
