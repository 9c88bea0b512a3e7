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
SOURCES = ["counters.c", "measure.c", "region.c", "touch.c", "uffd.c"]
REQUIRED_HEADERS = ["linux/userfaultfd.h", "linux/perf_event.h", "sys/mman.h", "Python.h"]
INSTALL_HINT = "apt-get install gcc libc6-dev linux-libc-dev python3-dev"

CDEF = """
enum fb_backing { FB_ANON, FB_MEMFD, FB_TMPFS, FB_FILE, FB_HUGETLB };
enum fb_cache { FB_WARM, FB_COLD, FB_HOLE };
enum fb_pattern { FB_SEQ, FB_REVERSE, FB_RANDOM, FB_STRIDE, FB_SPARSE };
enum fb_uffd_mode { FB_UFFD_NONE, FB_UFFD_MISSING, FB_UFFD_WP, FB_UFFD_MINOR };
enum fb_registered { FB_REG_ALL, FB_REG_FIRST, FB_REG_LATER };
enum fb_status { FB_OK, FB_UNSUPPORTED, FB_ERROR };
struct fb_spec {
    int backing; int shared; int write; int cache; int pattern; int uffd;
    uint64_t size; uint64_t stride; uint64_t seed; const char *dir;
    int mappers; int concurrent; int threads; int registered;
    int64_t deadline_ns; int uffd_serve; int perf;
};
struct fb_result {
    int status; char error[256]; int64_t page_size; int64_t pages_touched; int64_t touch_ns;
    int64_t faults_minor; int64_t faults_major; int64_t perf_page_faults; int64_t cycles;
    int64_t instructions; int64_t pages_mapped; int64_t resident_before_pages;
    int64_t mmap_ns; int64_t munmap_ns; int64_t uffd_events; int64_t uffd_ns;
    uint64_t uffd_features; char fs_type[32]; char perf_reason[256]; char hw_reason[256];
    char uffd_reason[256]; char resident_reason[256];
};
int fb_run(const struct fb_spec *spec, struct fb_result *results);
"""


class NativeBuildError(SystemExit):
    pass


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
ffibuilder.cdef(CDEF)
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
