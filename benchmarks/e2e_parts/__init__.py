"""The parts of ``benchmarks/e2e.py``, one module per job; ``e2e.py`` runs them in order.

* :mod:`e2e_parts.load`: the events, the topics, pre-loading them and publishing the reference;
* :mod:`e2e_parts.ceiling`: what a bare consumer reads (and decodes) per second;
* :mod:`e2e_parts.ingest`: the real ``Ingest`` in this process, timed, against that ceiling;
* :mod:`e2e_parts.memory`: an ingest child process's memory at checkpoints;
* :mod:`e2e_parts.profiling`: where ingest's time goes, under cProfile.
"""
