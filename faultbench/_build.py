"""cffi (API mode) builder for faultbench._native, run by setuptools at install time."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sysconfig
from pathlib import Path

from cffi import FFI

NATIVE = Path(__file__).resolve().parent.parent / "native"
SOURCES = ["counters.c", "interrupt.c", "launch.c", "mappers.c", "measure.c", "present.c",
           "profile.c",
           "region.c", "touch.c", "uffd.c", "uffd_ops.c"]
REQUIRED_HEADERS = ["linux/userfaultfd.h", "linux/perf_event.h", "sys/mman.h", "Python.h"]
INSTALL_HINT = "apt-get install gcc libc6-dev linux-libc-dev python3-dev"

CDEF_BEGIN, CDEF_END = "/* cdef begin", "/* cdef end */"


class NativeBuildError(SystemExit):
    """Stops `pip install` with one line. Raised while the package is being built, before
    faultbench can be imported, so it is a SystemExit and not a FaultbenchError."""


def _check_toolchain() -> None:
    """Fail with one actionable line instead of a compiler traceback."""
    compiler = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    if not compiler or shutil.which(compiler[0]) is None:
        raise NativeBuildError(
            f"faultbench: cannot build the native module: no C compiler "
            f"({' '.join(compiler) or 'cc'}) found. Install one: {INSTALL_HINT}"
        )
    probe = "".join(f"#include <{header}>\n" for header in REQUIRED_HEADERS)
    include = sysconfig.get_paths()["include"]
    result = subprocess.run(
        [*compiler, "-E", "-x", "c", "-I", include, "-o", os.devnull, "-"],
        input=probe, capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        missing = result.stderr.strip().splitlines()[0] if result.stderr.strip() else "?"
        raise NativeBuildError(
            f"faultbench: cannot build the native module: a header is missing ({missing}). "
            f"Install them: {INSTALL_HINT}"
        )


_check_toolchain()
ffibuilder = FFI()
header = (NATIVE / "faultbench.h").read_text()
# the public declarations, from the comment that opens them to the one that closes them
ffibuilder.cdef(header[header.index(CDEF_BEGIN):header.index(CDEF_END)])
ffibuilder.set_source(
    "faultbench._native",
    '#include "faultbench.h"',
    # setuptools insists on paths relative to setup.py, which is the working directory
    sources=[os.path.relpath(NATIVE / name) for name in SOURCES],
    include_dirs=[os.path.relpath(NATIVE)],
    extra_compile_args=["-std=gnu99", "-O2", "-Wall", "-Wextra"],
    libraries=["pthread"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
