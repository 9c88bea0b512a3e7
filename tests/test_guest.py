"""Booted kernel images: fault_around_bytes swept for real inside the Debian kernel under QEMU.

Two boots in all: one runs every knob scenario (tests/guest_knob_scenarios.py), one runs
`faultbench measure --kernel` end to end from the host.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from groups import GUEST_SCENARIOS
from images import require_boot_image

from faultbench.measurement.booted import guest, scratch, vngproc
from faultbench.measurement.spec import parse_size

HERE = Path(__file__).parent
SIZE = "16M"
FAULTBENCH = [sys.executable, "-m", "faultbench"]
GUEST_JOURNAL = "/run/faultbench/journal.json"  # the guest's /run is its own tmpfs


def _image() -> str:
    return require_boot_image()


def _expected_plane(clock: str | None = None) -> str:
    return guest.plane_for(*guest.resolve_clock(clock))


@pytest.fixture(scope="session")
def image() -> str:
    return _image()


@pytest.fixture(scope="session")
def scenarios(image: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One boot: the sweep, a SIGINT-ed run, a SIGKILL-ed run and `faultbench restore`. Its
    HOME holds a virtme-ng configuration that would take away the instruction clock, boot
    more memory and run another command (R38-1), and QEMU_MODULE_DIR a TCG module that is
    none (R39-3): none of it may reach the guest."""
    out = tmp_path_factory.mktemp("guest")
    shared = out / "shared"  # as a booted run shares only its boot's directory, boots/N.d
    shared.mkdir()
    home = tmp_path_factory.mktemp("home")
    (home / vngproc.VNG_CONFIG).parent.mkdir(parents=True)
    (home / vngproc.VNG_CONFIG).write_text(json.dumps({"default_opts": {
        "qemu_opts": ["-name", "not-faultbench"], "memory": "1500M",
        "exec": f"echo ran > {home}/exec-ran"}}))
    # and QEMU's modules would come from here (R39-3): a TCG that cannot load
    modules = tmp_path_factory.mktemp("qemu-modules")
    (modules / "accel-tcg-x86_64.so").write_bytes(b"not a module")
    started = time.monotonic()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(home))
        patch.setenv("QEMU_MODULE_DIR", str(modules))
        status = guest.run_in_guest(
            image, [sys.executable, str(HERE / "guest_knob_scenarios.py"),
                    str(shared / "out.json")],
            rwdir=str(shared), timeout_s=900, env={"FAULTBENCH_JOURNAL": GUEST_JOURNAL},
        )
    assert status == 0
    assert not (home / "exec-ran").exists(), "virtme-ng ran its configuration's command"
    data = json.loads((shared / "out.json").read_text())
    data["beside_on_host"] = sorted(p.name for p in out.iterdir())
    data["boot_s"] = time.monotonic() - started
    print(f"guest scenarios took {data['boot_s']:.1f} s")
    return data


def _qemu_with_scratch(under: Path) -> set[int]:
    """This test's QEMUs: their command line names a faultbench-guest- scratch directory
    under `under`, the temporary directory the test gave its guest (another test's guests,
    or a user's, started meanwhile are not counted)."""
    found = set()
    mark = f"{under}/faultbench-guest-".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"qemu-system" in cmdline and mark in cmdline:
            found.add(int(entry.name))
    return found


@GUEST_SCENARIOS
def test_sweep_takes_size_over_fault_around_bytes_faults(scenarios: dict) -> None:
    sweep = scenarios["sweep"]
    assert sweep["rc"] == 0, sweep["errors"]
    samples = sweep["samples"]
    read_back = [s["knobs"]["fault_around_bytes"] for s in samples]
    assert read_back == [4096, 16384, 65536, 2097152]
    size = parse_size(SIZE)
    for sample in samples:
        fab = sample["knobs"]["fault_around_bytes"]
        assert sample["status"] == "ok", sample["error"]
        assert sample["plane"] == _expected_plane()
        print(f"fault_around_bytes={fab}: {sample['faults_minor']} faults, "
              f"{sample['ns_per_page']:.0f} ns/page [{sample['plane']}]")
        assert abs(sample["faults_minor"] - size // fab) <= 4, (fab, sample["faults_minor"])


@GUEST_SCENARIOS
def test_instruction_clock_repeats_within_a_boot(scenarios: dict) -> None:
    """Four samples of one scenario in one boot. Under TCG the default clock is QEMU's
    instruction counter: the samples agree within 1%, where wall-clock TCG varies by tens
    of percent between samples on a busy host (and ~60% between boots)."""
    repeat = scenarios["repeat"]
    assert repeat["rc"] == 0, repeat["stderr"]
    samples = repeat["samples"]
    assert len(samples) == 4 and {s["status"] for s in samples} == {"ok"}
    plane = _expected_plane()
    assert {s["plane"] for s in samples} == {plane}
    assert {s["faults_minor"] for s in samples} == {4096}  # uffd-wp: no fault-around
    if plane != "tcg-icount":
        pytest.skip(f"this machine boots guests on {plane} (wall clock): nothing to repeat")
    assert {s["clock"] for s in samples} == {"icount"}
    touch = [s["touch_ns"] for s in samples]
    print(f"instruction clock, 16M memfd uffd=wp: {touch} virtual ns")
    assert (max(touch) - min(touch)) / min(touch) < 0.01, touch


@GUEST_SCENARIOS
def test_the_guest_has_the_memory_asked_for_whatever_virtme_ng_is_configured_to_give(
        scenarios: dict) -> None:
    """run_in_guest's 1G, not the 1500M of the virtme-ng configuration in HOME (R38-1): the
    kernel keeps some of it, 60-200 MiB at 1G here."""
    assert 700 * 1024 < scenarios["mem_total_kb"] <= 1024 * 1024, scenarios["mem_total_kb"]


@GUEST_SCENARIOS
def test_knob_is_back_after_the_sweep(scenarios: dict) -> None:
    assert scenarios["after_sweep"] == scenarios["original"]


@GUEST_SCENARIOS
def test_guest_never_imports_numpy_or_pandas(scenarios: dict) -> None:
    imported = set(scenarios["sweep"]["imported"])
    assert "faultbench" in imported  # the import log was really read
    assert not imported & {"numpy", "pandas", "matplotlib", "scipy"}


@GUEST_SCENARIOS
def test_guest_runs_no_udev_coldplug(scenarios: dict) -> None:
    """virtme-ng-init's coldplug is replaced by the virtio-ports links udev's rule would make,
    and udevd stopped (scratch.py): udev recorded no device and no udev process is left,
    the links name each port init needs, the scratch disk is mounted without udev's driver
    load, and the root's 9p mount reads ahead."""
    udev = scenarios["udev"]
    assert udev["processes"] == []
    assert udev["subsystems"] == []
    links = udev["links"]
    assert {"virtme.stdin", "virtme.stdout", "virtme.stderr", "virtme.ret"} <= set(links)
    assert all(re.fullmatch(r"\.\./vport\d+p\d+", target) for target in links.values()), links
    assert ["/var/tmp", "ext4"] in udev["mounts"]
    # the root's, mounted first; the shares mounted after the stand-in ran keep none
    root = min(udev["read_ahead_kb"], key=lambda bdi: int(bdi.removeprefix("9p-")))
    assert udev["read_ahead_kb"][root] == 512, udev["read_ahead_kb"]


@GUEST_SCENARIOS
def test_the_guest_writes_nothing_beside_its_shared_directory(scenarios: dict) -> None:
    """R29-5: a booted run shared its whole directory read-write, and a guest could rewrite
    the run's samples; now each boot's own (boots.py), and no write above it reaches the
    host, whatever the guest made of it (its tmpfs took it, or the read-only root refused)."""
    assert scenarios["beside"] in ("written", "Read-only file system")
    assert scenarios["beside_on_host"] == ["shared"]


@GUEST_SCENARIOS
def test_sigint_restores_the_knob(scenarios: dict) -> None:
    run = scenarios["sigint"]
    assert run["during"] is not None and run["during"] != scenarios["original"]
    assert run["rc"] == 130, run["stderr"]
    assert run["after"] == scenarios["original"]
    assert not run["journal_left"]
    assert "restored" in run["stderr"]


@GUEST_SCENARIOS
def test_sigkill_leaves_a_journal_that_restore_replays(scenarios: dict) -> None:
    run = scenarios["sigkill"]
    assert run["rc"] == -signal.SIGKILL
    assert run["during"] is not None and run["after_kill"] == run["during"]
    assert run["journal_left"]
    refused = run["next_run"]
    assert refused["rc"] == 2
    assert "faultbench restore" in refused["stderr"]
    assert len(refused["stderr"].strip().splitlines()) == 1
    assert run["after_refusal"] == run["during"]
    assert run["restore"]["rc"] == 0, run["restore"]["stderr"]
    assert f"-> {scenarios['original']}" in run["restore"]["stdout"]
    assert run["after_restore"] == scenarios["original"]
    assert not run["journal_after_restore"]


def test_measure_with_kernel_streams_guest_samples(image: str, tmp_path: Path) -> None:
    """Second boot: the user's command line, end to end, through a pipe like a user's, on a
    disk file (the guest's scratch ext4 disk: its root is read-only 9p, /var/tmp tmpfs).
    From a directory with a `faultbench` directory in it (a checkout after a plain `pip
    install .`, which has no compiled module): with `-P`, the guest runs the installed
    package, not that one. On the wall clock, the faster boot (the knob scenarios' boot
    covers the instruction clock). The image named through a link (R25-1: the private copy
    of the bytes checked is booted), and nothing of the boot left in TMPDIR."""
    shadow = tmp_path / "faultbench"
    shadow.mkdir()
    (shadow / "__init__.py").write_text("raise SystemExit('the shadow was imported')\n")
    (tmp_path / "links").mkdir()
    (tmp_path / "links" / "k").symlink_to(image)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    done = subprocess.run(
        [sys.executable, "-P", "-m", "faultbench", "measure", "--kernel",
         str(tmp_path / "links" / "k"), "--backing", "file", "--size", "16M", "--json", "--set",
         "fault_around_bytes=4096,65536", "--clock", "wall"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
        # the host's journal path (R7-5: passed into the guest, where the host's files are
        # read-only, it failed every knob write there after a whole boot)
        env={**os.environ, "FAULTBENCH_JOURNAL": str(tmp_path / "host" / "journal.json"),
             "TMPDIR": str(scratch)},
    )
    assert done.returncode == 0, done.stderr
    assert "shadow" not in done.stderr and not (tmp_path / "host").exists()
    assert list(scratch.iterdir()) == []
    samples = [json.loads(line) for line in done.stdout.splitlines()]
    assert [s["knobs"]["fault_around_bytes"] for s in samples] == [4096, 65536]
    assert {s["plane"] for s in samples} == {_expected_plane("wall")}
    assert {s["fs_type"] for s in samples} == {"ext4"}
    faults = [s["faults_minor"] + s["faults_major"] for s in samples]
    # fault-around shrinks the count; exactly by 16 only where ext4 has no large folios
    assert 0 < faults[1] < faults[0] <= parse_size("16M") // 4096


def test_missing_image_is_one_clear_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [*FAULTBENCH, "measure", "--kernel", str(tmp_path / "bzImage"), "--size", "1M"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "not found" in lines[0] and "Traceback" not in done.stderr


def test_hung_guest_is_killed_after_the_timeout(image: str, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the guest's scratch goes here
    started = time.monotonic()
    with pytest.raises(guest.GuestError, match="did not finish within 3 s"):
        guest.run_in_guest(image, ["sleep", "600"], timeout_s=3)
    assert time.monotonic() - started < 3 + 2 * vngproc.KILL_GRACE_S
    assert not _qemu_with_scratch(tmp_path)
    assert not list(tmp_path.iterdir()), "the scratch directory outlived the guest"


def test_sigterm_to_the_host_kills_the_guest(image: str, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from faultbench.measurement.booted import guest; "
         f"sys.exit(guest.run_in_guest({image!r}, ['sleep', '600']))"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    deadline = time.monotonic() + 30
    while not _qemu_with_scratch(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _qemu_with_scratch(tmp_path), "QEMU never started"
    proc.terminate()
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    assert not _qemu_with_scratch(tmp_path)


def test_init_finds_the_stand_ins_first(tmp_path: Path) -> None:
    """The `PATH=` kernel parameter names the stand-ins first, then the system's directories
    (the initramfs's busybox /init runs with it too); a path a parameter cannot hold gives
    none, and the guest runs udev as virtme-ng-init does."""
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    name, _, value = scratch.init_path(fd, str(tmp_path)).partition("=")
    assert name == "PATH"
    first, *rest = value.split(":")
    assert {"/usr/bin", "/bin"} <= set(rest)
    for tool in ("udevadm", "systemd-tmpfiles"):
        assert os.access(Path(first, tool), os.X_OK)
    spaced = tmp_path / "a b"
    spaced.mkdir()
    assert scratch.init_path(fd, str(spaced)) == ""
    os.close(fd)
