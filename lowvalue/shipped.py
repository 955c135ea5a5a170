"""What ships with lowvalue besides its code: the rule library, the bundled example region and the reference model.

In git they live once, at the top of the repository (``rules/``, ``examples/synthetic_data/``,
``models/synthetic-region-100k/``), where authors and reviewers read them; a wheel carries them as package data
under ``lowvalue/_shipped/`` (copied there at build time by ``setup.py``), so an installed ``lowvalue`` scans, trains
and reports anywhere. :func:`shipped` is the one way code finds them: the package's copy through
:mod:`importlib.resources` when installed from a wheel, the checkout's folder in a source tree or an editable install.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from lowvalue.errors import InputError

PACKAGE_DATA = "_shipped"
"""The folder inside the installed package that holds the copies (see ``setup.py``)."""

SHIPPED = ("rules", "examples/synthetic_data", "models/synthetic-region-100k")
"""The folders that ship, as paths relative to the repository's top (and to :data:`PACKAGE_DATA` in a wheel)."""

_CHECKOUT = Path(__file__).resolve().parents[1]


def shipped(name: str) -> Path:
    """The folder ``name`` (one of :data:`SHIPPED`) on disk: the package data of an installed wheel, else the
    checkout's own folder (source tree, editable install)."""
    if name not in SHIPPED:
        raise ValueError(f"{name!r} is not shipped; one of {SHIPPED}")
    packaged = files("lowvalue").joinpath(PACKAGE_DATA, *name.split("/"))
    if isinstance(packaged, Path) and packaged.is_dir():
        return packaged
    here = _CHECKOUT / name
    if here.is_dir():
        return here
    raise InputError(str(packaged), "the shipped folder is missing from this installation (a wheel built without its "
                                    "package data?); reinstall lowvalue")
