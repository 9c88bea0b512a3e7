"""Round twenty-four. R24-5: kernels/build hashed a patch file into the cache key, then had
`patch` read it again by name once the source was extracted: the file's owner could swap it
in between, and a kernel built from other bytes was cached (and booted) under the key of
the ones hashed. The patch is now read once and applied from those bytes. A small tree and
a real `patch`."""

from __future__ import annotations

from pathlib import Path

from kbuild import build

PATCH = b"""--- a/greeting.txt
+++ b/greeting.txt
@@ -1 +1 @@
-hello
+hello, patched
"""
SWAPPED = PATCH.replace(b"hello, patched", b"hello, swapped")


def test_a_patch_swapped_after_it_was_hashed_is_applied_as_hashed(tmp_path: Path) -> None:
    patch_file = tmp_path / "change.patch"
    patch_file.write_bytes(PATCH)
    patch = build.resolve_patch(str(patch_file))
    patch_file.write_bytes(SWAPPED)  # the owner's swap, after the key was made
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "greeting.txt").write_text("hello\n")
    inputs = build.Inputs("v", "0" * 64, "vng x", build.CONFIG_FRAGMENT, (patch,))
    build.apply_patches(inputs, tree, build.Progress())
    assert (tree / "greeting.txt").read_text() == "hello, patched\n"
    kept = tmp_path / "kept.patch"
    kept.write_bytes(PATCH)
    assert patch.sha256 == build.resolve_patch(str(kept)).sha256  # the key names what ran
