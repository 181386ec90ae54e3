"""The parts of ``benchmarks/drift_behaviour.py``, one module per job; the script runs them.

* :mod:`drift_parts.population`: the synthetic population, its shifts and its reference;
* :mod:`drift_parts.monitor`: a model version watched window after window, as the service
  would, and shadow monitors configured with other tests;
* :mod:`drift_parts.beside_evidently`: Evidently's verdict on the same windows;
* :mod:`drift_parts.stationary`: part 1, false alarms on a stationary stream;
* :mod:`drift_parts.shifts`: part 2, delays on injected shifts.
"""
