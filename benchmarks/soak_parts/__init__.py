"""The parts of ``benchmarks/soak.py``: the load it puts on the monitor, and what it samples.

* :mod:`soak_parts.load`: predictions at a steady rate stamped with the wall clock, and their
  labels a fixed delay later, with the offsets the broker acknowledged;
* :mod:`soak_parts.probes`: the monitor's RSS, its stores' memtable flushes and files, the
  ingest group's lag and the windows written to VictoriaMetrics;
* :mod:`soak_parts.tansu_alone`: the broker alone at the soak's message rate (run it with
  ``python -m soak_parts.tansu_alone``), to tell the broker's trend from the monitor's.
"""
