"""One module per `faultbench` command: `add_arguments(parser)` and `run(args) -> int`.

Commands parse arguments and call the planes; cli.py imports every one of them to build its
parser, so they import nothing heavy at module top.
"""
