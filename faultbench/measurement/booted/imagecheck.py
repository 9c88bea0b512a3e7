"""What the host checks of the paths it hands to virtme-ng. Standard library only."""

from __future__ import annotations

import string

# virtme-run takes only these in --rwdir/--rodir (virtme/commands/run.py, _SAFE_PATH_PATTERN
# "[a-zA-Z0-9_+ /.-]"; "=" would split GUEST=HOST), and vng pastes those paths and --run's
# image unquoted into one `sh -c` line (virtme_ng/run.py, check_call(cmd, shell=True)), where
# a space splits a path in two and `;` or `$(...)` would run as root: no space either.
VNG_PATH_CHARS = frozenset(string.ascii_letters + string.digits + "_+/.-")
VNG_RULE = "virtme-ng takes only ASCII letters, digits and _ + / . - in the paths it shares"


def vng_refuses(path: str) -> str | None:
    """The first character of `path` virtme-ng cannot pass on, as shown to the user, or
    None."""
    for char in path:
        if char not in VNG_PATH_CHARS:
            shown = repr(char) if char.isprintable() else ""
            return f"{shown} (U+{ord(char):04X})".lstrip()
    return None
