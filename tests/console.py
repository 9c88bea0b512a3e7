"""What a command said on stderr, as the tests read it."""

from faultbench.measurement.machine import WARNING

BUSY = f"run: {WARNING}"


def said(stderr: str) -> list[str]:
    """The lines of `stderr`, less `run`'s warning that the machine is busy: a run that was
    accepted says it first whenever the machine is loaded, as CI machines often are."""
    return [line for line in stderr.strip().splitlines() if not line.endswith(BUSY)]


def one_line(stderr: str) -> str:
    """The one line a refusal or an interruption says, without a traceback."""
    assert "Traceback" not in stderr, stderr
    lines = said(stderr)
    assert len(lines) == 1, stderr
    return lines[0]
