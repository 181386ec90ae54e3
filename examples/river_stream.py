"""Write a prediction and a ground-truth file from river's SEA synthetic drift stream.

A data shift of x3 (a feature the model ignores) at --shift-at and a concept change (labels
move, features do not) at --drift-at; see driftline.testing.synthetic. Then backtest:

    python examples/river_stream.py out/
    driftline replay out/predictions.jsonl --ground-truth out/ground-truth.jsonl \\
        --config examples/river.yaml
"""

from __future__ import annotations

import argparse
from pathlib import Path

from driftline.testing.synthetic import write_sea_files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--events", type=int, default=120_000)
    parser.add_argument("--drift-at", type=int, default=80_000, help="concept change position")
    parser.add_argument("--shift-at", type=int, default=40_000, help="x3 shift position")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    write_sea_files(
        args.out, args.events, drift_at=args.drift_at, shift_at=args.shift_at, seed=args.seed
    )
    print(f"wrote {args.events} predictions and labels to {args.out}")


if __name__ == "__main__":
    main()
