"""The kernel image the tests boot: Debian's default one (what linux-image-amd64 installs),
not merely the newest in /boot, so that installing another kernel does not change the tests."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

TEST_KERNEL_ENV = "FAULTBENCH_TEST_KERNEL"


def boot_image() -> str | None:
    """$FAULTBENCH_TEST_KERNEL, else linux-image-amd64's image, else the newest in /boot."""
    chosen = os.environ.get(TEST_KERNEL_ENV)
    if chosen:
        return chosen
    try:
        depends = subprocess.run(["dpkg-query", "-W", "-f", "${Depends}", "linux-image-amd64"],
                                 capture_output=True, text=True, check=False).stdout
    except OSError:
        depends = ""
    match = re.search(r"linux-image-(\S+?-amd64)\b", depends)
    if match and Path(f"/boot/vmlinuz-{match.group(1)}").is_file():
        return f"/boot/vmlinuz-{match.group(1)}"
    images = sorted(Path("/boot").glob("vmlinuz-*"))
    return str(images[-1]) if images else None


def require_boot_image() -> str:
    """The image, or skip (fail in CI, which must be able to boot one) naming what is missing."""
    import pytest

    from faultbench.measurement import guest

    image = boot_image()
    missing = guest.requirements(image or "/boot/vmlinuz-missing")
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must be able to boot a kernel image: {'; '.join(missing)}")
        pytest.skip(f"cannot boot a kernel image here: {'; '.join(missing)}")
    assert image is not None
    return image
