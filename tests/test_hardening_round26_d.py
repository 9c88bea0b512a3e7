"""Hostile pass, round twenty-six (d): a kernel image is never opened so that it could block
root or lead it through a link it did not check (R26-2), and a booted `measure` whose
standard output fails ends as the native one does (R26-7)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from images import require_boot_image
from test_guest import _qemu_with_scratch
from test_hardening_round25_b import _small_tmpfs

from faultbench import cli
from faultbench.cli import OutputError
from faultbench.measurement.booted.imagecheck import boot_refusal
from faultbench.measurement.image import NOT_A_KERNEL

FAULTBENCH = [sys.executable, "-m", "faultbench"]
WORKLOAD = ('description = "x"\nrepetitions = 1\nwarmups = 0\n[defaults]\nbacking = "memfd"\n'
            'size = "1M"\n[[matrix]]\npattern = ["seq"]\n')
QUICK_S = 60  # a hang is what is tested: far longer than the second or two each one takes
NO_ROOM = "faultbench measure: cannot write standard output: No space left on device"
CLOSED = "faultbench measure: cannot write standard output: it is closed"


def _fifo(tmp_path: Path) -> Path:
    fifo = tmp_path / "bzImage"
    os.mkfifo(fifo)  # no writer: a blocking open of it never returns
    return fifo


def _one_line(done: subprocess.CompletedProcess[str], command: str, *words: str) -> str:
    assert done.returncode == 2, (done.returncode, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"faultbench {command}: "), done.stderr
    assert all(word in lines[0] for word in words), lines[0]
    return lines[0]


def test_a_fifo_kernel_is_refused_at_once_by_measure_and_run(tmp_path: Path) -> None:
    """R26-2: `measure --kernel FIFO` and `run W --kernel a=FIFO` end in one line each, and
    the run makes no directory."""
    fifo = _fifo(tmp_path)
    _one_line(subprocess.run([*FAULTBENCH, "measure", "--kernel", str(fifo), "--size", "1M"],
                             capture_output=True, text=True, timeout=QUICK_S),
              "measure", "a FIFO")
    workload = tmp_path / "w.toml"
    workload.write_text(WORKLOAD)
    _one_line(subprocess.run([*FAULTBENCH, "run", str(workload), "--kernel", f"a={fifo}",
                              "--out", str(tmp_path / "out")],
                             capture_output=True, text=True, timeout=QUICK_S),
              "run", "a FIFO")
    assert not (tmp_path / "out").exists()


def _refusal_in_a_child(path: Path) -> str:
    """boot_refusal(path) in a process of its own: a hang fails the test, not the suite."""
    done = subprocess.run(
        [sys.executable, "-c", "import sys\nfrom faultbench.measurement.booted.imagecheck "
         f"import boot_refusal\nprint(boot_refusal({str(path)!r}))"],
        capture_output=True, text=True, timeout=QUICK_S, check=True)
    return done.stdout.strip()


def test_the_image_check_never_blocks_on_a_fifo(tmp_path: Path) -> None:
    """R26-2, the open itself: what `requirements()` (so `measure --kernel`, `run --kernel`,
    `doctor`) reads an image through refuses a FIFO swapped in after the stat (here: never
    stat'ed first), directly and through a link, saying what it is."""
    fifo = _fifo(tmp_path)
    (tmp_path / "link").symlink_to(fifo)
    for path in (fifo, tmp_path / "link"):
        assert _refusal_in_a_child(path) == f"kernel image {path}: a FIFO, not a regular file"
    # and an image is still one, a non-kernel still not
    assert boot_refusal(require_boot_image()) is None
    assert boot_refusal("/etc/hostname") == f"/etc/hostname {NOT_A_KERNEL}"


@pytest.mark.skipif(os.geteuid() != 0, reason="the owner check is root's")
def test_another_users_fifo_is_refused_before_it_is_opened(tmp_path: Path) -> None:
    """R26-2 as reported: the image in another user's directory (who can swap a FIFO, or a
    link to a device, in under its name at any moment) is refused by its owner before
    anything opens it."""
    his = tmp_path / "his"
    his.mkdir()
    fifo = _fifo(his)
    os.chown(fifo, 65534, 65534)
    os.chown(his, 65534, 65534)
    refusal = _refusal_in_a_child(fifo)
    assert refusal.startswith(f"{fifo} is owned by uid 65534") and \
        "root boots no image another user can change" in refusal, refusal


def _measure(args: list[str], stdout: int | None, tmp: Path, close_stdout: bool = False
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FAULTBENCH, "measure", *args, "--size", "1M"], stdout=stdout,
        stderr=subprocess.PIPE, text=True, timeout=600,
        preexec_fn=(lambda: os.close(1)) if close_stdout else None,
        # the guest imports this checkout's faultbench (it starts `python -P`)
        env={**os.environ, "TMPDIR": str(tmp),
             "PYTHONPATH": str(Path(__file__).parent.parent)})


@pytest.mark.parametrize("closed", [True, False], ids=["closed", "dev-full"])
def test_a_closed_or_full_stdout_is_refused_before_a_boot(tmp_path: Path, closed: bool) -> None:
    """R26-7: as native `measure` says it, with its status, and before a minute of boot
    (/dev/full fails an empty write too)."""
    image = require_boot_image()
    line = CLOSED if closed else NO_ROOM
    with open("/dev/full", "w") as full:
        stdout = None if closed else full.fileno()
        native = _measure([], stdout, tmp_path, close_stdout=closed)
        started = time.monotonic()
        booted = _measure(["--kernel", image], stdout, tmp_path, close_stdout=closed)
    assert native.returncode == 2 and native.stderr.splitlines() == [line], native.stderr
    assert booted.returncode == 2 and booted.stderr.splitlines() == [line], booted.stderr
    assert time.monotonic() - started < QUICK_S and list(tmp_path.iterdir()) == []


def test_bytes_written_to_a_failing_standard_stream_fail_as_its_text_does() -> None:
    """R26-7, where the guest's output goes (sys.stdout.buffer): a full or closed standard
    output is cli's OutputError, a full standard error is dropped."""
    with open("/dev/full", "w") as full:
        with pytest.raises(OutputError, match="No space left on device"):
            cli._Stdout(full).buffer.write(b"sample\n")
            cli._Stdout(full).buffer.flush()
        with pytest.raises(OutputError, match="it is closed"):
            cli._Stdout(None).buffer.write(b"sample\n")
        stderr = cli._Stderr(full)
        stderr.buffer.write(b"a guest's line\n")
        stderr.buffer.flush()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a tmpfs")
def test_a_stdout_that_fills_during_the_boot_ends_it_as_native_measure(tmp_path: Path) -> None:
    """R26-7, the copy of the guest's output: one boot, its standard output a file on a full
    tmpfs (an empty write passes there; the guest's sample does not). The native one line
    and status, no traceback; the guest stopped, its scratch and the image's private copy
    removed."""
    image = require_boot_image()
    scratch = tmp_path / "tmp"
    scratch.mkdir(mode=0o700)
    with _small_tmpfs(tmp_path / "small") as small:
        with open(small / "filler", "wb", buffering=0) as filler, pytest.raises(OSError):
            while True:
                filler.write(bytes(1 << 20))
        with open(small / "out", "w") as out:
            native = _measure([], out.fileno(), scratch)
            booted = _measure(["--kernel", image], out.fileno(), scratch)
    assert native.returncode == 2 and native.stderr.splitlines() == [NO_ROOM], native.stderr
    assert booted.returncode == 2 and "Traceback" not in booted.stderr, booted.stderr
    lines = booted.stderr.splitlines()
    assert lines[0].startswith("faultbench measure: booting ") and lines[-1] == NO_ROOM, lines
    assert not _qemu_with_scratch(scratch) and list(scratch.iterdir()) == []
