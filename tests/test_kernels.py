"""kernels/build's argument handling, refusals and config check, and each patch's fit to its
source (the 2020 patch to 6.1, the whole-folio backport to 6.12).

Nothing here builds a kernel (25-40 minutes); the cache-hit test plants the image a build
would leave and checks the script finds it without building.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from kbuild import BUILD, KERNELS, build

PATCH = KERNELS / "patches" / "6.1" / "uffd-missing-no-fault-around.patch"
WHOLE_FOLIO = KERNELS / "patches" / "6.12" / "map-entire-large-folio.patch"


def run_build(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BUILD), *args], capture_output=True, text=True,
                          env=env, timeout=120, check=False)


def have_build_dependencies() -> bool:
    return not build.missing_dependencies()


REAL_FORMAT_CONFIG = """\
#
# Automatically generated file; DO NOT EDIT.
# Linux/x86 6.1.192 Kernel Configuration
#
CONFIG_CC_VERSION_TEXT="gcc (Debian 12.2.0-14+deb12u1) 12.2.0"
CONFIG_USERFAULTFD=y
CONFIG_EXT4_FS=m
# CONFIG_TRANSPARENT_HUGEPAGE is not set
CONFIG_HUGETLBFS=y
CONFIG_DEBUG_FS=y
CONFIG_DEBUG_FS_ALLOW_ALL=y
"""


def test_config_check_names_each_option_not_built_in():
    problems = build.check_config(
        REAL_FORMAT_CONFIG,
        ("USERFAULTFD", "EXT4_FS", "TRANSPARENT_HUGEPAGE", "HUGETLBFS", "DEBUG_FS", "VIRTIO_BLK"),
    )
    assert problems == [
        "CONFIG_EXT4_FS=m (needs =y: the guest loads no modules)",
        "CONFIG_TRANSPARENT_HUGEPAGE is not set",
        "CONFIG_VIRTIO_BLK is absent (its dependencies are off, or it does not exist)",
    ]


def test_config_check_passes_when_every_option_is_y():
    text = "".join(f"CONFIG_{name}=y\n" for name in build.CONFIG_FRAGMENT)
    assert build.check_config(text) == []
    # a prefix of a required name is another option, not the required one
    assert build.check_config("CONFIG_DEBUG_FS_ALLOW_ALL=y\n", ("DEBUG_FS",)) == [
        "CONFIG_DEBUG_FS is absent (its dependencies are off, or it does not exist)"
    ]


def test_config_check_names_each_unwanted_driver_still_on():
    text = "".join(f"CONFIG_{name}=y\n" for name in build.CONFIG_FRAGMENT)
    text += "CONFIG_DRM=y\nCONFIG_SOUND=m\n# CONFIG_USB_SUPPORT is not set\n"
    assert build.check_config(text) == [
        "CONFIG_DRM=y (should be off: no guest device uses it)",
        "CONFIG_SOUND=m (should be off: no guest device uses it)",
    ]


def test_fragment_has_what_faultbench_needs():
    needed = {"USERFAULTFD", "EXT4_FS", "TRANSPARENT_HUGEPAGE", "HUGETLBFS", "DEBUG_FS"}
    assert needed <= set(build.CONFIG_FRAGMENT)


def test_unknown_patch_is_refused_with_the_available_names():
    done = run_build("--patch", "no-such-patch", "--check-only")
    assert done.returncode == 2
    assert "no patch 'no-such-patch'" in done.stderr
    assert "uffd-missing-no-fault-around" in done.stderr
    assert done.stdout == ""


def test_patch_by_name_by_file_name_and_by_path_is_the_same_patch():
    by_name = build.resolve_patch("uffd-missing-no-fault-around")
    assert build.resolve_patch("uffd-missing-no-fault-around.patch") == by_name
    assert build.resolve_patch(str(PATCH)) == by_name
    assert by_name.name == "uffd-missing-no-fault-around"
    assert len(by_name.sha256) == 64


def test_patch_hash_is_in_the_cache_key(tmp_path):
    edited = tmp_path / "uffd-missing-no-fault-around.patch"
    edited.write_text(PATCH.read_text() + "\n")
    original = build.Inputs("6.1.192-2", "0" * 64, "virtme-ng 1.42", build.CONFIG_FRAGMENT,
                            (build.resolve_patch(str(PATCH)),))
    changed = build.Inputs("6.1.192-2", "0" * 64, "virtme-ng 1.42", build.CONFIG_FRAGMENT,
                           (build.resolve_patch(str(edited)),))
    assert original.key() != changed.key()
    assert original.without_patches().key() == changed.without_patches().key()
    assert original.key() != original.without_patches().key()


def test_bad_jobs_is_an_argument_error():
    done = run_build("--jobs", "0", "--check-only")
    assert done.returncode == 2
    assert "--jobs must be from 1 to 4096" in done.stderr


def test_missing_tools_are_listed_with_the_apt_line(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    missing = build.missing_dependencies(search_path=str(empty), include_dirs=(tmp_path,),
                                         tarball=tmp_path / "none.tar.xz", need_patch=True)
    joined = "\n".join(missing)
    for tool in ("make", "gcc", "flex", "bison", "bc", "patch", "gelf.h", "openssl/opensslv.h",
                 "none.tar.xz"):
        assert tool in joined
    # and end to end: the script run with a PATH holding none of the tools refuses
    done = run_build("--check-only", env={**os.environ, "PATH": str(empty)})
    assert done.returncode == 2
    assert "missing build dependencies" in done.stderr
    assert "flex (package flex)" in done.stderr
    assert "apt-get install linux-source-6.1" in done.stderr
    assert done.stdout == ""


def test_free_space_of_a_cache_not_yet_created(tmp_path):
    assert build.free_bytes(tmp_path / "a" / "b") == shutil.disk_usage(tmp_path).free


@pytest.mark.skipif(not have_build_dependencies(), reason="kernel build dependencies missing")
def test_not_enough_disk_space_is_refused_before_anything(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(build, "TREE_BYTES_NEEDED", 1 << 60)
    assert build.main(["--cache", str(tmp_path / "cache"), "--check-only"]) == 2
    err = capsys.readouterr().err
    assert "not enough disk space" in err
    assert "GiB is free" in err
    assert not (tmp_path / "cache").exists()


@pytest.mark.skipif(not have_build_dependencies(), reason="kernel build dependencies missing")
def test_cached_image_is_printed_at_once_and_nothing_is_built(tmp_path):
    cache = tmp_path / "cache"
    planned = run_build("--cache", str(cache), "--check-only", "--patch",
                        "uffd-missing-no-fault-around")
    assert planned.returncode == 0, planned.stderr
    image = Path(planned.stdout.splitlines()[-1])
    assert image.parent.parent == cache.resolve()
    assert not cache.exists()  # --check-only builds nothing
    base = run_build("--cache", str(cache), "--check-only")
    assert Path(base.stdout.splitlines()[-1]) != image  # the patch is in the key
    image.parent.mkdir(parents=True)
    image.write_bytes(b"built")  # as a build leaves it: the image and its recorded sha256
    (image.parent / "meta.json").write_text(json.dumps({"image_sha256": build.sha256_file(image)}))
    # FAULTBENCH_KERNEL_CACHE instead of --cache; the same inputs find the same entry
    hit = run_build("--patch", "uffd-missing-no-fault-around",
                    env={**os.environ, build.CACHE_ENV: str(cache)})
    assert hit.returncode == 0, hit.stderr
    assert hit.stdout.splitlines()[-1] == str(image)
    assert sorted(p.name for p in image.parent.iterdir()) == ["bzImage", "meta.json"]


def source_files(tmp_path_factory, source: str, paths: list[str]) -> Path:
    """A tree holding these files of Debian's linux-source-SOURCE tarball (skips without it
    or without patch(1))."""
    tarball = build.source_tarball(source)
    if not tarball.is_file() or shutil.which("patch") is None:
        pytest.skip(f"{tarball} or patch missing")
    tree = tmp_path_factory.mktemp(f"linux-{source}")
    subprocess.run(["tar", "xf", str(tarball), "-C", str(tree), "--occurrence=1",
                    "--strip-components=1", *(f"linux-source-{source}/{p}" for p in paths)],
                   check=True)
    return tree


@pytest.fixture(scope="module")
def userfaultfd_header(tmp_path_factory) -> Path:
    return source_files(tmp_path_factory, "6.1", ["include/linux/userfaultfd_k.h"])


def test_the_2020_patch_applies_to_6_1_and_disables_fault_around_for_missing(userfaultfd_header):
    tree = userfaultfd_header
    header = tree / "include/linux/userfaultfd_k.h"
    before = header.read_text()
    assert "return vma->vm_flags & (VM_UFFD_WP | VM_UFFD_MINOR);\n}" in before
    done = subprocess.run(["patch", "-p1", "--forward", "--batch", "-i", str(PATCH)], cwd=tree,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "offset" not in done.stdout and "fuzz" not in done.stdout  # applies cleanly
    after = header.read_text()
    body = after.split("static inline bool uffd_disable_fault_around", 1)[1].split("}", 1)[0]
    assert "__VM_UFFD_FLAGS" in body
    assert "#define __VM_UFFD_FLAGS (VM_UFFD_MISSING | VM_UFFD_WP | VM_UFFD_MINOR)" in after
    # only the CONFIG_USERFAULTFD variant changes; the stub stays false
    assert after.count("static inline bool uffd_disable_fault_around") == 2
    assert "uffd_disable_fault_around(struct vm_area_struct *vma)\n{\n\treturn false;" in after


@pytest.fixture(scope="module")
def mm_sources_6_12(tmp_path_factory) -> Path:
    """The two files the whole-folio backport touches."""
    return source_files(tmp_path_factory, "6.12", ["mm/filemap.c", "mm/memory.c"])


def test_the_whole_folio_patch_applies_to_6_12_and_maps_whole_folios(mm_sources_6_12):
    tree = mm_sources_6_12
    dry = subprocess.run(["patch", "-p1", "--forward", "--batch", "--dry-run", "-i",
                          str(WHOLE_FOLIO)], cwd=tree, capture_output=True, text=True,
                         check=False)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "offset" not in dry.stdout and "fuzz" not in dry.stdout  # applies cleanly
    done = subprocess.run(["patch", "-p1", "--forward", "--batch", "-i", str(WHOLE_FOLIO)],
                          cwd=tree, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    filemap = (tree / "mm/filemap.c").read_text()
    folio_range = filemap.split("static vm_fault_t filemap_map_folio_range(", 1)[1]
    folio_range = folio_range.split("\n}\n", 1)[0]
    # fault-around maps the whole folio, bounded by the VMA, the page table and i_size
    assert "nr_pages = folio_nr_pages(folio);" in folio_range
    for bound in ("folio_within_vma(folio, vmf->vma)", "& PMD_MASK",
                  "file_end >= folio_next_index(folio) || shmem_mapping(mapping)"):
        assert bound in folio_range, bound
    assert "nr_pages, &rss, &mmap_miss, file_end);" in filemap
    # finish_fault (fault-around off) maps whole file folios, not only anonymous shmem's;
    # uffd and the i_size/page-table fallback still map one page
    finish = (tree / "mm/memory.c").read_text().split("vm_fault_t finish_fault(", 1)[1]
    finish = finish.split("\n}\n", 1)[0]
    assert "vma_is_anon_shmem" not in finish
    assert "if (unlikely(userfaultfd_armed(vma)) || unlikely(needs_fallback)) {" in finish
    assert "file_end < folio_next_index(folio)" in finish


def test_each_patch_says_where_it_comes_from_and_builds_by_its_name():
    for source in build.SOURCES:
        for patch in sorted(build.patch_dir(source).glob("*.patch")):
            text = patch.read_text()
            assert text.startswith("From: ") and "NOT FOR MERGING" in text, patch
            name = patch.name.removesuffix(".patch")
            # the header says how to build it
            assert f"--patch {name}" in " ".join(text.split()), patch
            assert build.resolve_patch(name, source).path == patch.resolve()
    header = WHOLE_FOLIO.read_text().split("\n---\n", 1)[0]
    for commit in ("357b92761d94", "19773df031bc", "74207de2ba10", "7c9580f44f90"):
        assert commit in header, commit


def test_a_copied_tree_has_its_dependency_records_moved_and_timestamps_kept(tmp_path):
    old, new = tmp_path / "base" / "tree", tmp_path / "patched" / "tree"
    copy = tmp_path / "patched" / "tree.partial"
    (copy / "tools/objtool").mkdir(parents=True)
    record = copy / "tools/objtool/.check.o.cmd"
    record.write_text(f"cmd_{old}/tools/objtool/check.o := gcc -c {old}/tools/objtool/check.c\n")
    depfile = copy / "tools/objtool/.fixdep.o.d"
    depfile.write_text(f"{old}/tools/objtool/fixdep.o: {old}/tools/build/fixdep.c\n")
    source = copy / "tools/objtool/check.c"
    source.write_text(f"/* {old} */\n")
    for path in (record, depfile, source):
        os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    assert build.relocate_build_records(copy, old, new) == 2
    assert record.read_text() == (
        f"cmd_{new}/tools/objtool/check.o := gcc -c {new}/tools/objtool/check.c\n")
    assert str(old) not in depfile.read_text()
    assert source.read_text() == f"/* {old} */\n"  # sources are not build records
    assert {p.stat().st_mtime_ns for p in (record, depfile, source)} == {1_000_000_000}


def test_source_6_12_without_its_package_is_refused_with_the_apt_line(tmp_path):
    """--source 6.12 needs linux-source-6.12 (its tarball, /usr/src/linux-source-6.12.tar.xz);
    its patches are its own (kernels/patches/6.12), and its key differs from 6.1's."""
    if build.source_tarball("6.12").is_file():
        pytest.skip("linux-source-6.12 is installed here")
    done = run_build("--source", "6.12", "--check-only", "--cache", str(tmp_path))
    assert done.returncode == 2 and done.stdout == ""
    assert "source tarball /usr/src/linux-source-6.12.tar.xz (package linux-source-6.12)" \
        in done.stderr
    assert "apt-get install linux-source-6.12 build-essential" in done.stderr
    patched = run_build("--source", "6.12", "--patch", "uffd-missing-no-fault-around",
                        "--check-only")
    assert "not in" in patched.stderr and "patches/6.12" in patched.stderr
    one = build.Inputs("v", "0" * 64, "vng", build.CONFIG_FRAGMENT, ())
    assert one.key() != build.Inputs("v", "0" * 64, "vng", build.CONFIG_FRAGMENT, (),
                                     source="6.12").key()
    assert one.description()["source_package"] == "linux-source-6.1"


def test_unknown_source_is_an_argument_error():
    done = run_build("--source", "5.10", "--check-only")
    assert done.returncode == 2 and "invalid choice: '5.10'" in done.stderr


def test_vng_kconfig_reads_no_virtme_ng_configuration_of_the_user(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """R38-1: `vng --kconfig` adds ~/.config/virtme-ng/kernel.config to the kernel's config,
    and applies the default_opts of ~/.config/virtme-ng/virtme-ng.conf: it runs with a HOME
    of its own, whose configuration says nothing. A stand-in vng says what it was given."""
    home = tmp_path / "home"
    (home / ".config" / "virtme-ng").mkdir(parents=True)
    (home / ".config" / "virtme-ng" / "kernel.config").write_text("CONFIG_KVM=y\n")
    monkeypatch.setenv("HOME", str(home))
    seen = tmp_path / "seen"
    vng = tmp_path / "bin" / "vng"
    vng.parent.mkdir()
    vng.write_text(f'#!/bin/sh\n{{ echo "$HOME"; ls -A "$HOME/.config/virtme-ng"; '
                   f'cat "$HOME/.config/virtme-ng/virtme-ng.conf"; }} > {seen}\nexit 3\n')
    vng.chmod(0o755)
    (tmp_path / "entry" / "tree").mkdir(parents=True)
    with pytest.raises(build.BuildError, match="exit 3"):
        build.configure(tmp_path / "entry" / "tree", str(vng), tmp_path / "build.log",
                        build.Progress())
    given_home, *listed = seen.read_text().splitlines()
    assert given_home != str(home) and given_home.startswith(str(tmp_path / "entry"))
    assert listed == ["virtme-ng.conf", "{}"]
    assert os.listdir(tmp_path / "entry") == ["tree"]  # its home went with it
