"""Build hook for driftline's optional C extensions (everything else is in pyproject.toml).

Both speed up stage 1's per-event path and both are optional: without a C compiler the
install still succeeds and driftline takes its pure-Python path, with the same results
(tested against each other), only slower.

* ``driftline.detectors._fold`` counts numeric features into their reference bins
  (``src/driftline/detectors/_fold.c``; ``tests/unit/detectors/test_fold_kernel.py``);
* ``driftline.schemas._framing`` checks that each message is exactly one JSON object, so a
  batch can be decoded in one call (``src/driftline/schemas/_framing.c``;
  ``tests/unit/schemas/test_wire_batch.py``).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "driftline.detectors._fold",
            ["src/driftline/detectors/_fold.c"],
            extra_compile_args=["-O3"],
            optional=True,
        ),
        Extension(
            "driftline.schemas._framing",
            ["src/driftline/schemas/_framing.c"],
            extra_compile_args=["-O3"],
            optional=True,
        ),
    ]
)
