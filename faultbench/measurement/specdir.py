"""A spec's `dir` written one way, so that one directory is one scenario, one row and one
`--by dir` value however it was spelled."""

from __future__ import annotations

import os
from pathlib import PurePath

from faultbench.measurement.spec import SpecError, shown


def absolute_dir(path: str) -> str:
    """A workload's `dir` (or `measure --dir`, `--only dir=`, compare's `--by dir` values)
    as the directory it names from here: a relative one joined to the working directory,
    each written one way (`/a/b/`, `/a//./b` and `//a/b` are `/a/b`), so that the same
    directory matches as itself wherever it is given.

    A run records its specs and a resume measures them wherever it is started: a relative
    `dir` would then name another directory, or none. A `..` part is refused: `a/../b` is `b`
    only if `a` is no symbolic link, and kept as written it names one directory two ways."""
    if ".." in PurePath(path).parts:
        raise SpecError(f"dir {shown(path, 200)}: '..' is not folded (the part before it may be a "
                        "symbolic link) and would give the directory a second name; leave it out")
    try:  # for a relative one: the working directory may have been removed
        return folded_dir(path if path.startswith("/") else PurePath(os.getcwd(), path))
    except OSError as exc:
        raise SpecError(f"dir {shown(path)} is relative to the working directory, which "
                        f"cannot be read: {exc.strerror}") from None


def folded_dir(path: str | PurePath) -> str:
    """A directory path written one way: POSIX lets a path's leading `//` mean something
    else than `/`, so PurePath keeps exactly two; Linux does not, and `//a` is `/a`."""
    text = str(PurePath(path))
    return text[1:] if text.startswith("//") else text
