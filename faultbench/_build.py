"""cffi (API mode) builder for faultbench.measurement._native, and the build step that
links the mapper program beside it (setup.py's build_ext), run by setuptools at install time."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sysconfig
from pathlib import Path

from cffi import FFI
from setuptools.command.build_ext import build_ext

NATIVE = Path(__file__).resolve().parent.parent / "native"
SOURCES = ["counters.c", "fill.c", "folios.c", "interrupt.c", "launch.c", "mapper_block.c",
           "mapper_process.c", "mappers.c", "measure.c", "present.c", "profile.c", "region.c",
           "tick.c", "touch.c", "uffd.c", "uffd_ops.c"]
# the program a forked mapper execs (native/mapper_main.c): one mapper's sources, without
# the sample's orchestration (mappers.c, mapper_*.c) and the app launches (launch.c)
MAPPER_PROGRAM = "_mapper"
PACKAGE = ("faultbench", "measurement")  # where the module and the program go
MAPPER_SOURCES = ["mapper_main.c", *(name for name in SOURCES
                                     if name != "launch.c" and not name.startswith("mapper"))]
COMPILE_ARGS = ["-std=gnu99", "-O2", "-Wall", "-Wextra"]
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
    "faultbench.measurement._native",
    '#include "faultbench.h"',
    # setuptools insists on paths relative to setup.py, which is the working directory
    sources=[os.path.relpath(NATIVE / name) for name in SOURCES],
    include_dirs=[os.path.relpath(NATIVE)],
    extra_compile_args=COMPILE_ARGS,
    libraries=["pthread"],
)


class BuildExtWithMapper(build_ext):
    """build_ext that also links the mapper program into the package beside the module (and,
    for an editable install, copies it into the checkout as setuptools does the module)."""

    def build_extension(self, ext: object) -> None:
        super().build_extension(ext)
        objects = self.compiler.compile(
            [os.path.relpath(NATIVE / name) for name in MAPPER_SOURCES],
            output_dir=os.path.join(self.build_temp, MAPPER_PROGRAM),
            include_dirs=[os.path.relpath(NATIVE)], extra_postargs=COMPILE_ARGS)
        self.compiler.link_executable(objects, MAPPER_PROGRAM, libraries=["pthread"],
                                      output_dir=os.path.join(self.build_lib, *PACKAGE))

    def _in_checkout(self) -> str:
        package = self.get_finalized_command("build_py").get_package_dir(".".join(PACKAGE))
        return os.path.join(package, MAPPER_PROGRAM)

    def copy_extensions_to_source(self) -> None:
        super().copy_extensions_to_source()
        self.copy_file(os.path.join(self.build_lib, *PACKAGE, MAPPER_PROGRAM),
                       self._in_checkout(), level=self.verbose)

    def get_outputs(self) -> list[str]:
        built = (self._in_checkout() if self.inplace
                 else os.path.join(self.build_lib, *PACKAGE, MAPPER_PROGRAM))
        return [*super().get_outputs(), built]


if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
