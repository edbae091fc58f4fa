"""One module per ``covidct`` sub-command.

Each module has a docstring whose first line is the command's one-line help, and defines
``add_arguments(parser)`` and ``run(args) -> int``. Modules import heavy packages (torch, pandas)
inside ``run`` so that ``covidct --help`` stays fast. :mod:`covidct.cli` lists them in ``COMMANDS``.
"""
