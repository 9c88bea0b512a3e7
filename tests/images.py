"""The kernel image the tests boot: Debian's default one (image.default_image), not merely the
newest in /boot, so that installing another kernel does not change the tests."""

from __future__ import annotations

import os

import pytest

from faultbench.measurement.booted import guest
from faultbench.measurement.image import default_image, header_version
from faultbench.measurement.rundir.regular import open_regular

TEST_KERNEL_ENV = "FAULTBENCH_TEST_KERNEL"


def boot_image() -> str | None:
    """$FAULTBENCH_TEST_KERNEL, else Debian's default image."""
    return os.environ.get(TEST_KERNEL_ENV) or default_image()


def require_boot_image() -> str:
    """The image, or skip (fail in CI, which must be able to boot one) naming what is missing."""
    image = boot_image()
    missing = guest.requirements(image or "/boot/vmlinuz-missing")
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must be able to boot a kernel image: {'; '.join(missing)}")
        pytest.skip(f"cannot boot a kernel image here: {'; '.join(missing)}")
    assert image is not None
    return image


def image_version(image: str) -> str | None:
    """header_version of the image at `image`; None when it cannot be read as a file."""
    try:
        with os.fdopen(open_regular(image), "rb") as fh:
            return header_version(fh)
    except OSError:
        return None
