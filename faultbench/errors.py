"""FaultbenchError: the base of every error faultbench reports to its user.

`cli.main` prints any FaultbenchError as `faultbench COMMAND: message` and exits with status 2;
any other exception is a bug and keeps its traceback. The subclasses live with the code that
raises them and say which part refused. Standard library only.
"""


class FaultbenchError(Exception):
    """A request faultbench refuses or cannot carry out; the message is one line: why, and
    what to do."""


def printable(text: str) -> str:
    """`text` with control characters escaped: foreign text (a workload's description,
    another process's command line) must not send a terminal escape sequences."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
