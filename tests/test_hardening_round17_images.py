"""Round seventeen, kernel images read before they were checked. `run --kernel` hashed the
whole image before it asked who owns it: a sparse 64 GiB file another user planted kept root
hashing zeros for two minutes, and `run --resume` did the same (R17-1). An image over the
512 MiB a boot copies was accepted, the run directory made, and every boot and every resume
failed on that cap, in words for a results file ("the ones it writes are far smaller")
(R17-7). A resumed run whose image path had become a link passed its check and failed every
boot (R18-5). Fake images with a bzImage setup header, sparse where large; no guest is booted."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from inprocess import in_process
from test_hardening_round2 import refused
from test_hardening_round7 import _image_with_version
from test_hardening_round8 import one_scenario

from faultbench.measurement.booted import boots, guest, imagecheck
from faultbench.measurement.booted.boots import check_unchanged, parse_kernel
from faultbench.measurement.booted.imagecheck import IMAGE_MAX, pinned_copy
from faultbench.measurement.rundir.safefile import SafeDir
from faultbench.measurement.runner import RunError

ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="only root refuses other users' images")
NOBODY = 65534
PLANTED = 64 << 30  # R17-1's: 4 KiB allocated


def fake_image(path: Path, size: int) -> Path:
    """A bzImage setup header with a version string, then a hole up to `size` bytes (the
    round's mkkernel.py)."""
    with _image_with_version(path, b"6.1.0-fake (evil@x) #1 SMP").open("r+b") as fh:
        fh.truncate(size)
    return path


@pytest.fixture
def never_hashed(monkeypatch: pytest.MonkeyPatch) -> None:
    def hashed(fh: Any) -> str:
        raise AssertionError("the image was hashed before it was refused")
    monkeypatch.setattr(boots, "_sha256", hashed)


@ROOT
def test_another_users_sparse_image_is_refused_before_it_is_read(
        tmp_path: Path, never_hashed: None) -> None:
    """R17-1: refused on the open descriptor's owner, before a byte is hashed."""
    image = fake_image(tmp_path / "vmlinuz", PLANTED)
    os.chown(image, NOBODY, NOBODY)
    with pytest.raises(RunError, match=f"{image} is owned by uid {NOBODY} .*: root boots no "
                                       "image another user can change"):
        parse_kernel(str(image))
    kernel = {"label": "evil", "image": str(image), "sha256": "0" * 64}
    with pytest.raises(RunError, match=f"^kernel evil: {image} is owned by uid {NOBODY}"):
        check_unchanged(kernel)  # run --resume, before any boot


def test_an_image_over_the_cap_is_refused_in_one_line_before_it_is_read(
        tmp_path: Path, never_hashed: None) -> None:
    """R17-7 (and R17-1's size half): the run's own image, as root's, over IMAGE_MAX."""
    image = fake_image(tmp_path / "big", 600_000_000)
    why = (f"{image} is 600,000,000 bytes, over the {IMAGE_MAX:,} a kernel image may have (a "
           "bzImage is about 10 MB): too large to be one")
    with pytest.raises(RunError) as refusal:
        parse_kernel(f"big={image}")
    assert str(refusal.value) == f"--kernel big={image}: {why}"
    with pytest.raises(RunError) as refusal:  # a run started before the cap was checked
        check_unchanged({"label": "big", "image": str(image), "sha256": "0" * 64})
    assert str(refusal.value) == f"kernel big: {why}"
    with SafeDir.open(tmp_path / "boot", create=True) as into:  # a boot's own copy
        assert pinned_copy(str(image), "0" * 64, into, "RESUME") == (why, "", None)
        assert os.listdir(into.fd) == []


def test_the_cap_is_the_largest_image_taken(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imagecheck, "IMAGE_MAX", 1 << 16)
    fitting = fake_image(tmp_path / "fits", 1 << 16)
    assert parse_kernel(str(fitting)).release == "6.1.0-fake"
    with pytest.raises(RunError, match="65,537 bytes, over the 65,536 a kernel image may have"):
        parse_kernel(str(fake_image(tmp_path / "over", (1 << 16) + 1)))


def test_run_refuses_the_image_before_the_run_directory_is_made(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """R17-7: the directory was made and the advised `run --resume` failed every time."""
    def boot(*args: Any, **kw: Any) -> int:
        raise AssertionError("a guest was started")
    monkeypatch.setattr(guest, "run_in_guest", boot)
    image = fake_image(tmp_path / "big", 600_000_000)
    workload = tmp_path / "w.toml"
    workload.write_text(one_scenario(2))
    out = tmp_path / "run"
    line = refused(in_process("run", workload, "--kernel", image, "--out", out, "-q"), "run")
    assert line == (f"faultbench run: --kernel {image}: {image} is 600,000,000 bytes, over "
                    f"the {IMAGE_MAX:,} a kernel image may have (a bzImage is about 10 MB): "
                    "too large to be one")
    assert not out.exists()


def test_measure_refuses_an_image_over_the_cap_before_qemu_reads_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`measure --kernel` hands the image to QEMU: it asked who owns it, not how large it is."""
    def boot(*args: Any, **kw: Any) -> int:
        raise AssertionError("a guest was started")
    monkeypatch.setattr(guest, "run_cli_in_guest", boot)
    monkeypatch.setattr(guest, "requirements", lambda image: [])  # QEMU and vng not needed
    image = fake_image(tmp_path / "big", 600_000_000)
    line = refused(in_process("measure", "--kernel", image, "--size", "1M"), "measure")
    assert line == (f"faultbench measure: --kernel {image}: {image} is 600,000,000 bytes, "
                    f"over the {IMAGE_MAX:,} a kernel image may have (a bzImage is about 10 "
                    "MB): too large to be one")


def test_resume_refuses_an_image_path_that_became_a_link(tmp_path: Path) -> None:
    """R18-5: a root-owned link to the same image passed check_unchanged, and each boot then
    failed on it ("does not read results through one"), recorded as a failed attempt."""
    image = fake_image(tmp_path / "image", 1 << 16)
    kernel = {"label": "k", "image": str(image), "sha256": parse_kernel(str(image)).sha256}
    check_unchanged(kernel)
    image.rename(tmp_path / "moved")
    image.symlink_to(tmp_path / "moved")
    with pytest.raises(RunError) as refusal:
        check_unchanged(kernel)
    assert str(refusal.value) == (
        f"kernel k: {image} is a symbolic link now, where the run started with the image "
        "itself: put the image back at that path to finish it, or start a new run")
