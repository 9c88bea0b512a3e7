"""Round nine: a kernel image rewritten in the middle of a booted run, results directories
virtme-ng cannot share, and images another user can change. Real commands and files; where
a test needs a guest's side of a boot, a stand-in writes what the guest would (a TCG boot
costs minutes), and everything the host does around it is the real code."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from console import one_line
from images import image_version, require_boot_image
from test_hardening_round4_input import fb
from test_hardening_round8 import one_scenario

from faultbench.commands.run import _start_booted
from faultbench.measurement.booted import guest
from faultbench.measurement.booted.boot_guest import write_report
from faultbench.measurement.booted.boots import parse_kernel, run_boots
from faultbench.measurement.booted.imagecheck import vng_refuses
from faultbench.measurement.image import boot_images
from faultbench.measurement.measure import sample_without_result
from faultbench.measurement.rundir.results import RunDir
from faultbench.measurement.runner import BootShare, RunError, every_mapper, unmeasured
from faultbench.measurement.spec import parse_size
from faultbench.measurement.trust import distrust
from faultbench.measurement.workload import load

ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="only root refuses other users' images")
NOBODY = 65534
RULE = "virtme-ng takes only ASCII letters, digits and _ + / . - in the paths it shares"


def _digest(path: Path | str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _other_image(image: str) -> str:
    """Another installed kernel of another release (a `make` that changed the tree)."""
    release = image_version(image)
    others = [p for p in boot_images() if os.access(p, os.R_OK) and image_version(p) and
              image_version(p) != release]
    if not others:
        pytest.skip("needs two kernel images of different versions in /boot")
    return others[0]


def _booted_run(tmp_path: Path, image: Path, boots: int) -> RunDir:
    """A booted run of `image` as `faultbench run --kernel` starts it, its lock released."""
    workload = tmp_path / "w.toml"
    workload.write_text(one_scenario(2))
    run_dir = _start_booted(load(str(workload)), tmp_path / "run", [parse_kernel(str(image))],
                            boots, None, {})
    run_dir.lock.release()
    return run_dir


def _guest_kernel(image: str) -> dict[str, str]:
    """What a guest of `image` records of its kernel: `uname -r` and `uname -v`, which a
    bzImage's header holds as "RELEASE (BUILDER) VERSION", and the ELF a boot through PVH
    is handed (measurement/booted/pvh.py) in its banner, "Linux version RELEASE (...) VERSION"."""
    header = image_version(image)
    if header is not None:
        return {"release": header.split()[0], "version": header[header.index("#"):]}
    banner = re.search(rb"Linux version (\S+) [^\n]*?(#\d[^\n]*)\n", Path(image).read_bytes())
    assert banner is not None
    return {"release": banner[1].decode(), "version": banner[2].decode()}


def _share_samples(own: RunDir, index: int, ran: dict[str, str]) -> None:
    """A sample of every measurement of boot `index`'s share, as the guest writes them in its
    own directory `own` (the host fails a boot whose share lacks one): each an error, since
    no guest measured it."""
    meta = own.read_meta()
    share = meta["boots"][index]
    kernel = next(k for k in meta["kernels"] if k["label"] == share["kernel"])
    tags = {"kernel": kernel["label"], "boot": index, "kernel_release": ran["release"],
            "kernel_version": ran["version"], "kernel_sha256": kernel["sha256"]}
    for unit in unmeasured(meta, [], BootShare(index, *share["rounds"], tags)):
        spec = unit.scenario.spec
        for sample in every_mapper([sample_without_result(
                spec, meta["plane"], "error", "a stand-in: no guest measured it").to_dict()],
                                   spec.mappers):
            own.append({**sample, "knobs": {}, "scenario": unit.scenario.name,
                        "round": unit.round, "warmup": unit.warmup, "profiled": False,
                        **tags})
    own.close()


def _stand_in(booted: list[str], reports: str | None = None,
              then: Any = None) -> Any:
    """guest.run_in_guest as a boot that finished: the boot's report, with the kernel of the
    image it was handed (or of `reports`), written where the guest writes it. `booted` gets
    the kernel of each image handed."""
    def boot(kernel: str, argv: list[str], rwdir: str, memory: str, **_: Any) -> int:
        booted.append(_guest_kernel(kernel)["version"])
        index = int(argv[5])
        ran = _guest_kernel(reports or kernel)
        own = RunDir(Path(rwdir))  # the only directory the guest is given: its boot's
        _share_samples(own, index, ran)
        # what its kernel leaves of the memory it was booted with: 96% of 1G here
        left = {"total_kb": parse_size(memory) * 96 // 100 // 1024}
        write_report(own, {"boot": index, "complete": True,
                           "guest": {"kernel": ran, "memory": left}})
        if then:
            then()
        return 0
    return boot


def test_an_image_rewritten_during_a_run_is_not_booted_under_the_old_hash(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """R9-3: the image was hashed at the start only, and its path handed to every boot: a
    `make` during boot 1 had boot 2 boot the new kernel, recorded as the old one, ok."""
    first = require_boot_image()
    second = _other_image(first)
    image = tmp_path / "tree" / "bzImage"
    image.parent.mkdir()
    shutil.copy(first, image)
    run_dir = _booted_run(tmp_path, image, boots=2)
    was, now = _digest(first), _digest(second)
    booted: list[str] = []
    monkeypatch.setattr(guest, "run_in_guest", _stand_in(
        booted, then=lambda: shutil.copy(second, image)))  # the make, while boot 1 ran
    meta = run_boots(run_dir, quiet=True)
    assert booted == [_guest_kernel(first)["version"]]  # boot 2 never reached QEMU
    assert [b["status"] for b in meta["boots"]] == ["ok", "failed"]
    assert meta["boots"][1]["reason"] == (
        f"{image} changed since the run started (sha256 {was[:12]}, now {now[:12]}): this "
        "boot was not run; put back the image the run started with and resume (faultbench "
        f"run --resume {run_dir.path}), or start a new run for the new one")
    # the run's identity is the first image: a resume refuses in one line, changing nothing
    before = (run_dir.path / "meta.json").read_bytes()
    done = fb("run", "--resume", run_dir.path, "-q")
    assert done.returncode == 2
    assert one_line(done.stderr) == (
        f"faultbench run: kernel {meta['kernels'][0]['label']}: {image} changed since the run "
        f"started (sha256 {was[:12]}, now {now[:12]}): put back the image the run started "
        "with to finish it, or start a new run")
    assert (run_dir.path / "meta.json").read_bytes() == before


def test_each_boot_boots_a_private_copy_and_removes_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    image = Path(require_boot_image())
    run_dir = _booted_run(tmp_path, image, boots=1)
    handed: list[str] = []

    def boot(kernel: str, argv: list[str], rwdir: str, **kw: Any) -> int:
        handed.append(kernel)
        return _stand_in([])(kernel, argv, rwdir, **kw)
    monkeypatch.setattr(guest, "run_in_guest", boot)
    assert run_boots(run_dir, quiet=True)["boots"][0]["status"] == "ok"
    assert handed == [str(run_dir.path.resolve() / "boots" / "0.d" / "kernel-image")]
    assert not Path(handed[0]).exists()


def test_a_guest_that_reports_another_kernel_fails_its_boot(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """R9-3: the release and version the guest reports were recorded and never compared."""
    first = require_boot_image()
    second = _other_image(first)
    run_dir = _booted_run(tmp_path, Path(first), boots=1)
    monkeypatch.setattr(guest, "run_in_guest", _stand_in([], reports=second))
    meta = run_boots(run_dir, quiet=True)
    ran = _guest_kernel(second)
    assert meta["boots"][0]["status"] == "failed"
    assert meta["boots"][0]["reason"] == (
        f"the guest ran kernel {ran['release']} ({ran['version']}), not the run's "
        f"{meta['kernels'][0]['label']} ({meta['kernels'][0]['version']}): its samples were "
        "not added")


def test_the_characters_refused_are_virtme_ngs_own() -> None:
    """R9-4: virtme-run's pattern for --rwdir, less the space, which vng's `sh -c` line
    splits on."""
    from virtme.commands import run as virtme_run

    def virtme_takes(path: str) -> bool:
        match = virtme_run._RWDIR_RE.match(path)
        return bool(match) and match.group(1) == path and match.group(2) is None

    chars = [chr(c) for c in range(1, 0x300)] + ["\u2028", "\U0001f600"]
    ours = {c for c in chars if vng_refuses(f"/r/a{c}b") is None}
    theirs = {c for c in chars if virtme_takes(f"/r/a{c}b")}
    assert ours == theirs - {" "}
    assert vng_refuses("/r/caf\u00e9") == "'\u00e9' (U+00E9)"
    assert vng_refuses("/r/a\nb") == "(U+000A)"


@pytest.mark.parametrize("char", [":", ",", "=", "@", "~", "%", "\u00e9", " "])
def test_a_results_directory_virtme_cannot_share_is_refused_before_it_is_made(
        tmp_path: Path, char: str) -> None:
    """R9-4: the directory was made, then every boot failed blaming the kernel, and its
    resume failed the same way for ever; with `=` virtme shared another directory."""
    image = require_boot_image()
    workload = tmp_path / "w.toml"
    workload.write_text(one_scenario(2))
    out = tmp_path / f"fa{char}64K"
    done = fb("run", workload, "--kernel", image, "--boots", "1", "--out", out)
    assert done.returncode == 2
    assert one_line(done.stderr) == (
        f"faultbench run: {out} has {vng_refuses(str(out))}: {RULE}, so no boot could write "
        "there; choose another directory")
    assert not out.exists()


def test_resume_of_a_run_moved_where_virtme_cannot_share_it_is_refused(
        tmp_path: Path) -> None:
    run_dir = _booted_run(tmp_path, Path(require_boot_image()), boots=1)
    moved = run_dir.path.rename(tmp_path / "run:moved")
    before = (moved / "meta.json").read_bytes()
    done = fb("run", "--resume", moved, "-q")
    assert done.returncode == 2
    assert one_line(done.stderr) == (
        f"faultbench run: {moved} has ':' (U+003A): {RULE}, so no boot could write there; "
        "choose another directory")
    assert (moved / "meta.json").read_bytes() == before  # no boot marked running


def test_a_tmpdir_virtme_cannot_share_is_refused_before_a_boot(tmp_path: Path) -> None:
    """Each boot shares a scratch directory made in $TMPDIR."""
    image = require_boot_image()
    tmp = tmp_path / "t@x"
    tmp.mkdir()
    done = subprocess.run([sys.executable, "-m", "faultbench", "measure", "--size", "1M",
                           "--kernel", image], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TMPDIR": str(tmp),
                               "PYTHONPATH": str(Path(__file__).parents[1])})
    assert done.returncode == 2
    assert one_line(done.stderr) == (
        f"faultbench measure: --kernel {image}: TMPDIR {tmp} has '@' (U+0040): {RULE}; set "
        "another TMPDIR")


def _image_in(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    image = directory / "bzImage"
    shutil.copy(require_boot_image(), image)
    return image


@ROOT
def test_an_image_another_user_owns_is_refused(tmp_path: Path) -> None:
    """R9-8: root booted it without a word; the guest reads the host's files as root."""
    image = _image_in(tmp_path / "k")
    os.chown(image, NOBODY, NOBODY)
    workload = tmp_path / "w.toml"
    workload.write_text(one_scenario(2))
    out = tmp_path / "run"
    done = fb("run", workload, "--kernel", image, "--out", out)
    assert done.returncode == 2
    assert one_line(done.stderr) == (
        f"faultbench run: --kernel {image}: {image} is owned by uid {NOBODY} (nobody): root "
        "boots no image another user can change (the guest reads this machine's files as "
        "root and writes the results directory); copy it where only root can write (install "
        "-m 0644 IMAGE /root/kernels/) and name the copy")
    assert not out.exists()
    done = fb("measure", "--size", "1M", "--kernel", image)
    assert done.returncode == 2 and f"{image} is owned by uid {NOBODY}" in one_line(done.stderr)


@ROOT
def test_an_image_in_a_directory_another_user_can_change_is_refused(tmp_path: Path) -> None:
    tree = tmp_path / "linux"
    image = _image_in(tree / "boot")
    os.chown(tree, NOBODY, NOBODY)
    assert distrust(str(image)) == f"{image}: its directory {tree} is owned by uid " \
        f"{NOBODY} (nobody)"
    with pytest.raises(RunError, match="root boots no image another user can change"):
        parse_kernel(str(tmp_path / "linux" / "boot" / "bzImage"))
    os.chown(tree, 0, NOBODY)
    tree.chmod(0o775)
    assert distrust(str(image)) == f"{image}: its directory {tree} is writable by " \
        "other users"


@ROOT
def test_an_image_of_roots_in_a_sticky_directory_is_booted(tmp_path: Path) -> None:
    """As /tmp: no one else may rename or replace root's file there."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    image = _image_in(shared)
    assert distrust(str(image)) is None
    assert parse_kernel(str(image)).sha256 == _digest(image)


def test_the_runs_kernel_record_is_unchanged(tmp_path: Path) -> None:
    """The sha256 recorded is the image's, as before: a run's identity."""
    image = Path(require_boot_image())
    run_dir = _booted_run(tmp_path, image, boots=1)
    meta: dict[str, Any] = json.loads((run_dir.path / "meta.json").read_text())
    assert meta["kernels"][0]["sha256"] == _digest(image)
    assert meta["kernels"][0]["image"] == str(image.resolve())
