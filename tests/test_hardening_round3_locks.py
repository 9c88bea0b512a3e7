"""Issue 31, hardening round three: mounts shared by concurrent commands, zombies and
journals at custom paths, run directories another user could lock, the journal's directory
and every directory above a results directory, kernels/build's shared cache.

Real commands in subprocesses, real debugfs/securityfs mounts, a real sysctl
(vm.swappiness) changed and SIGKILLed, real files and locks made as `nobody`. Each test
failed on the code before the fix.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from groups import HOST
from test_hardening_round2 import (
    FAULTBENCH,
    NOBODY,
    SWAPPINESS,
    as_nobody,
    cli,
    journal_text,
    needs_root,
    refused,
    shared,  # noqa: F401 (a fixture)
    swappiness,  # noqa: F401 (a fixture)
    workload,
)

ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}


def _without_journal_env() -> dict[str, str]:
    """The environment of a command that uses the default journal."""
    return {k: v for k, v in ENV.items() if k != "FAULTBENCH_JOURNAL"}


def _other(value: str) -> str:
    return "61" if value != "61" else "62"


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.05)


def _knob_writer(argv: list[str], env: dict[str, str],
                 changed: Callable[[], bool]) -> subprocess.Popen[str]:
    """A command started, running once `changed()`; started again while another test (of
    any worktree) holds the machine's knob lock."""
    for _ in range(40):
        proc = subprocess.Popen([*FAULTBENCH, *argv], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, env=env)
        _wait_for(lambda p=proc: changed() or p.poll() is not None, f"{argv[0]} started")
        if proc.poll() is None:
            return proc
        _, err = proc.communicate()
        assert "is changing kernel knobs; wait" in err, err
        time.sleep(3)
    pytest.fail("another run held the knob lock for 2 minutes")


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


# N1. debugfs/securityfs: mounted by many commands at once


@HOST
@needs_root
def test_concurrent_commands_that_mount_debugfs_and_securityfs_all_succeed(
    tmp_path: Path, special_mounts: Callable[[], list[str]]
) -> None:
    """Each command mounts what it reads in a mount namespace of its own: none finds the
    other's mount "already mounted", none loses it when another unmounts, and the
    machine's mount table is as it was."""
    before = special_mounts()
    tiny = workload(tmp_path, reps=1, patterns='["seq"]')
    commands = [[*FAULTBENCH, "doctor", "--json"] for _ in range(10)]
    commands += [[*FAULTBENCH, "run", str(tiny), "--out", str(tmp_path / f"run{i}"), "-q"]
                 for i in range(10)]
    commands += [[*FAULTBENCH, "measure", "--size", "1M"] for _ in range(4)]
    procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              env=ENV) for c in commands]
    said = [(c[3], p.communicate(timeout=300)[1]) for c, p in zip(commands, procs, strict=True)]
    assert [s for s, p in zip(said, procs, strict=True) if p.returncode != 0] == []
    for i in range(10):
        meta = json.loads((tmp_path / f"run{i}" / "meta.json").read_text())
        assert meta["finished_utc"], i
        assert (tmp_path / f"run{i}" / "samples.jsonl").read_text().count("\n") == 1
    assert special_mounts() == before


# N2. a killed run its parent has not reaped yet


@HOST
@needs_root
@pytest.mark.parametrize("then", ["restore", "run --resume"])
def test_a_killed_run_not_yet_reaped_is_dead_to_restore_and_resume(
    tmp_path: Path, swappiness: str, then: str  # noqa: F811
) -> None:
    value = _other(swappiness)
    env = {**ENV, "FAULTBENCH_JOURNAL": str(tmp_path / "journal.json")}
    out = tmp_path / "run"
    run = _knob_writer(["run", str(workload(tmp_path, reps=40)), "--out", str(out), "-q",
                        "--set", f"vm.swappiness={value}"], env,
                       lambda: (out / "samples.jsonl").exists()
                       and SWAPPINESS.read_text().strip() == value)
    try:
        run.kill()
        _wait_for(lambda: _state(run.pid) == "Z", "the killed run became a zombie")
        done = cli(*then.split(), *([out, "-q"] if then != "restore" else []),
                   env={"FAULTBENCH_JOURNAL": env["FAULTBENCH_JOURNAL"]})
        assert done.returncode == 0, done.stderr
        assert f"restored vm.swappiness: {value} -> {swappiness}" in done.stdout + done.stderr
        assert SWAPPINESS.read_text().strip() == swappiness
        assert not (tmp_path / "journal.json").exists()
        assert _state(run.pid) == "Z"  # all of it before the parent reaped it
    finally:
        run.kill()
        run.wait()
        cli("restore", env={"FAULTBENCH_JOURNAL": env["FAULTBENCH_JOURNAL"]})


# N3 and the minor item: journals a killed run left, at a custom path or the default one


@HOST
@needs_root
def test_a_journal_left_at_a_custom_path_is_found_by_knob_writers_restore_and_doctor(
    tmp_path: Path, swappiness: str  # noqa: F811
) -> None:
    value = _other(swappiness)
    custom = tmp_path / "custom" / "journal.json"
    sweep = _knob_writer(["measure", "--size", "1M", "--repeat", "1000000", "--set",
                          f"vm.swappiness={value}"], {**ENV, "FAULTBENCH_JOURNAL": str(custom)},
                         lambda: SWAPPINESS.read_text().strip() == value)
    sweep.kill()
    sweep.wait()
    try:
        _journal_left_behind(custom, sweep.pid, value, swappiness)
    finally:
        cli("restore", "--journal", custom)


def _journal_left_behind(custom: Path, pid: int, value: str, original: str) -> None:
    assert SWAPPINESS.read_text().strip() == value and custom.exists()
    plain = _without_journal_env()
    # a later knob writer with the default journal would take `value` for the original
    again = subprocess.run([*FAULTBENCH, "measure", "--size", "1M", "--set",
                            f"vm.swappiness={_other(value)}"], capture_output=True, text=True,
                           env=plain, timeout=120)
    refused(again, "measure", f"journal {custom}", "run `faultbench restore` first",
            f"pid {pid}")
    assert SWAPPINESS.read_text().strip() == value
    doctor = subprocess.run([*FAULTBENCH, "doctor"], capture_output=True, text=True, env=plain,
                            timeout=120)
    assert f"NO   restore journal: a previous run (pid {pid}) did not restore vm.swappiness " \
        f"(journal {custom}); run `faultbench restore` first" in doctor.stdout
    assert "=> knob sweeps: refused now:" in doctor.stdout
    assert "sysctl/THP sweeps natively: possible" not in doctor.stdout
    # round 34: a command that sets no knob measures at the values left, and says so
    left = (f"WARNING: a previous run (pid {pid}) did not restore vm.swappiness (journal "
            f"{custom}): measured at the kernel knobs it left changed, not the machine's own")
    run, workload = custom.parent.parent / "at-the-knobs-left", custom.parent.parent / "w.toml"
    workload.write_text('repetitions = 1\n[[matrix]]\nbacking = "memfd"\nsize = "1M"\n')
    for argv in (["measure", "--size", "1M"], ["run", workload, "--out", run, "-q"]):
        done = subprocess.run([*FAULTBENCH, *map(str, argv)], capture_output=True, text=True,
                              env=plain, timeout=300)
        assert done.returncode == 0 and f"faultbench {argv[0]}: {left}" in done.stderr, \
            done.stderr
    meta = json.loads((run / "meta.json").read_text())
    assert meta["machine_state"]["knob_writer"]["left"].startswith(f"a previous run (pid {pid})")
    SWAPPINESS.write_text(original)  # put back by hand: nothing left to warn of
    done = subprocess.run([*FAULTBENCH, "measure", "--size", "1M"], capture_output=True,
                          text=True, env=plain, timeout=300)
    assert done.returncode == 0 and "did not restore" not in done.stderr, done.stderr
    SWAPPINESS.write_text(value)
    restore = subprocess.run([*FAULTBENCH, "restore"], capture_output=True, text=True,
                             env=plain, timeout=120)
    assert restore.returncode == 0, restore.stderr
    assert restore.stdout == f"restored vm.swappiness: {value} -> {original}\n"
    assert SWAPPINESS.read_text().strip() == original
    from faultbench.measurement.knobs.knoblock import LOCK_PATH

    assert not custom.exists() and not Path(LOCK_PATH).exists()


@HOST
@needs_root
def test_doctor_says_a_stale_journal_is_left_and_to_run_restore(tmp_path: Path) -> None:
    path = tmp_path / "journal.json"
    path.write_text(journal_text(SWAPPINESS.read_text().strip()))
    doctor = subprocess.run([*FAULTBENCH, "doctor"], capture_output=True, text=True,
                            env={**ENV, "FAULTBENCH_JOURNAL": str(path)}, timeout=120)
    line = next(line for line in doctor.stdout.splitlines() if str(path) in line)
    assert line.startswith("NO   restore journal: ") and "vm.swappiness" in line
    assert "run `faultbench restore` first" in line


# N9. run directories: a lock only their writer's user can take; foreign text escaped


@needs_root
def test_another_user_cannot_hold_a_root_run_directory(shared: Path) -> None:  # noqa: F811
    """flock needs only a read-only descriptor: nobody could lock a directory they can
    read. The lock is a 0600 file inside it."""
    done = cli("run", workload(shared, reps=1), "--out", shared / "run", "-q")
    assert done.returncode == 0, done.stderr
    meta = json.loads((shared / "run" / "meta.json").read_text())
    meta["finished_utc"] = None
    (shared / "run" / "meta.json").write_text(json.dumps(meta))
    holder = subprocess.Popen(
        ["python3", "-c", "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDONLY);"
         " fcntl.flock(fd, fcntl.LOCK_EX); print(flush=True); time.sleep(60)",
         str(shared / "run")], stdout=subprocess.PIPE, user=NOBODY, group=NOBODY)
    try:
        assert holder.stdout and holder.stdout.readline()
        resumed = cli("run", "--resume", shared / "run", "-q")
        assert resumed.returncode == 0, resumed.stderr
    finally:
        holder.kill()
        holder.wait()
    assert not (shared / "run" / ".lock").exists()


@needs_root
def test_the_holder_of_a_run_directory_is_shown_with_its_escapes_visible(
    tmp_path: Path
) -> None:
    out = tmp_path / "run"
    done = cli("run", workload(tmp_path, reps=1), "--out", out, "-q")
    assert done.returncode == 0, done.stderr
    evil = "\x1b]0;pwned\x07\x1b[2J\x1b[31mfake"
    holder = subprocess.Popen(
        # flock(1), not a Python: a Python started under another name may not find its
        # standard library, and a `python3` on PATH may be a wrapper (pyenv's) that execs
        # the real one under its own name
        ["bash", "-c", 'umask 077; exec -a "$1" flock "$2/.lock" -c "echo; exec sleep 60"',
         "-", evil, str(out)],
        stdout=subprocess.PIPE)
    try:
        assert holder.stdout and holder.stdout.readline()
        line = refused(cli("run", "--resume", out, "-q"), "run", "being written by another",
                       f"pid {holder.pid}", "\\x1b]0;pwned\\x07\\x1b[2J")
        assert "\x1b" not in line and "\x07" not in line
    finally:
        holder.kill()
        holder.wait()


def test_a_run_killed_as_it_took_its_lock_leaves_a_directory_still_usable(
    tmp_path: Path
) -> None:
    """Killed between its lock and its meta.json: the directory holds only .lock."""
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / ".lock").touch(mode=0o600)
    done = cli("run", workload(tmp_path, reps=1), "--out", tmp_path / "run", "-q")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "run" / "meta.json").is_file()
    assert not (tmp_path / "run" / ".lock").exists()


@needs_root
def test_a_lock_file_another_user_planted_is_refused(shared: Path) -> None:  # noqa: F811
    public = shared / "public"
    public.mkdir()
    done = cli("run", workload(shared, reps=1), "--out", public / "run", "-q")
    assert done.returncode == 0, done.stderr
    (public / "run" / ".lock").write_text("")
    os.chown(public / "run" / ".lock", NOBODY, NOBODY)
    refused(cli("run", "--resume", public / "run", "-q"), "run",
            "is not a lock file faultbench made")


# N14 and the left-over from round two: every directory on the way is checked


@HOST
@needs_root
@pytest.mark.parametrize("planted", ["link", "directory"])
def test_the_journal_directory_is_not_another_users(
    shared: Path, swappiness: str, planted: str  # noqa: F811
) -> None:
    victim = shared / "victim"
    victim.mkdir()
    nobodys = shared / "nobodys"
    nobodys.mkdir()
    os.chown(nobodys, NOBODY, NOBODY)
    if planted == "link":
        as_nobody("ln", "-s", str(victim), str(nobodys / "jlink"))
        journal, who = nobodys / "jlink" / "journal.json", "it is a symbolic link"
    else:
        journal, who = nobodys / "journal.json", "owned by uid 65534 (nobody)"
    done = cli("measure", "--size", "1M", "--set", f"vm.swappiness={_other(swappiness)}",
               env={"FAULTBENCH_JOURNAL": str(journal)})
    line = refused(done, "measure", "cannot write the restore journal", who)
    assert "Traceback" not in line
    assert SWAPPINESS.read_text().strip() == swappiness
    assert list(victim.iterdir()) == [] and sorted(os.listdir(nobodys)) == (
        ["jlink"] if planted == "link" else [])


@needs_root
def test_a_directory_further_up_that_another_user_owns_is_refused(
    shared: Path  # noqa: F811
) -> None:
    """Not only the parent: nobody could rename `mine` (root's, in nobody's directory)
    away and put a link in its place."""
    nobodys = shared / "nobodys"
    nobodys.mkdir()
    os.chown(nobodys, NOBODY, NOBODY)
    (nobodys / "mine").mkdir()
    refused(cli("run", workload(shared, reps=1), "--out", nobodys / "mine" / "run", "-q"),
            "run", f"its parent directory {nobodys} is owned by uid 65534")
    assert list((nobodys / "mine").iterdir()) == []


@needs_root
def test_a_sticky_directory_further_up_is_accepted(tmp_path: Path, shared: Path) -> None:  # noqa: F811
    sticky = shared / "sticky"
    sticky.mkdir()
    sticky.chmod(0o1777)
    (sticky / "mine").mkdir()
    done = cli("run", workload(tmp_path, reps=1), "--out", sticky / "mine" / "run", "-q")
    assert done.returncode == 0, done.stderr


# N8. kernels/build's cache: checked like a results directory, images verified (no build)


def _inputs():  # kernels/build's Inputs for a fake source: its key is computable by anyone
    from test_kernels import build

    return build.Inputs("v", "0" * 64, "vng x", build.CONFIG_FRAGMENT, ())


def _victim(where: Path) -> Path:
    victim = where / "victim"
    victim.write_text("precious root data")
    victim.chmod(0o600)
    return victim


def _built(entry: Path) -> None:
    """What a finished build leaves in its entry: the image, and meta.json with its sha256."""
    from test_kernels import build

    (entry / "bzImage").write_bytes(b"an image")
    (entry / "meta.json").write_text(
        json.dumps({"image_sha256": build.sha256_file(entry / "bzImage")}))


@needs_root
def test_kernels_build_refuses_a_cache_another_user_owns(shared: Path) -> None:  # noqa: F811
    """nobody made the entry of a predictable key, with a bzImage and a .lock link to
    root's file: nothing is truncated, and nobody's image is not returned as the build."""
    from test_kernels import build

    cache, victim = shared / "kc", _victim(shared)
    cache.mkdir()
    os.chown(cache, NOBODY, NOBODY)
    entry = cache / _inputs().key()
    as_nobody("mkdir", str(entry))
    as_nobody("touch", str(entry / "bzImage"))
    as_nobody("ln", "-s", str(victim), str(entry / ".lock"))
    with pytest.raises(build.BuildError, match="owned by uid 65534"):
        build.build(_inputs(), cache, 1, "/bin/true")
    assert victim.read_text() == "precious root data"


@needs_root
def test_kernels_build_opens_no_lock_through_a_link(tmp_path: Path) -> None:
    from test_kernels import build

    victim = _victim(tmp_path)
    entry = tmp_path / "cache" / _inputs().key()
    entry.mkdir(parents=True)
    _built(entry)  # so that not even the code before the fix would build
    (entry / ".lock").symlink_to(victim)
    with pytest.raises(build.BuildError, match=r"\.lock: a symbolic link; remove it"):
        build.build(_inputs(), tmp_path / "cache", 1, "/bin/true")
    assert victim.read_text() == "precious root data"


@pytest.mark.parametrize("meta", ["recorded", "other sha256", "none", "a link"])
def test_a_cached_image_is_returned_only_with_the_sha256_recorded_for_it(
    tmp_path: Path, meta: str
) -> None:
    from test_kernels import build

    entry = tmp_path / "cache" / _inputs().key()
    entry.mkdir(parents=True)
    _built(entry)
    if meta == "other sha256":
        (entry / "meta.json").write_text(json.dumps({"image_sha256": "0" * 64}))
    elif meta == "none":
        (entry / "meta.json").unlink()
    elif meta == "a link":
        (entry / "meta.json").rename(tmp_path / "elsewhere.json")
        (entry / "meta.json").symlink_to(tmp_path / "elsewhere.json")
    if meta == "recorded":
        assert build.build(_inputs(), tmp_path / "cache", 1, "/bin/true") == entry / "bzImage"
    else:
        with pytest.raises(build.BuildError, match=r"is not the one its meta\.json records"):
            build.build(_inputs(), tmp_path / "cache", 1, "/bin/true")
    assert not (entry / "tree").exists()  # nothing was built
