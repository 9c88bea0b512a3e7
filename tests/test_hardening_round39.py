"""Round thirty-nine: as root, faultbench took what another user can change from its
environment (`sudo -E` keeps HOME and other variables): matplotlib wrote its font cache
through their link and drew with their matplotlibrc (R39-1, R39-2), QEMU loaded their module
(R39-3: test_guest's scenarios boot runs with such a QEMU_MODULE_DIR), programs came from
their PATH entry (R39-4), git ran their core.fsmonitor for the provenance (R39-5); and a POSIX
ACL giving another user write passed every owner check (R39-6)."""

from __future__ import annotations

import json
import os
import resource
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from analysis_runs import make_run
from images import require_boot_image
from inprocess import in_process

from faultbench.measurement.trust import distrust

FAULTBENCH = [sys.executable, "-m", "faultbench"]
NOBODY = 65534
RESULTS = Path(__file__).parents[1] / "results"
ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="what root trusts is root's problem")
WORKLOAD = 'repetitions = 1\n[[matrix]]\nbacking = "memfd"\nsize = "1M"\n'


def _acl_for(path: Path, uid: int) -> None:
    """The ACL `setfacl -m u:UID:rw` leaves (setfacl is not installed everywhere): owner,
    the named user, group, mask, other (acl_ea.h's layout)."""
    undefined = 0xFFFFFFFF
    entries = [(0x01, 6, undefined), (0x02, 6, uid), (0x04, 4, undefined), (0x10, 6, undefined),
               (0x20, 4, undefined)]
    os.setxattr(path, "system.posix_acl_access",
                struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries))


def _theirs(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, NOBODY, NOBODY)
    return path


@ROOT
def test_an_acl_giving_another_user_write_is_another_users_change(tmp_path: Path) -> None:
    """R39-6: root:root 0664 plus `u:nobody:rw` read as root's group's write alone."""
    plain, shared = tmp_path / "plain", tmp_path / "shared"
    for path in (plain, shared):
        path.write_bytes(b"x")
        path.chmod(0o664)
    _acl_for(shared, NOBODY)
    assert distrust(str(plain)) is None  # root's group alone may write it
    assert distrust(str(shared)) == f"{shared} is writable by other users"
    image = tmp_path / "boot" / "vmlinuz"
    image.parent.mkdir()
    image.write_bytes(Path(require_boot_image()).read_bytes())
    image.chmod(0o644)
    _acl_for(image.parent, NOBODY)
    done = subprocess.run([*FAULTBENCH, "run", "quick-guest", "--kernel", str(image), "--out",
                           str(tmp_path / "run"), "-q"], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 2 and "root boots no image another user can change" in \
        done.stderr, done.stderr
    assert not (tmp_path / "run").exists()
    out = tmp_path / "out"
    out.mkdir()
    _acl_for(out, NOBODY)
    done = subprocess.run([*FAULTBENCH, "run", str(_workload(tmp_path)), "--out",
                           str(out / "run"), "-q"], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 2 and f"{out} is writable by other users" in done.stderr, \
        done.stderr


def _workload(tmp_path: Path) -> Path:
    workload = tmp_path / "w.toml"
    workload.write_text(WORKLOAD)
    return workload


@ROOT
def test_another_users_home_git_config_and_path_are_not_used(tmp_path: Path) -> None:
    """R39-5 and R39-4: their ~/.gitconfig's core.fsmonitor and their `mount`, `git` on PATH
    ran as root in a native run; R39-1: root's matplotlib made ~/.config in their home."""
    home = _theirs(tmp_path / "home")
    ran = tmp_path / "ran"
    bin_dir = _theirs(home / "bin")
    for name in ("git", "mount", "umount", "systemd-detect-virt"):
        program = bin_dir / name
        program.write_text(f"#!/bin/sh\necho {name} >> {ran}\nexit 1\n")
        program.chmod(0o755)
    monitor = home / "monitor"
    monitor.write_text(f"#!/bin/sh\necho fsmonitor >> {ran}\n")
    monitor.chmod(0o755)
    (home / ".gitconfig").write_text(f"[core]\n\tfsmonitor = {monitor}\n")
    env = {**os.environ, "HOME": str(home), "PATH": f"{bin_dir}:{os.environ['PATH']}",
           "XDG_CONFIG_HOME": str(home / ".config")}
    run = tmp_path / "run"
    done = subprocess.run([*FAULTBENCH, "run", str(_workload(tmp_path)), "--out", str(run),
                           "-q"], capture_output=True, text=True, timeout=120, check=False,
                          env=env)
    assert done.returncode == 0, done.stderr
    assert not ran.exists(), ran.read_text()
    said = done.stderr.splitlines()[0]
    assert said.startswith("faultbench run: WARNING: as root, nothing another user can change "
                           f"is used: HOME ({home} is owned by uid {NOBODY} (nobody)): ")
    assert f"PATH entries {bin_dir}: left out" in said
    revision = json.loads((run / "meta.json").read_text())["provenance"]["faultbench"]
    assert revision["git_revision"] is not None, revision
    done = subprocess.run([*FAULTBENCH, "report", str(run), "--out", str(tmp_path / "rep")],
                          capture_output=True, text=True, timeout=120, check=False, env=env)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in home.iterdir()) == [".gitconfig", "bin", "monitor"]


def test_git_describes_the_checkout_whatever_git_dir_says(tmp_path: Path) -> None:
    """R39 minor: GIT_DIR (or GIT_WORK_TREE, a user's configuration) decided the recorded
    revision: another repository's commit was recorded as faultbench's."""
    other = tmp_path / "other"
    subprocess.run(["git", "init", "-q", str(other)], check=True)
    subprocess.run(["git", "-C", str(other), "-c", "user.name=x", "-c", "user.email=x@x",
                    "commit", "-q", "--allow-empty", "-m", "not faultbench"], check=True)
    theirs = subprocess.run(["git", "-C", str(other), "rev-parse", "HEAD"], check=True,
                            capture_output=True, text=True).stdout.strip()
    code = ("from faultbench.measurement.rundir.provenance import git_revision; "
            "print(git_revision()[0])")
    plain = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout
    aimed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, env={**os.environ, "GIT_DIR": str(other / ".git")})
    assert aimed.stdout == plain and theirs not in plain, (plain, theirs)


@ROOT
def test_a_matplotlib_cache_link_and_rc_of_another_user_are_not_followed(
        tmp_path: Path) -> None:
    """R39-1: root rewrote the file their font-cache link named; R39-2: their matplotlibrc
    drew root's figures blank. $MPLCONFIGDIR is theirs here (HOME: test above)."""
    run = make_run(tmp_path, "run", WORKLOAD)
    victim = tmp_path / "victim"
    victim.write_text("root's\n")
    theirs = _theirs(tmp_path / "mpl")
    for name in ("fontlist-v330.json", "fontlist-v390.json", "fontlist-v3.11.0.json"):
        (theirs / name).symlink_to(victim)
    (theirs / "matplotlibrc").write_text("lines.linewidth: 0\nlines.markersize: 0\n"
                                         "patch.linewidth: 0\n")
    figures = {}
    for name, env in (("theirs", {"MPLCONFIGDIR": str(theirs)}), ("plain", {})):
        done = subprocess.run([*FAULTBENCH, "report", str(run), "--out", str(tmp_path / name)],
                              capture_output=True, text=True, timeout=120, check=False,
                              env={**os.environ, **env})
        assert done.returncode == 0, done.stderr
        figures[name] = {p.name: p.read_bytes() for p in (tmp_path / name / "figures").iterdir()}
    assert victim.read_text() == "root's\n"
    assert figures["theirs"] == figures["plain"] and figures["plain"]


@ROOT
def test_as_root_only_the_environment_its_programs_need_is_kept() -> None:
    """Round 40: MKE2FS_CONFIG (the guest's scratch disk's layout), LIBMOUNT_UTAB (a file
    mount creates), MAGIC (the database virtme-ng's `file` reads), MPLBACKEND and others
    reached root's programs. Only KEPT variables stay; root's own HOME and PATH are left
    as they are, with nothing said."""
    code = ("import json, os; from faultbench.measurement.trust import trusted_environment; "
            "print(json.dumps([trusted_environment(), dict(os.environ)]))")
    given = {"PATH": os.environ["PATH"], "HOME": "/root", "LANG": "C.UTF-8", "LC_ALL": "C",
             "FAULTBENCH_JOURNAL": "/run/x.json", "MKE2FS_CONFIG": "/tmp/m", "MAGIC": "/tmp/g",
             "LIBMOUNT_UTAB": "/tmp/u", "QEMU_MODULE_DIR": "/tmp/q", "GIT_DIR": "/tmp/d",
             "MPLBACKEND": "bogus", "XDG_CONFIG_HOME": "/tmp/x"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, env=given)
    changed, kept = json.loads(done.stdout)
    assert changed == []
    assert {k: v for k, v in kept.items() if k in given} == {
        k: given[k] for k in ("PATH", "HOME", "LANG", "LC_ALL", "FAULTBENCH_JOURNAL")}


@pytest.mark.parametrize(("key", "value"), [("model", "AMD EPYC fake"), ("count", 96)])
def test_a_resume_on_other_processors_under_the_same_host_name_is_refused(
        tmp_path: Path, key: str, value: object) -> None:
    """R39 minor: the host name and kernel were checked, not the hardware: a run copied to
    another machine of the same name (a cloud image's, a disk moved) resumed there."""
    run = make_run(tmp_path, "run", WORKLOAD)
    meta = json.loads((run / "meta.json").read_text())
    meta["provenance"]["cpu"][key], meta["finished_utc"] = value, None
    (run / "meta.json").write_text(json.dumps(meta))
    lines = (run / "samples.jsonl").read_text().splitlines(keepends=True)
    (run / "samples.jsonl").write_text("".join(lines[:-1]))
    done = subprocess.run([*FAULTBENCH, "run", "--resume", str(run), "-q"], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert f"{run} was measured on " in done.stderr and "CPUs" in done.stderr
    assert (run / "samples.jsonl").read_text() == "".join(lines[:-1])


def test_compare_says_a_run_was_measured_at_knobs_another_run_left(tmp_path: Path) -> None:
    """R39 minor: `run` warned, and meta.json recorded, that a killed run had left
    vm.swappiness changed; `compare` of that run said nothing of it (its provenance records
    THP settings, fault_around_bytes and read_ahead_kb, not every sysctl)."""
    runs = [make_run(tmp_path, name, WORKLOAD) for name in ("base", "new")]
    meta = json.loads((runs[1] / "meta.json").read_text())
    meta["machine_state"]["knob_writer"] = {"pid": None, "command": None,
                                           "left": "vm.swappiness (journal j, run 7)"}
    (runs[1] / "meta.json").write_text(json.dumps(meta))
    done = subprocess.run([*FAULTBENCH, "compare", *map(str, runs)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "NEW was measured at knobs a killed run had left changed (vm.swappiness (journal " \
        "j, run 7)), not at the machine's own" in " ".join(done.stdout.split()), done.stdout


def test_a_low_limit_on_address_space_ends_a_report_in_one_line() -> None:
    """R39 minor: `ulimit -v` 60,000 KiB gave a MemoryError or ImportError traceback (numpy
    and pandas' libraries do not map); it is one line."""
    def small() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (60_000 << 10, 60_000 << 10))
    done = subprocess.run([*FAULTBENCH, "report", str(RESULTS / "native-quick"),
                           "--no-figures"], capture_output=True, text=True, timeout=120,
                          check=False, preexec_fn=small)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(("faultbench report: cannot import ",
                                   "faultbench report: out of memory")), done.stderr
    assert "raise the limit on address space (`ulimit -v`)" in done.stderr


def test_a_private_native_runs_report_elsewhere_is_private_too(tmp_path: Path) -> None:
    """R39 minor: a run made under umask 077 (0700, its files 0600) reported with --out
    gave a 0755 directory of 0644 files: its numbers and its host's facts, for anyone."""
    run = tmp_path / "run"
    subprocess.run([*FAULTBENCH, "run", str(_workload(tmp_path)), "--out", str(run), "-q"],
                   check=True, capture_output=True, timeout=120,
                   preexec_fn=lambda: os.umask(0o077))
    assert run.stat().st_mode & 0o777 == 0o700
    out = tmp_path / "report"
    subprocess.run([*FAULTBENCH, "report", str(run), "--out", str(out), "--no-figures"],
                   check=True, capture_output=True, timeout=120)
    assert out.stat().st_mode & 0o777 == 0o700
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    done = subprocess.run([*FAULTBENCH, "report", str(run), "--out", str(shared),
                           "--no-figures"], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 2 and done.stderr == (
        f"faultbench report: --out {shared}: other users can reach it, and {run} is private, "
        "and so is its report: give a new directory, or one only you can reach\n"), done.stderr


@ROOT
def test_a_python_start_up_variable_naming_another_users_place_is_refused(
        tmp_path: Path) -> None:
    """R39-7 and round 40: PYTHONPYCACHEPREFIX naming their directory: root wrote its bytecode
    there and ran what they put in its place. Python reads it (and PYTHONPATH) as it starts,
    before faultbench: unsetting it then was too late for what had been imported, so the
    command is refused instead, before it does anything."""
    prefix = _theirs(tmp_path / "pyc")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    for name, value in (("PYTHONPYCACHEPREFIX", str(prefix)),
                        ("PYTHONPATH", f"{Path(__file__).parents[1]}:{prefix}")):
        done = subprocess.run([*FAULTBENCH, "run", str(_workload(tmp_path)), "--out",
                               str(tmp_path / "run"), "-q"], capture_output=True, text=True,
                              timeout=120, check=False, env={**env, name: value})
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
        assert done.stderr.startswith(
            f"faultbench run: {name} ({prefix} is owned by uid {NOBODY} (nobody)) was read by "
            "Python as it started, before faultbench"), done.stderr
        assert not (tmp_path / "run").exists()


def test_compare_by_machine_says_the_machines_ran_at_other_settings(tmp_path: Path) -> None:
    """R39 minor: of a merged fleet run, `compare --by machine` said nothing of machines at
    different THP settings, which `compare` of the same two runs names (the merged meta.json
    keeps each machine's provenance). Round 41: the merge of a private run is private."""
    for name in ("m1", "m2"):  # one workload name (the file's), as two machines' runs have
        (tmp_path / name).mkdir()
    runs = [make_run(tmp_path / name, "run", WORKLOAD) for name in ("m1", "m2")]
    meta = json.loads((runs[1] / "meta.json").read_text())
    meta["provenance"]["host"]["name"] = "other-machine"
    thp = meta["provenance"]["thp"]
    thp["thp.shmem_enabled"] = "advise" if thp["thp.shmem_enabled"] != "advise" else "never"
    (runs[1] / "meta.json").write_text(json.dumps(meta))
    merged = tmp_path / "merged"
    subprocess.run([*FAULTBENCH, "merge", *map(str, runs), "--out", str(merged)], check=True,
                   capture_output=True, timeout=120)
    # round 41: the merge of a private run (made at umask 077) was world-readable
    assert merged.stat().st_mode & 0o077
    runs[1].chmod(0o700)
    subprocess.run([*FAULTBENCH, "merge", *map(str, runs), "--out", str(tmp_path / "private")],
                   check=True, capture_output=True, timeout=120)
    assert (tmp_path / "private").stat().st_mode & 0o777 == 0o700
    here = json.loads((runs[0] / "meta.json").read_text())["provenance"]["host"]["name"]
    done = subprocess.run([*FAULTBENCH, "compare", f"{merged}:{here}",
                           f"{merged}:other-machine", "--by", "machine"], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "BASE and NEW ran at different kernel settings that no scenario of theirs set " \
        "(their provenance): thp.shmem_enabled" in " ".join(done.stdout.split()), done.stdout


@ROOT
def test_a_shared_sticky_directory_as_out_is_refused_with_advice_that_keeps_it_shared(
        tmp_path: Path) -> None:
    """R39 minor: `--out /tmp` was told to `chown -R root: /tmp; chmod go-w /tmp`."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    done = subprocess.run([*FAULTBENCH, "run", str(_workload(tmp_path)), "--out", str(shared),
                           "-q"], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2 and done.stderr.endswith(
        f"give a directory of your own in it (mkdir {shared}/NAME)\n"), done.stderr
    assert "chmod" not in done.stderr


def test_samples_at_other_knob_values_than_their_scenario_are_refused(tmp_path: Path) -> None:
    """R39 m8 (R38 m2): a line's `knobs` was not checked against its scenario's, and rows are
    keyed by them: every sample of a sweep rewritten to one value pooled all its settings
    into rows that hold them all, and report said nothing. They are invalid lines now."""
    run = Path(shutil.copytree(RESULTS / "tcg-fault-around-sweep", tmp_path / "run"))
    records = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert len({r["knobs"]["fault_around_bytes"] for r in records}) == 10
    for record in records:
        record["knobs"]["fault_around_bytes"] = 4096
    (run / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    done = in_process("report", run, "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    # only the 4096 scenarios' lines (6 of 60 scenarios) are their own; the rest are
    # invalid lines, dropped
    assert len(data["scenarios"]) == 6
    assert data["dropped_lines"]["invalid"] == {
        "knobs other than its scenario's in meta.json": len(records) * 9 // 10}


def test_a_knob_value_spelled_as_another_number_is_refused_as_baseline_refuses_it(
        tmp_path: Path) -> None:
    """R39 m10 (R38 m6): `compare RUN:1e2 --by vm.swappiness` matched 100 and titled its
    table 1e2, where `--baseline 1e2` is refused; round 41: `061` was taken, and titled so.
    A size is still a size (64K)."""
    run = RESULTS / "tcg-fault-around-sweep"
    for value in ("6.5536e4", "65536.0", "065536"):
        done = in_process("compare", f"{run}:4096", f"{run}:{value}", "--by",
                          "fault_around_bytes")
        assert done.returncode == 2 and done.stderr == (
            f"faultbench compare: NEW '{run}:{value}': write fault_around_bytes's value as the "
            "kernel reads it back: a number in integer digits, as --baseline takes it\n")
        done = in_process("report", run, "--no-figures", "--out", tmp_path / value,
                          "--baseline", value)
        assert done.returncode == 2 and "is not a value of" in done.stderr, done.stderr
    done = in_process("compare", f"{run}:4096", f"{run}:64K", "--by", "fault_around_bytes")
    assert done.returncode == 0, done.stderr
    assert "new fault_around_bytes=64K" in " ".join(done.stdout.split())


def test_a_scenario_past_the_guests_memory_is_refused_before_any_boot(tmp_path: Path) -> None:
    """R39 minor: a 120M memfd with `--memory 128M` booted, and the guest refused it after
    22 s, each boot again: the run says so before booting."""
    workload = tmp_path / "big.toml"
    workload.write_text('repetitions = 1\n[[matrix]]\nbacking = "memfd"\nsize = "120M"\n')
    done = subprocess.run([*FAULTBENCH, "run", str(workload), "--kernel", require_boot_image(),
                           "--memory", "128M", "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2 and done.stderr == (
        "faultbench run: size 120M needs 120 MiB of memory, more than 80% of the guests' 128M "
        "(--memory): give them more\n")
    assert not (tmp_path / "run").exists()
