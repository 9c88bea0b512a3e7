"""Round thirty-eight: virtme-ng's own configuration (`default_opts` in ~/.config/virtme-ng,
~/.virtme-ng.conf or /etc/virtme-ng.conf) overrode the options faultbench gave it, the
instruction clock, the memory and the guest's command among them, and under `sudo -E` a
user's HOME made it run that user's command as root (R38-1, R38-2: test_guest's one
scenarios boot runs with such a configuration in HOME). Minor: a guest that filled
$TMPDIR during its boot ended without anything naming $TMPDIR."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from analysis_runs import make_run
from images import require_boot_image
from test_hardening_round28_c import _finish, _guest, _redone, _unfinished

from faultbench.analysis.summary import summary

FAULTBENCH = [sys.executable, "-m", "faultbench"]

# run_in_guest with virtme-ng replaced by a guest that starts its command, fills $TMPDIR
# and ends as QEMU does when its guest dies (255); the host's side is real
_FILLING_GUEST = """
import os, sys
from faultbench.measurement.booted import guest
from faultbench.measurement.booted.scratch import STARTED

def filling(command, timeout_s, watchdog_end, scratch, private, cancel, stdout, held):
    open(os.path.join(scratch, STARTED), "w").close()
    with open(os.path.join(private, "disk"), "wb") as disk:
        try:
            while True:
                disk.write(bytes(1 << 20))
                disk.flush()
        except OSError:
            pass
    return 255, True

guest.run_streaming = filling
try:
    guest.run_in_guest(sys.argv[1], ["true"], timeout_s=60)
except guest.GuestError as exc:
    print(exc)
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_guest_that_fills_tmpdir_during_its_boot_names_it(tmp_path: Path) -> None:
    image = require_boot_image()
    small = tmp_path / "small"
    small.mkdir(mode=0o700)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=140m,mode=700", "tmpfs", str(small)],
                   check=True)
    try:
        done = subprocess.run([sys.executable, "-c", _FILLING_GUEST, image],
                              capture_output=True, text=True, timeout=120, check=False,
                              env={**os.environ, "TMPDIR": str(small)})
        left = os.listdir(small)
    finally:
        subprocess.run(["umount", str(small)], check=True)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert done.stdout.startswith("the guest (QEMU) ended after its command had started"), \
        done.stdout
    assert f"; $TMPDIR ({small}) is full: free some, or point TMPDIR at a filesystem with " \
        "room" in done.stdout, done.stdout
    assert left == [], left  # the filled scratch directory went with the boot


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_tmpfs_dir_without_room_for_the_file_is_refused_before_anything(
        tmp_path: Path) -> None:
    """R38 minor: a tmpfs `dir` was not checked against its free room (memfd is, against
    memory), and each sample whose file did not fit ended in a SIGBUS error, for good."""
    shm = tmp_path / "shm"
    shm.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(shm)], check=True)
    try:
        (shm / "someone-elses").write_bytes(bytes(12 << 20))
        workload = tmp_path / "w.toml"
        workload.write_text(f'repetitions = 1\n[[matrix]]\nbacking = "tmpfs"\nsize = "16M"\n'
                            f'dir = "{shm}"\nfill = ["write", "hole-read"]\n')
        done = subprocess.run([*FAULTBENCH, "run", str(workload), "--out",
                               str(tmp_path / "run"), "-q"], capture_output=True, text=True,
                              timeout=120, check=False)
    finally:
        subprocess.run(["umount", str(shm)], check=True)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert f"size 16M needs that much room in {shm}, which has 8.0 MiB free" in done.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="other users' programs are root's problem")
def test_a_qemu_on_path_that_another_user_can_swap_is_not_run(tmp_path: Path) -> None:
    """R38 minor: root ran the first qemu-system-x86_64 on PATH, a directory of another
    user's among them (sudo keeps a user's PATH where secure_path is unset). Such a PATH
    entry is left out now (round 39, test_hardening_round39); what remains is a link in a
    directory of root's to their program."""
    image = require_boot_image()
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    fake = theirs / "qemu-system-x86_64"
    fake.write_text(f"#!/bin/sh\ntouch {tmp_path}/ran\nexit 1\n")
    fake.chmod(0o755)
    os.chown(theirs, 65534, 65534)
    roots = tmp_path / "bin"
    roots.mkdir()
    (roots / "qemu-system-x86_64").symlink_to(fake)
    done = subprocess.run([*FAULTBENCH, "run", "quick-guest", "--kernel", image, "--out",
                           str(tmp_path / "run"), "-q"], capture_output=True, text=True,
                          timeout=120, check=False,
                          env={**os.environ, "PATH": f"{roots}:{os.environ['PATH']}"})
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert (f"qemu-system-x86_64, which a boot runs as root: {roots / 'qemu-system-x86_64'}: "
            f"its directory {theirs} is owned by uid 65534 (nobody); put root's own first on "
            "PATH") in done.stderr, done.stderr
    assert not (tmp_path / "ran").exists() and not (tmp_path / "run").exists()


def test_a_worker_that_cannot_start_names_what_could_not_be_run(tmp_path: Path) -> None:
    """R38 minor: "Permission denied" alone, as a user the interpreter's directory is closed
    to; the OSError's file is named (here an interpreter that is not there)."""
    workload = tmp_path / "w.toml"
    workload.write_text('repetitions = 1\n[[matrix]]\nbacking = "memfd"\nsize = "1M"\n')
    done = subprocess.run(
        [sys.executable, "-c", "import sys; sys.executable = '/nonexistent/python3'; "
         "from faultbench.cli import main; sys.exit(main(sys.argv[1:]))", "run", str(workload),
         "--out", str(tmp_path / "run"), "-q"],
        capture_output=True, text=True, timeout=120, check=False)
    last = done.stderr.splitlines()[-1]  # after a warning of a busy machine, if any
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert last.startswith("faultbench run: cannot start the measuring worker: No such file "
                           f"or directory (/nonexistent/python3); {tmp_path / 'run'} holds "
                           "no sample yet"), done.stderr


@pytest.mark.parametrize("plane", ["kvm-guest", "qemu", 7])
def test_a_native_runs_provenance_on_another_plane_is_refused_at_load(
        tmp_path: Path, plane: object) -> None:
    """R38 minor: a native run's provenance.plane is where its samples were measured; one
    saying otherwise (or no plane at all) was read without a word."""
    run = make_run(tmp_path, "run", 'repetitions = 1\n[[matrix]]\nbacking = "memfd"\nsize = "1M"\n')
    meta = json.loads((run / "meta.json").read_text())
    meta["provenance"]["plane"] = plane
    (run / "meta.json").write_text(json.dumps(meta))
    done = subprocess.run([*FAULTBENCH, "report", str(run), "--no-figures"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "provenance.plane is " in done.stderr and "(plane 'native')" in done.stderr


@pytest.mark.parametrize("total_kb", [1461436, 400000, "983712", None])
def test_a_guest_with_other_memory_than_it_was_booted_with_fails_its_boot(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, total_kb: object) -> None:
    """R38-1's second half: a guest of 1500M (virtme-ng's configuration had booted one) or
    of far less than the run's 1024M measures another machine: its boot fails, and a
    resume redoes it. A stand-in guest reports the shipped report's memory changed; the
    host's side is real (test_hardening_round28_c)."""
    run_dir, samples = _unfinished(tmp_path)
    boot = _finish(run_dir, monkeypatch, _guest(samples, lambda r: {
        **r, "guest": {**r["guest"], "memory": {**r["guest"]["memory"],
                                               "total_kb": total_kb}}}))
    assert boot["status"] == "failed"
    assert boot["reason"] == (f"the guest reports {total_kb!r} kB of memory, not that of the "
                              "1G it was booted with: its samples were not added")
    _redone(run_dir, monkeypatch, samples)


def test_a_booted_run_of_one_scenario_labels_its_rows_by_kernel_alone(tmp_path: Path) -> None:
    """R38 m7: with one scenario the summary's rows read "base:" and "patched:", a kernel's
    heading with nothing under it."""
    run = Path(shutil.copytree(Path(__file__).parents[1] / "results" / "uffd-2020-patch",
                               tmp_path / "run"))
    meta = json.loads((run / "meta.json").read_text())
    meta["scenarios"] = meta["scenarios"][:1]
    (run / "meta.json").write_text(json.dumps(meta))
    lines = (run / "samples.jsonl").read_text().splitlines(keepends=True)
    (run / "samples.jsonl").write_text("".join(
        line for line in lines if json.loads(line)["scenario"] == meta["scenarios"][0]["name"]))
    rows = summary(run).split("-\n", 1)[1].splitlines()
    assert [row.split()[0] for row in rows if row[:1].isalpha()] == ["base", "patched"]
