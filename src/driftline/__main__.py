"""``python -m driftline``: the same command line as the ``driftline`` script."""

from driftline.cli import main

main()
