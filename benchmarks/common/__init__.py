"""What several benchmarks share, so each script holds only its own measurements.

* :mod:`common.report`: the command line, best-of timing and the printed tables and ratios;
* :mod:`common.synthetic`: a binary classifier's prediction events as producers send them, and
  its reference profile;
* :mod:`common.stage1`: stage 1's steps (decode, columns, fold) over batches, ready to time;
* :mod:`common.evidently_report`: Evidently's ``DataDriftPreset``, the optional comparison.

This is a package rather than a module so that ``./dev bench``, which runs every
``benchmarks/*.py``, does not run it; the scripts import it from their own folder.
"""
