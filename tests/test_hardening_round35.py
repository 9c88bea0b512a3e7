"""Round thirty-five: a `skipped` entry of meta.json without a reason let a resume finish the
run and then end in a traceback (R35-3); a booted run with no room in $TMPDIR printed
virtme-ng's traceback and blamed the kernel (R35-4); at a low limit on open files, a boot
thread's Popen raised a traceback, and a scratch directory whose removal was cut short lost
the file that marks it, so no later boot removed it (R35-5). R35-1 is round 34's open-files
test; R35-2 (merge of booted shards without boots/) is test_scale's. A booted run's report
written elsewhere held its guests' text in a file every user could read (R35-6); then its
fix made any existing --out directory private, whatever else it held (R36-1); at low limits
on open files `report --out` ended in a traceback (R36-2), and a boot's QEMU fell short and
the kernel was blamed (R36-3)."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from analysis_runs import faultbench, killed_kernels_run
from groups import KERNELS_RUN
from images import require_boot_image

from faultbench.measurement.booted import held

FAULTBENCH = [sys.executable, "-m", "faultbench"]


def test_a_skipped_entry_without_a_reason_is_refused_at_load(tmp_path: Path) -> None:
    workload = tmp_path / "w.toml"
    workload.write_text('repetitions = 1\n[[matrix]]\nbacking = "memfd"\nsize = "1M"\n')
    run = tmp_path / "run"
    subprocess.run([*FAULTBENCH, "run", str(workload), "--out", str(run), "-q"], check=True,
                   capture_output=True, timeout=120)
    meta = json.loads((run / "meta.json").read_text())
    meta["skipped"], meta["finished_utc"] = [{"scenario": "a", "reason": None}], None
    (run / "meta.json").write_text(json.dumps(meta))
    for argv in (["run", "--resume", str(run), "-q"], ["report", str(run), "--no-figures"]):
        done = subprocess.run([*FAULTBENCH, *argv], capture_output=True, text=True,
                              timeout=120, check=False)
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
        assert "skipped has an entry without a reason (text)" in done.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
@pytest.mark.parametrize(("options", "said"), [
    ("size=512k", "has 0.5 MiB and "),
    ("size=300m,nr_inodes=12", "has 300.0 MiB and 11 inodes free"),  # R36-4: no inodes
])
def test_a_tmpdir_without_room_refuses_a_booted_run_before_it_starts(
        tmp_path: Path, options: str, said: str) -> None:
    image = require_boot_image()
    tiny = tmp_path / "tiny"
    tiny.mkdir(mode=0o700)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"{options},mode=700", "tmpfs", str(tiny)],
                   check=True)
    try:
        done = subprocess.run([*FAULTBENCH, "run", "quick-guest", "--kernel", image, "--out",
                               str(tmp_path / "run"), "-q"], capture_output=True, text=True,
                              timeout=300, check=False, env={**os.environ, "TMPDIR": str(tiny)})
    finally:
        subprocess.run(["umount", str(tiny)], check=True)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert f"TMPDIR {tiny} {said}" in done.stderr
    assert "free: a boot needs 128 MiB and 256 inodes there" in done.stderr
    assert not (tmp_path / "run").exists()


def test_a_private_directory_whose_removal_was_cut_short_is_still_removed_later(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> None:
    """Its HELD file, which marks it as a boot's, is removed last: a removal that stops
    early (here its first unlink fails, as at an fd limit) leaves it for a later boot."""
    made, fd = held.make_held("faultbench-guest-", str(tmp_path))
    os.close(fd)  # its boot is gone
    for n in range(30):
        (Path(made) / f"entry-{n}").write_text("")
    unlinked: list[str] = []
    real_unlink = os.unlink

    def unlink(path: str, *, dir_fd: int | None = None) -> None:
        unlinked.append(os.path.basename(path))
        real_unlink(path, dir_fd=dir_fd)
    monkeypatch.setattr(os, "unlink", unlink)
    held.remove_held(made)
    assert unlinked[-1] == held.HELD and len(unlinked) == 31

    made, fd = held.make_held("faultbench-guest-", str(tmp_path))
    os.close(fd)
    (Path(made) / "run.sh").write_text("")

    def failing(path: str, *, dir_fd: int | None = None) -> None:
        raise OSError(24, "Too many open files")
    monkeypatch.setattr(os, "unlink", failing)
    with pytest.raises(OSError):
        held.remove_held(made)
    monkeypatch.setattr(os, "unlink", real_unlink)
    assert (Path(made) / held.HELD).exists()
    held.remove_left(str(tmp_path))
    assert not Path(made).exists()
    assert "which an earlier boot left" in capfd.readouterr().err


@KERNELS_RUN
@pytest.mark.skipif(os.geteuid() != 0, reason="other users' reach is root's problem")
def test_a_booted_runs_report_written_elsewhere_is_out_of_other_users_reach(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """In a directory others can reach (not under pytest's, root's alone)."""
    run = killed_kernels_run(tmp_path_factory).run
    public = Path(tempfile.mkdtemp(prefix="faultbench-r35-", dir="/tmp"))
    try:
        public.chmod(0o755)
        (public / "other.txt").write_text("shared\n")
        # R36-1: an existing directory others share is refused, never made private
        done = faultbench("report", run, "--out", public, "--no-figures", check=False)
        assert done.returncode == 2 and done.stderr == (
            f"faultbench report: --out {public}: other users can reach it, and a booted run's "
            "report holds what its guests returned (docs/kernels.md): give a new directory, "
            "or one only you can reach\n"), done.stderr
        assert public.stat().st_mode & 0o777 == 0o755
        assert sorted(p.name for p in public.iterdir()) == ["other.txt"]
        out = public / "report"
        faultbench("report", run, "--out", out, "--no-figures")
        assert out.stat().st_mode & 0o777 == 0o700
        other = subprocess.run(["cat", str(out / "report.txt")], capture_output=True,
                               text=True, user=65534, group=65534, check=False)
        assert other.returncode != 0 and "Permission denied" in other.stderr
    finally:
        shutil.rmtree(public)


def test_a_low_limit_on_open_files_ends_a_report_elsewhere_in_one_line(tmp_path: Path) -> None:
    """R36-2: listing the figures' directory for dead temp files, at 7."""
    workload = tmp_path / "w.toml"
    workload.write_text('repetitions = 2\n[[matrix]]\nbacking = "memfd"\nsize = "1M"\n')
    subprocess.run([*FAULTBENCH, "run", str(workload), "--out", str(tmp_path / "run"), "-q"],
                   check=True, capture_output=True, timeout=120)
    for limit in range(5, 13):
        def few_files(limit: int = limit) -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
        done = subprocess.run([*FAULTBENCH, "report", str(tmp_path / "run"), "--out",
                               str(tmp_path / f"out{limit}")], capture_output=True, text=True,
                              preexec_fn=few_files, timeout=120, check=False)
        assert done.returncode in (0, 2) and "Traceback" not in done.stderr, (limit, done.stderr)
        assert done.returncode == 0 or (done.stderr.count("\n") == 1
                                        and "Too many open files" in done.stderr), done.stderr


def test_a_boot_under_a_low_limit_on_open_files_is_refused_before_it_starts(
        tmp_path: Path) -> None:
    """R36-3: QEMU fell short of its virtio event fds, the guest ended, and the boot said
    the kernel may not boot."""
    image = require_boot_image()

    def few_files() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (100, 100))
    done = subprocess.run([*FAULTBENCH, "run", "quick-guest", "--kernel", image, "--out",
                           str(tmp_path / "run"), "-q"], capture_output=True, text=True,
                          preexec_fn=few_files, timeout=300, check=False)
    assert done.returncode == 2 and done.stderr == (
        "faultbench run: the limit on open files is 100: a boot needs 1024 (QEMU, virtme-ng and "
        "the guest's worker, which inherits it): raise `ulimit -n`\n"), done.stderr
    assert not (tmp_path / "run").exists()


def test_a_umask_of_000_makes_nothing_others_may_write(tmp_path: Path) -> None:
    """R37-1: at umask 000 every directory faultbench made was 0777, then refused as another
    user's and left; a resume rewrote root's meta.json 0666."""
    workload = tmp_path / "w.toml"
    workload.write_text('repetitions = 2\n[[matrix]]\nbacking = "memfd"\nsize = "1M"\n')
    run = tmp_path / "new" / "run"
    for argv in (["run", str(workload), "--out", str(run), "-q"],
                 ["report", str(run), "--out", str(tmp_path / "report")]):
        done = subprocess.run([*FAULTBENCH, *argv], capture_output=True, text=True, timeout=120,
                              check=False, preexec_fn=lambda: os.umask(0))
        assert done.returncode == 0, done.stderr
    made = [run.parent, run, *run.iterdir(), tmp_path / "report",
            *(tmp_path / "report").rglob("*")]
    assert [p for p in made if p.lstat().st_mode & 0o022] == []
