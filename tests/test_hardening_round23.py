"""Round twenty-three's findings: a knob written dotted and quoted in one workload table kept
only the second list of values (R23-4); a kernel label with a byte that is not UTF-8 was
called a control character, and a label of 5,000 bytes booted a guest (R23-6); a `dir` with
a `..` part named one directory two ways, two scenarios (R23-10); `vm.hugetlb_shm_group`,
which lets a group create SHM_HUGETLB segments, was not refused with the other security
settings (R23-11). The real CLI, real files; nothing boots and no knob is written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_hardening_round3_input import fb, refused
from test_hardening_round7 import _image_with_version

from faultbench.measurement.booted.boots import parse_kernel
from faultbench.measurement.knobs.catalog import resolve
from faultbench.measurement.knobs.requested import check_requested
from faultbench.measurement.runner import RunError

HEAD = 'description = "x"\nrepetitions = 1\nwarmups = 0\n[defaults]\nbacking = "{backing}"\n' \
    'size = "1M"\n'
TWICE = "vm.swappiness is given twice; list all its values under one name"


def _workload(tmp_path: Path, body: str, backing: str = "memfd") -> Path:
    path = tmp_path / "w.toml"
    path.write_text(HEAD.format(backing=backing) + body)
    return path


@pytest.mark.parametrize(("body", "where"), [
    ('[knobs]\nvm.swappiness = [10]\n"vm.swappiness" = [20]\n[[matrix]]\npattern = "seq"\n',
     "knobs"),
    ('[[matrix]]\npattern = "seq"\nknobs.vm.swappiness = [10]\nknobs."vm.swappiness" = [20]\n',
     "matrix[1].knobs"),
], ids=["knobs", "matrix-knobs"])
def test_a_knob_written_dotted_and_quoted_in_one_table_is_refused(
        tmp_path: Path, body: str, where: str) -> None:
    """R23-4: TOML reads `vm.swappiness` as a table and `"vm.swappiness"` as a key; joined
    back into one name, the second list replaced the first without a word."""
    path = _workload(tmp_path, body)
    line = refused(fb("workloads", path), "workloads", TWICE)
    assert line == f"faultbench workloads: {path}: {where}.vm.swappiness: {TWICE}"
    refused(fb("run", path, "--out", tmp_path / "run"), "run", TWICE)
    assert not (tmp_path / "run").exists()


def test_a_knob_named_by_name_and_by_path_is_refused_in_the_same_words(tmp_path: Path) -> None:
    path = _workload(tmp_path, '[knobs]\n"vm.swappiness" = [60]\n"/proc/sys/vm/swappiness" = '
                               '[61]\n[[matrix]]\npattern = "seq"\n')
    refused(fb("workloads", path), "workloads", f"knobs./proc/sys/vm/swappiness: {TWICE}")
    refused(fb("measure", "--set", "vm.swappiness=10", "--set", "vm.swappiness=20"), "measure",
            "vm.swappiness is given twice; list all its values in one --set")


@pytest.mark.parametrize(("label", "why"), [
    (b"a\xffb", "label 'a\\udcffb': it has bytes that are not UTF-8; a label is printable text"),
    (b"k" * 65, "it is 65 bytes long; a label is printable text"),
    (b"k" * 5000, "it is 5,000 bytes long; a label is printable text with no spaces at its "
                  "ends and no `,` or `=`, other than `unset` (the name `compare` gives a value "
                  "left unset), of at most 64 bytes of UTF-8"),
    ("é".encode() * 33, "it is 66 bytes long"),
], ids=["not-utf8", "65-bytes", "5000-bytes", "66-bytes-of-e-acute"])
def test_a_label_not_utf8_or_too_long_is_refused_before_anything_boots(
        tmp_path: Path, label: bytes, why: str) -> None:
    """R23-6. The CLI is given an image that does not exist, so that no version of this
    code can boot a guest here: the label's refusal, not "no such kernel image", shows that
    it comes before the image is looked at; parse_kernel refuses it with a real file that has
    a kernel's header too (the only step before a run directory is made and a guest boots)."""
    workload = _workload(tmp_path, '[[matrix]]\npattern = "seq"\n')
    out = tmp_path / "run"
    line = refused(fb("run", workload, "--kernel", label + b"=/nonexistent", "--out", out),
                   "run", why)
    assert "control characters" not in line and len(line) < 500, line
    assert not out.exists()
    image = _image_with_version(tmp_path / "k.img", b"6.1.0-test (x@y) #1")
    with pytest.raises(RunError) as refusal:
        parse_kernel(os.fsdecode(label + b"=" + os.fsencode(image)))
    assert why in str(refusal.value)


def test_a_label_of_64_bytes_names_a_kernel(tmp_path: Path) -> None:
    image = _image_with_version(tmp_path / "k.img", b"6.1.0-test (x@y) #1")
    assert parse_kernel(f"{'é' * 32}={image}").label == "é" * 32
    # a release read from an image is held to the same rule, since it becomes the label
    long = _image_with_version(tmp_path / "long.img", b"6." + b"1" * 70 + b" (x@y) #1")
    with pytest.raises(RunError, match="it is 72 bytes long"):
        parse_kernel(str(long))


@pytest.mark.parametrize("dirs", [
    ["{d}", "{d}/../d"], ["{d}/sub/.."], ["../d"],
], ids=["two-names", "up-from-sub", "relative"])
def test_a_dir_with_a_dotdot_part_is_refused(tmp_path: Path, dirs: list[str]) -> None:
    """R23-10: `/x/y` and `/x/y/../y` were two scenarios of one directory; `..` is not folded
    (what comes before it may be a symbolic link), so it is refused."""
    (tmp_path / "d" / "sub").mkdir(parents=True)
    written = [d.format(d=tmp_path / "d") for d in dirs]
    listed = ", ".join(f'"{d}"' for d in written)
    path = _workload(tmp_path, f"[[matrix]]\ndir = [{listed}]\n", backing="file")
    bad = next(d for d in written if ".." in d)
    refused(fb("workloads", path), "workloads",
            f"dir '{bad}': '..' is not folded (the part before it may be a symbolic link) and "
            "would give the directory a second name; leave it out")


def test_measure_refuses_a_dir_with_a_dotdot_part_and_folds_the_rest(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    refused(fb("measure", "--backing", "file", "--size", "1M", "--repeat", "1", "--dir",
               f"{tmp_path}/d/../d"), "measure", "'..' is not folded")
    path = _workload(tmp_path, f'[[matrix]]\ndir = ["{tmp_path}/d", "{tmp_path}/./d/"]\n',
                     backing="file")
    done = fb("workloads", path)
    assert done.returncode == 0 and f"dir={tmp_path}/d" in done.stdout, done.stderr
    assert "; 1 scenarios:" in done.stdout, done.stdout


def test_the_hugetlb_shm_group_is_a_security_setting_not_an_axis(tmp_path: Path) -> None:
    """R23-11: `vm.hugetlb_shm_group` lets a group create SHM_HUGETLB segments (huge pages
    past RLIMIT_MEMLOCK) while the run lasts; refused like vm.mmap_min_addr, its value kept."""
    sysctl = Path("/proc/sys/vm/hugetlb_shm_group")
    found = sysctl.read_text().strip()
    other = str(int(found) + 1001)
    path = _workload(tmp_path, f'[knobs]\n"vm.hugetlb_shm_group" = [{other}]\n'
                               '[[matrix]]\npattern = "seq"\n')
    said = (f"vm.hugetlb_shm_group={other}: a security setting of the whole machine, not one "
            "of memory management; faultbench (root) needs no change to it")
    refused(fb("workloads", path), "workloads", said)
    refused(fb("run", _workload(tmp_path, '[[matrix]]\npattern = "seq"\n'), "--set",
               f"vm.hugetlb_shm_group={other}", "--out", tmp_path / "run"), "run", said)
    assert not (tmp_path / "run").exists()
    assert sysctl.read_text().strip() == found
    check_requested(resolve("vm.hugetlb_shm_group"), found)  # its own value is no change

