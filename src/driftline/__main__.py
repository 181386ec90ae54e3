"""``python -m driftline``: the same command line as the ``driftline`` script."""

from driftline.cli import main

# Guarded: the trainer's training processes start with multiprocessing's "spawn", which
# imports the parent's main module again (as ``__mp_main__``) and must not run the CLI.
if __name__ == "__main__":
    main()
