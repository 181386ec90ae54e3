"""Build hook for driftline's one optional C extension (everything else is in pyproject.toml).

``driftline.detectors._fold`` counts numeric features into their reference bins for stage 1
(``src/driftline/detectors/_fold.c``). It is optional: without a C compiler the install still
succeeds and :mod:`driftline.detectors.fold` uses its NumPy path, which gives the same
counts (``tests/unit/detectors/test_fold_kernel.py``), only slower.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "driftline.detectors._fold",
            ["src/driftline/detectors/_fold.c"],
            # No fused multiply-add: the reconstruction error must round as NumPy's does.
            extra_compile_args=["-O3", "-ffp-contract=off"],
            optional=True,
        )
    ]
)
