"""``driftline replay`` over files of growing length: peak memory and events per second.

Writes the end-to-end benchmark's workload (``e2e_parts.load``: 20 numeric features, a binary
prediction and its scores, UUID ids, one millisecond of event time apart) as JSON-lines files,
N predictions and 95 % of their labels (a minute later), and again 10 x N; then replays each
file in a fresh process (so its peak RSS, ``VmHWM``, is its own), ``--repeats`` times, with
the reference profile given (no warm-up). In the same run, as baselines on the smaller size:

- **the old replay** (every event held, then judged), loaded from ``--baseline-rev``'s
  ``src/driftline/replay.py`` with ``git show``;
- **read + decode**: the lines of both files read and decoded with msgspec, nothing else, the
  ceiling of any replay (stage 1's own ceiling is consume + decode).

Prints the median of the runs and each run: wall-clock rates, and predictions per second of
the process's CPU time (its own threads, RocksDB's included), which a machine shared with
other work disturbs less. Run: ``python benchmarks/replay_memory.py``
(default N = 720,000), or shorter: ``python benchmarks/replay_memory.py --events 100000``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

ROOT = Path(__file__).resolve().parents[1]


def _peak_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def write_files(directory: Path, n: int) -> tuple[Path, Path]:
    """N predictions and the labels of 95 % of them."""
    from e2e_parts.load import label_events, prediction_events

    predictions, labels = directory / f"predictions-{n}.jsonl", directory / f"labels-{n}.jsonl"
    if predictions.exists() and labels.exists():
        return predictions, labels
    with predictions.open("wb") as out:
        for _, value in prediction_events(n, seed=1):
            out.write(value + b"\n")
    with labels.open("wb") as out:
        for i, (_, value) in enumerate(label_events(n, seed=1)):
            if i % 20 != 7:
                out.write(value + b"\n")
    return predictions, labels


def child(spec: dict[str, Any]) -> None:
    """One measurement in this process; prints its figures as JSON."""
    from driftline.config import Settings
    from driftline.replay import replay
    from driftline.replay.run import read_chunks
    from driftline.schemas.reference import ReferenceProfile
    from driftline.schemas.wire import EventDecoder

    predictions, labels = Path(spec["predictions"]), Path(spec["labels"])
    profile = ReferenceProfile.model_validate_json(Path(spec["reference"]).read_bytes())
    references = {(profile.model, profile.model_version): profile}
    settings = Settings()
    imported = _peak_mib()
    start, cpu = time.perf_counter(), time.process_time()
    extra: dict[str, Any] = {}
    if spec["what"] == "decode":
        decoder = EventDecoder(settings.monitor.limits.limits())
        for _, lines in read_chunks(predictions, 10_000):
            decoder.predictions(lines, [None] * len(lines))
        for _, lines in read_chunks(labels, 10_000):
            decoder.ground_truths(lines, [None] * len(lines))
    else:
        if spec["what"] == "old":
            module_spec = importlib.util.spec_from_file_location("old_replay", spec["old"])
            assert module_spec is not None
            assert module_spec.loader is not None
            module = importlib.util.module_from_spec(module_spec)
            sys.modules["old_replay"] = module
            module_spec.loader.exec_module(module)
            run = module.replay
        else:
            run = replay
        result = run(predictions, labels, settings=settings, references=references)
        extra = {"windows": len(result.reports), "unlabelled": result.unlabelled}
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    figures = {"seconds": seconds, "cpu_seconds": cpu, "peak_mib": _peak_mib()}
    print(json.dumps({**figures, "imported_mib": imported, **extra}))


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    out = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        check=True,
        capture_output=True,
        env=env,
        text=True,
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=720_000, help="N (the smaller file)")
    parser.add_argument("--factor", type=int, default=10, help="the larger file is N x this")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--repeats-large", type=int, default=None, help="default: --repeats")
    parser.add_argument(
        "--baseline-rev", default="411ea1c^", help="where the old replay.py is (before streaming)"
    )
    parser.add_argument("--dir", type=Path, default=None, help="where the files go (kept)")
    parser.add_argument(
        "--what",
        default="decode,old,new,large",
        help="which measurements, comma-separated (decode, old, new, large)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    from e2e_parts.load import reference_profile

    began = time.time()
    directory = args.dir or Path(tempfile.mkdtemp(prefix="replay-bench-"))
    directory.mkdir(parents=True, exist_ok=True)
    reference = directory / "reference.json"
    reference.write_text(reference_profile().model_dump_json())
    old = directory / "old_replay.py"
    old.write_bytes(
        subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{args.baseline_rev}:src/driftline/replay.py"],
            check=True,
            capture_output=True,
        ).stdout
    )
    sizes = [args.events, args.events * args.factor]
    chosen = set(args.what.split(","))
    plan = [
        (what, n)
        for name, what, n in (
            ("decode", "decode", sizes[0]),
            ("old", "old", sizes[0]),
            ("new", "new", sizes[0]),
            ("large", "new", sizes[1]),
        )
        if name in chosen
    ]
    print(f"# replay memory and speed, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    for what, n in plan:
        predictions, labels = write_files(directory, n)
        n_labels = sum(1 for _ in labels.open("rb"))
        runs = []
        for _ in range(args.repeats if n == sizes[0] else args.repeats_large or args.repeats):
            runs.append(
                measure(
                    {
                        "what": what,
                        "predictions": str(predictions),
                        "labels": str(labels),
                        "reference": str(reference),
                        "old": str(old),
                    }
                )
            )
            print(f"  ({what}, {n:,}: run {len(runs)}: {json.dumps(runs[-1])})", flush=True)
        rates = [n / r["seconds"] for r in runs]
        cpu_rates = [n / r["cpu_seconds"] for r in runs]
        peaks = [r["peak_mib"] for r in runs]
        name = {"decode": "read + decode", "old": "old replay", "new": "replay"}[what]
        print(
            f"{name:14s} {n:>10,} predictions + {n_labels:,} labels: "
            f"peak RSS {statistics.median(peaks):5.0f} MiB "
            f"(after imports {statistics.median(r['imported_mib'] for r in runs):.0f}), "
            f"{statistics.median(rates):9,.0f} predictions/s "
            f"({statistics.median(rates) * (n + n_labels) / n:,.0f} events/s), "
            f"{statistics.median(cpu_rates):9,.0f} per CPU second (median of "
            f"{len(runs)}; runs: "
            + ", ".join(f"{p:.0f} MiB {r:,.0f}/s" for p, r in zip(peaks, rates, strict=True))
            + ")"
            + (f"; {runs[0]['windows']} windows" if "windows" in runs[0] else "")
        )
        sys.stdout.flush()
    print(f"# {time.time() - began:.0f} s, load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
