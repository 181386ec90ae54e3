"""The code version and environment recorded with every model version the registry holds."""

from __future__ import annotations

import functools
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from driftline import __version__
from driftline.schemas.model_version import Environment

KEY_PACKAGES = ("river", "numpy", "scikit-learn", "pandas", "pydantic")


@functools.cache
def code_version() -> str:
    """driftline's version, plus ``git describe`` when running from a git checkout.

    >>> code_version().startswith(__version__)
    True
    """
    source = Path(__file__).resolve().parents[1]
    if not (source.parents[1] / ".git").exists():  # installed, not a checkout of driftline
        return __version__
    try:
        done = subprocess.run(
            ["git", "-C", str(source), "describe", "--always", "--dirty", "--tags"],
            capture_output=True,
            text=True,
            timeout=2,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return __version__
    described = done.stdout.strip()
    return f"{__version__} (git {described})" if done.returncode == 0 and described else __version__


@functools.cache
def current_environment() -> Environment:
    """Python's version and the versions of the key packages that are installed.

    >>> env = current_environment()
    >>> env.python == platform.python_version(), "numpy" in env.packages
    (True, True)
    """
    packages = {}
    for name in KEY_PACKAGES:
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            continue
    return Environment(python=platform.python_version(), packages=packages)
