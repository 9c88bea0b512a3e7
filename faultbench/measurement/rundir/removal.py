"""Removing a directory tree someone else filled (a guest, root in its kernel, writes its boot's
directory): never through a link, and never recursing in Python, however deep the tree (a
nest 1,000 deep made SafeDir.remove_tree's recursion raise RecursionError on every attempt,
so that the run never finished). Standard library only."""

from __future__ import annotations

import os

from faultbench.measurement.rundir.tempfiles import temp_name

# The most directories of the tree open at once: well under the fd limit, and deeper than
# anything faultbench writes (it makes no subdirectory in a boot's directory)
MOST_OPEN = 64
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def remove_tree(dir_fd: int, name: str, last: str | None = None) -> None:
    """Directory `name` of `dir_fd` and everything in it removed; missing: nothing to do.
    Each directory is opened O_NOFOLLOW relative to its parent's fd, and a link is unlinked,
    never followed. A directory MOST_OPEN levels down is renamed into the top one (the same
    filesystem) and removed from there later: at most MOST_OPEN fds open, and each entry
    handled once, whatever the depth. `last`: an entry of the top directory removed after
    everything else in it (a removal cut short leaves it). OSError (its filename the
    entry's name) otherwise."""
    try:
        top = _opened(dir_fd, name)
    except FileNotFoundError:
        return
    if last in top[2]:  # entries are taken from the end
        top[2].remove(last)
        top[2].insert(0, last)
    # the directories open, top first: fd, name in the one above, entries still to remove
    stack = [top]
    try:
        while stack:
            fd, own, entries = stack[-1]
            if not entries:
                stack.pop()
                os.close(fd)
                os.rmdir(own, dir_fd=stack[-1][0] if stack else dir_fd)
                continue
            entry = entries.pop()
            try:
                os.unlink(entry, dir_fd=fd)  # anything but a directory, a link itself
                continue
            except FileNotFoundError:
                continue
            except IsADirectoryError:
                pass
            if len(stack) == MOST_OPEN:
                moved = temp_name("deep")  # an unguessable name: nothing there to replace
                os.rename(entry, moved, src_dir_fd=fd, dst_dir_fd=top[0])
                top[2].append(moved)
            else:
                stack.append(_opened(fd, entry))
    except BaseException:
        for fd, _, _ in stack:
            os.close(fd)
        raise


def remove_directory(path: str, last: str | None = None) -> None:
    """The directory at `path` removed as remove_tree removes one (its last component never
    followed; `last` as there); missing: nothing to do."""
    parent = os.open(os.path.dirname(os.path.abspath(path)),
                     os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        remove_tree(parent, os.path.basename(os.path.abspath(path)), last)
    finally:
        os.close(parent)


def _opened(dir_fd: int, name: str) -> tuple[int, str, list[str]]:
    """Directory `name` of `dir_fd` (never a link) opened: its fd, name and entries."""
    fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    try:
        return fd, name, os.listdir(fd)
    except BaseException:
        os.close(fd)
        raise
