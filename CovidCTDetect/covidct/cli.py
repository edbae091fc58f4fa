"""The ``covidct`` command line.

Sub-commands are the modules of :mod:`covidct.commands` (see that package's docstring). A
:class:`~covidct.errors.CovidCTError` ends the run with its one sentence on stderr and exit status 2;
Ctrl-C exits with 130; any other exception is a bug, reported in one line (exit 1) with the
traceback only under ``--debug``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

from . import commands
from .errors import CovidCTError

#: Order of the commands in ``covidct --help``; a command module not named here is listed after them.
ORDER = ("demo", "info", "segment", "detect", "train", "evaluate", "synth", "features", "prognosis", "import")


def _command_modules() -> dict:
    """``{command name: module}``; a module's ``COMMAND`` names its command when the module's own name
    cannot (``import`` is a Python keyword)."""
    modules = [
        importlib.import_module(f"{commands.__name__}.{m.name}")
        for m in pkgutil.iter_modules(commands.__path__)
        if not m.name.startswith("_")
    ]
    named = {getattr(module, "COMMAND", module.__name__.rsplit(".", 1)[1]): module for module in modules}
    order = sorted(named, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))
    return {name: named[name] for name in order}


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with one sub-parser per command module."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="covidct",
        description="COVID-19 detection on chest CT (DeCoVNet, COVID-19Net). Research software, not a medical device.",
    )
    parser.add_argument("--version", action="version", version=f"covidct {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details (chosen DICOM series, timings)")
    parser.add_argument("--debug", action="store_true", help="show the Python traceback of internal errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in _command_modules().items():
        summary = (module.__doc__ or name).strip().splitlines()[0]
        command_parser = sub.add_parser(
            name, help=summary, description=module.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        module.add_arguments(command_parser)
        # the global options also after the command (covidct detect ... --debug); SUPPRESS keeps the earlier value
        command_parser.add_argument(
            "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
        command_parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        command_parser.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="covidct: %(message)s", stream=sys.stderr
    )
    try:
        return int(args._run(args) or 0)
    except CovidCTError as error:
        print(f"covidct {args.command}: error: {error}", file=sys.stderr)
        return error.exit_status
    except KeyboardInterrupt:
        print(f"covidct {args.command}: interrupted.", file=sys.stderr)
        return 130
    except MemoryError:
        print(
            f"covidct {args.command}: error: out of memory; close other programs or use a machine with more RAM.",
            file=sys.stderr,
        )
        return 2
    except Exception as error:  # a bug, not a user error
        if args.debug:
            raise
        print(
            f"covidct {args.command}: internal error ({type(error).__name__}: {error}); "
            "rerun with --debug and report the traceback.",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
