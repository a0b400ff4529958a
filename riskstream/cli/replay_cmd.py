"""``riskstream replay``: the scoring job again over a past time range, into separate topics.

Heavy imports (confluent-kafka, pyflink) happen inside the handler so ``--help`` is fast.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from core.config import Settings, with_overrides
from core.progress import Progress
from riskstream import jobrunner

PROGRESS_INTERVAL_S = 5.0


def register(subparsers: Any) -> None:
    """Add ``replay``."""
    parser = subparsers.add_parser(
        "replay",
        help="re-run the scoring job over a past range of its inputs into separate topics",
        description="Run the scoring job bounded over the input topics (transactions, labels) "
        "from each partition's first record stamped at or after --from-timestamp (record "
        "timestamps are the events' times) up to --to-timestamp or the current end, with fresh "
        "state, into <live topic>.replay-<name> topics, under its own consumer group, "
        "transactional-id prefix and checkpoint directory. The live job's state, offsets and "
        "outputs are not touched.",
    )
    parser.add_argument(
        "--from-timestamp",
        required=True,
        metavar="T",
        help="start (event time): epoch ms or ISO-8601 UTC, e.g. 2026-11-28T10:00:00Z",
    )
    parser.add_argument(
        "--to-timestamp",
        metavar="T",
        help="end, exclusive (event time; default: the topics' end offsets at start)",
    )
    parser.add_argument(
        "--name",
        help="replay name in topics, ids and paths (default: the start time, YYYYMMDD-HHMMSS)",
    )
    parser.add_argument(
        "--target",
        default="local",
        choices=jobrunner.TARGETS,
        help="local: mini-cluster in this process; cluster: `flink run` on the local cluster",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="empty replay topics of the same name that already hold records (else refused)",
    )
    parser.add_argument(
        "--parallelism", type=int, help="job parallelism (default: flink.parallelism)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    parser.set_defaults(handler=_replay)


def _replay(args: argparse.Namespace, settings: Settings) -> int:
    from riskstream import replay as rp

    from_ms = rp.parse_timestamp(args.from_timestamp, "--from-timestamp")
    to_ms = rp.parse_timestamp(args.to_timestamp, "--to-timestamp") if args.to_timestamp else None
    name = rp.check_name(args.name) if args.name else rp.default_name(from_ms)
    if args.parallelism is not None:
        settings = with_overrides(settings, flink={"parallelism": args.parallelism})
    replay = rp.replay_settings(settings, name, from_ms, to_ms)
    until = rp.iso(to_ms) if to_ms else "the current end offsets"
    print(f"replay {name!r}: scoring job from {rp.iso(from_ms)} to {until} (event time)")
    total: int | None = None
    for topic, ranges in rp.offset_ranges(settings, from_ms, to_ms).items():
        spans = ", ".join(f"p{p} [{a}, {b})" for p, (a, b) in sorted(ranges.items()))
        records = sum(max(b - a, 0) for a, b in ranges.values())
        print(f"  input {topic}: about {records} records, offsets {spans}")
        if topic == settings.kafka.topic("transactions"):
            total = records  # about one decision per transaction
    outputs = rp.prepare_topics(settings, replay, overwrite=args.overwrite)
    print(f"  outputs: {', '.join(outputs)}")
    for what, value in rp.describe(replay).items():
        print(f"  {what}: {value}")

    started = time.monotonic()
    decisions = replay.kafka.topic("decisions")

    def written() -> int:
        return rp.end_offsets(settings, [decisions])[decisions]

    with (
        Progress(total, "replay", "decisions", quiet=args.quiet) as progress,
        progress.poll(written, PROGRESS_INTERVAL_S),
    ):
        if args.target == "cluster":
            output = jobrunner.submit_to_cluster(replay, "scoring", bounded=True)
            print("\n".join(output.strip().splitlines()[-3:]))
        else:
            jobrunner.run_local(replay, "scoring", bounded=True)
    print(f"replay {name!r} finished in {time.monotonic() - started:.0f} s; records written:")
    for topic in outputs:
        print(f"  {topic}: {rp.count_records(settings, topic)}")
    return 0
