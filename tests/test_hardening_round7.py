"""Round seven (a fresh hostile pass): untrusted numbers and times in another machine's
meta.json, a kernel image's neighbours (its build record, a blank version, a label with
escapes), kernels/build's advice for another user's cache entry, sysctls that limit the whole
machine, and runs started in the same second. Real commands, real files."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from analysis_runs import make_run
from console import one_line
from test_hardening_round4_input import SMALL, fb
from test_hardening_round5_merge import _copy
from test_kernels import build

from faultbench.measurement.booted.boots import parse_kernel
from faultbench.measurement.knobs.catalog import KnobError, resolve
from faultbench.measurement.knobs.requested import check_requested
from faultbench.measurement.runner import RunError

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("round7"), "run", SMALL)


def _tamper(run: Path, **changes: object) -> None:
    meta = json.loads((run / "meta.json").read_text())
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = meta
        for part in parents:
            node = node[part]
        node[leaf] = value
    (run / "meta.json").write_text(json.dumps(meta))


def test_a_machine_state_of_infinite_cpus_is_left_out_of_the_report(
        small: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(small, run)
    _tamper(run, machine_state__cpus=float("inf"))
    done = fb("report", "--no-figures", run)
    assert done.returncode == 0, done.stderr
    assert "machine: load" not in done.stdout


@pytest.mark.parametrize("started", [5, True, ["a"], 2**70, "0000", "2026-12-05T17:28:27Z\n"])
def test_merge_refuses_a_start_time_that_is_not_one(small: Path, tmp_path: Path,
                                                    started: object) -> None:
    other = _copy(small, tmp_path / "there")
    _tamper(other, started_utc=started)
    done = fb("merge", small, other, "--out", tmp_path / "out")
    assert done.returncode == 2, done.stdout
    assert one_line(done.stderr).endswith(
        "started_utc is not a time (YYYY-MM-DDTHH:MM:SSZ) or null")
    assert not (tmp_path / "out").exists()


def _image_with_version(path: Path, version: bytes) -> Path:
    """An x86 setup header ("HdrS" at 0x202) whose version string is `version`."""
    data = bytearray(0x10000)
    data[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", data, 0x20E, 0x100)
    data[0x300:0x300 + len(version) + 1] = version + b"\0"
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("version", [b"   ", b"\t\n", b"\x1b[2J"])
def test_an_image_with_a_blank_version_is_not_a_kernel(tmp_path: Path, version: bytes) -> None:
    image = _image_with_version(tmp_path / "blank.img", version)
    with pytest.raises(RunError, match="is not a bootable x86 kernel image"):
        parse_kernel(str(image))
    workload = tmp_path / "w.toml"
    workload.write_text(SMALL)
    done = fb("run", workload, "--kernel", image, "--out", tmp_path / "r")
    assert done.returncode == 2
    assert "is not a bootable x86 kernel image" in one_line(done.stderr)


def test_a_label_with_control_characters_is_refused(tmp_path: Path) -> None:
    image = _image_with_version(tmp_path / "k.img", b"6.1.0-test (x@y) #1")
    with pytest.raises(RunError, match="control characters are not allowed in a label"):
        parse_kernel(f"x\x1b[2J={image}")
    assert parse_kernel(f"ok={image}").label == "ok"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_build_record_beside_the_image_is_read_only_when_it_names_the_image(
        tmp_path: Path) -> None:
    image = _image_with_version(tmp_path / "bzImage", b"6.1.0-test (x@y) #1")
    record = tmp_path / "meta.json"
    claimed = {"source_package": "linux-source-6.1", "patches": [{"name": "p", "sha256": "0"}]}
    record.write_text(json.dumps(claimed))  # planted: names no image
    assert parse_kernel(str(image)).build is None
    record.write_text(json.dumps({**claimed, "image_sha256": _digest(image)}))
    assert parse_kernel(str(image)).build == {**claimed, "image_sha256": _digest(image)}
    record.unlink()
    os.mkfifo(record)  # would block an open for ever
    assert parse_kernel(str(image)).build is None
    record.unlink()
    record.symlink_to("/dev/zero")  # would be read for ever
    assert parse_kernel(str(image)).build is None


def test_a_booted_run_reads_a_fifo_beside_the_image_without_waiting(tmp_path: Path) -> None:
    """End to end: `run --kernel` gets past the FIFO and refuses what it refuses next (the
    workload's --boots) at once."""
    image = _image_with_version(tmp_path / "vmlinuz", b"6.1.0-test (x@y) #1")
    os.mkfifo(tmp_path / "meta.json")
    workload = tmp_path / "w.toml"
    workload.write_text(SMALL)
    done = subprocess.run([sys.executable, "-m", "faultbench", "run", str(workload),
                           "--kernel", str(image), "--boots", "99", "--out",
                           str(tmp_path / "r")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--boots" in one_line(done.stderr)


@needs_root
def test_kernels_build_says_to_remove_another_users_entry_not_to_chown_it(
        tmp_path: Path) -> None:
    """nobody planted an entry with an image and its matching record in a shared cache:
    made root's as the old advice said, it would be handed out as root's own build."""
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o1777)  # a team's shared cache
    entry = cache / "d42aabdd1c77af4201aa"
    entry.mkdir()
    (entry / "bzImage").write_bytes(b"nobody's image")
    (entry / "meta.json").write_text(json.dumps({"image_sha256": _digest(entry / "bzImage")}))
    for path in (entry, entry / "bzImage", entry / "meta.json"):
        os.chown(path, 65534, 65534)
    with pytest.raises(build.BuildError) as refused:
        build.check_entry(cache, entry.name)
    assert str(refused.value) == (
        f"cache entry {entry} is owned by uid 65534 (nobody): root neither builds in nor "
        "boots from an entry another user can change (its image could be theirs); remove it "
        f"(rm -rf {entry}) and build again")


@pytest.mark.parametrize("setting,refusal", [
    ("vm.nr_hugepages_mempolicy=100000000", "is more than 1/2 of this machine's memory"),
    ("vm.watermark_scale_factor=3000", "above 1000 (10% of memory)"),
    ("vm.overcommit_memory=2", "strict accounting of the whole machine"),
])
def test_sysctls_that_reach_every_process_are_bounded(setting: str, refusal: str) -> None:
    name, value = setting.split("=")
    knob = resolve(name)
    with pytest.raises(KnobError, match=refusal.replace("(", r"\(").replace(")", r"\)")):
        check_requested(knob, value)


def test_runs_started_in_one_second_get_directories_of_their_own(tmp_path: Path) -> None:
    workload = tmp_path / "w.toml"
    workload.write_text('repetitions = 1\nwarmups = 0\n[defaults]\nsize = "1M"\n'
                        '[[matrix]]\npattern = "seq"\n')
    runs = [subprocess.Popen([sys.executable, "-m", "faultbench", "run", str(workload), "-q"],
                             cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for _ in range(3)]
    outcomes = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], outcomes
    made = sorted((tmp_path / "results").iterdir())
    assert len(made) == 3 and all((d / "meta.json").is_file() for d in made)


def test_a_refused_run_leaves_no_default_directory(tmp_path: Path) -> None:
    """Refused by start() (more memory than the machine has), after the default name was
    chosen."""
    workload = tmp_path / "w.toml"
    workload.write_text('repetitions = 1\n[defaults]\nsize = "4T"\n[[matrix]]\n'
                        'pattern = "seq"\n')
    done = subprocess.run([sys.executable, "-m", "faultbench", "run", str(workload), "-q"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "memory" in one_line(done.stderr)
    assert not (tmp_path / "results").exists()


def test_compare_says_when_two_icount_runs_had_different_jobs(tmp_path: Path) -> None:
    """Two guests at once moved one-tick rows by up to 1.7% against one at harness epoch 1
    (docs/scale.md): compare says so when such runs differ in it, and not otherwise, nor from
    epoch 2 on, whose mappers run alone."""
    shipped = Path(__file__).parents[1] / "results" / "tcg-icount-profile-kernels"
    one, two = tmp_path / "one", tmp_path / "two"
    for run in (one, two):
        shutil.copytree(shipped, run)
        _tamper(run, harness_epoch=1, jobs__count=2)
    _tamper(one, jobs__count=1)
    said = fb("compare", f"{one}:6.1", f"{two}:6.12", "--by", "kernel")
    assert said.returncode == 0, said.stderr
    assert "BASE ran 1 guest(s) at once and NEW 2 (--jobs)" in " ".join(said.stdout.split())
    _tamper(one, jobs__count=2)
    same = fb("compare", f"{one}:6.1", f"{two}:6.12", "--by", "kernel")
    assert same.returncode == 0 and "guest(s) at once" not in same.stdout
    for run in (one, two):
        _tamper(run, harness_epoch=2)
    _tamper(one, jobs__count=1)
    alone = fb("compare", f"{one}:6.1", f"{two}:6.12", "--by", "kernel")
    assert alone.returncode == 0 and "guest(s) at once" not in alone.stdout
