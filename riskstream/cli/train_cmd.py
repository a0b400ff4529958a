"""``riskstream train`` and ``riskstream models list|show|promote|rollback``.

``train`` builds a point-in-time training set (backfill files with ``--data``, else an in-memory
simulation), trains every model on the time split, checks ONNX parity, prints the evaluation table
and registers a candidate version. ``--profile handbook`` runs the Handbook protocol instead and
prints our models beside the published table; ``--table FILE`` trains on any tabular set.
Promotion (``--promote``, ``models promote``) checks the model against the deployment
(:func:`training.registry.deploy_problems`). docs/training.md describes every behaviour.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from core.config import Settings, replace
from core.errors import ConfigError
from core.progress import note
from schemas.feature_set import PAYMENT_FEATURES
from scoring.registry import champion, read_card, versions
from training import evaluate, handbook, registry, table, train
from training.data import generator_entry, load_training_data, simulated_training_data

PROFILES = ("realistic", "handbook")
REPORT_FILE = "evaluation.json"


def register(subparsers: Any) -> None:
    """Add ``train`` and ``models``."""
    parser = subparsers.add_parser(
        "train", help="train, evaluate and register models (rules, ML, ensemble) as ONNX"
    )
    parser.add_argument(
        "--data",
        type=Path,
        metavar="DIR",
        help="backfilled features (riskstream backfill output); default: simulate in memory",
    )
    parser.add_argument(
        "--labels", type=Path, metavar="DIR", help="label files (default: the --data directory)"
    )
    parser.add_argument(
        "--profile",
        choices=PROFILES,
        help="handbook: run the Handbook protocol (its split, its 15 features) on a Handbook "
        "simulation of simulator.customers/terminals/days and print the published table beside "
        "ours; realistic: train on a realistic simulation (default: simulator.profile)",
    )
    parser.add_argument(
        "--registry", type=Path, metavar="DIR", help="registry (default training.registry_dir)"
    )
    parser.add_argument(
        "--table",
        type=Path,
        metavar="FILE",
        help="train on any tabular set (.csv or .parquet; needs --label and --time): the "
        "features are its columns, the split is by time; the model is registered as not "
        "servable by the payment job unless its columns are the payment feature set",
    )
    parser.add_argument("--label", metavar="COL", help="--table: the 0/1 fraud column")
    parser.add_argument("--time", metavar="COL", help="--table: the time column (order, folds)")
    parser.add_argument(
        "--time-unit", default="s", choices=("s", "ms"), help="--table: unit of a numeric --time"
    )
    parser.add_argument(
        "--features",
        nargs="+",
        metavar="COL",
        help="--table: the feature columns (default: every column but --label and --time)",
    )
    parser.add_argument(
        "--test-share",
        type=float,
        default=0.25,
        help="--table: the latest share of rows (by time) that form the test set",
    )
    parser.add_argument("--report", type=Path, metavar="FILE", help="also write the report here")
    parser.add_argument(
        "--promote",
        action="store_true",
        help="make the new version champion; refused when it was trained on another generator "
        "profile than scoring.profile (or an unknown one) or its block threshold rests on fewer "
        "than training.min_block_tail scores",
    )
    parser.add_argument(
        "--force", action="store_true", help="promote despite those problems (warns loudly)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    parser.set_defaults(handler=_train)

    models = subparsers.add_parser("models", help="list, show, promote or roll back model versions")
    models.add_argument(
        "--registry", type=Path, metavar="DIR", help="registry (default training.registry_dir)"
    )
    actions = models.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="every version with its stage and test metrics")
    show = actions.add_parser("show", help="print a version's model card (JSON)")
    show.add_argument("version", nargs="?", help="version (default: the champion)")
    promote = actions.add_parser(
        "promote",
        help="make a version champion (retires the current); refuses a model trained on another "
        "profile than scoring.profile or with an unstable block threshold unless --force",
    )
    promote.add_argument("version")
    promote.add_argument("--force", action="store_true", help="promote anyway (warns loudly)")
    actions.add_parser("rollback", help="retire the champion and restore the previous one")
    models.set_defaults(handler=_models)


def registry_dir(args: argparse.Namespace, settings: Settings) -> Path:
    """The registry directory: ``--registry``, else ``training.registry_dir``."""
    chosen = args.registry or Path(settings.training.registry_dir)
    return Path(chosen).expanduser().resolve()


def deploy_policy(settings: Settings) -> registry.DeployPolicy:
    """What promotion checks: ``scoring.profile`` and ``training.min_block_tail``."""
    return registry.DeployPolicy(settings.scoring.profile, settings.training.min_block_tail)


def promote_checked(root: Path, version: str, settings: Settings, force: bool) -> str | None:
    """Promote with the deployment checks; with ``force``, each problem is printed as a warning."""
    policy = deploy_policy(settings)
    if force:
        for problem in registry.deploy_problems(read_card(root, version), policy):
            print(f"riskstream: WARNING: promoting {version} anyway: {problem}", file=sys.stderr)
    return registry.promote(root, version, policy, force=force)


def _train(args: argparse.Namespace, settings: Settings) -> int:
    profile = args.profile or settings.simulator.profile
    generator: dict[str, Any] | None = None
    table_entry: dict[str, Any] | None = None
    if args.table is not None:
        if args.label is None or args.time is None:
            raise ConfigError("train --table needs --label COL and --time COL")
        prepared = table.prepare(
            args.table,
            args.label,
            args.time,
            features=args.features,
            time_unit=args.time_unit,
            test_share=args.test_share,
        )
        result = table.train_table(prepared, settings.training, quiet=args.quiet)
        source, table_entry = f"table {args.table}", prepared.entry
        table_text = evaluate.table(result.metrics, [])
        report: dict[str, Any] = {"metrics": result.metrics, "table": table_entry}
    elif args.data is None and args.profile == "handbook":
        s = settings.simulator
        hb = handbook.protocol_settings(settings, s.customers, s.terminals, s.days, s.seed)
        result, summary = handbook.run(hb, quiet=args.quiet)
        source = summary["simulation"]
        generator = generator_entry(hb.simulator)
        table_text = handbook.comparison_table(summary)
        report = {"handbook": summary, "metrics": result.metrics}
    else:
        if args.data is not None:
            data = load_training_data(args.data, args.labels or args.data)
        else:
            sim = replace(settings.simulator, profile=profile)
            data = simulated_training_data(sim, quiet=args.quiet)
        result = train.run(
            data.frame,
            data.start_ms,
            data.end_ms,
            settings.training,
            PAYMENT_FEATURES,
            quiet=args.quiet,
        )
        source, generator = data.source, data.generator
        table_text = evaluate.table(result.metrics, [])
        report = {"metrics": result.metrics}
    report |= {
        "split": result.split.to_dict(),
        "rows": result.rows,
        "thresholds": result.thresholds.to_dict(),
        "threshold_support": result.threshold_support,
        "expected_decisions": result.expected_decisions,
        "boosting_selection": None if result.boosting is None else result.boosting.to_dict(),
        "parity_max_abs_diff": result.parity,
    }
    folder = registry.write_version(
        registry_dir(args, settings), result, source, generator, table_entry
    )
    (folder / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if args.report is not None:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(table_text)
    print(_decision_lines(result.metrics))
    servable = "" if table_entry is None or table_entry["servable"] else ", not servable"
    print(f"registered {folder.name} (candidate{servable}) in {folder.parent}")
    if args.promote:
        promote_checked(folder.parent, folder.name, settings, args.force)
        print(f"promoted {folder.name} to champion")
    note(f"train: report in {folder / REPORT_FILE}", args.quiet)
    return 0


def _decision_lines(metrics: dict[str, dict[str, Any]]) -> str:
    lines = []
    for stage, m in metrics["ensemble"].get("thresholds", {}).items():
        lines.append(
            f"ensemble {stage} at p >= {m['threshold']:.4f}: {m['flagged_share']:.2%} of test "
            f"payments, precision {m['precision']:.3f}, recall {m['recall']:.3f}"
        )
    return "\n".join(lines)


def _models(args: argparse.Namespace, settings: Settings) -> int:
    root = registry_dir(args, settings)
    if args.action == "list":
        rows = ["| version | stage | created (UTC) | feature set | inputs | ensemble AP | commit |"]
        rows.append("| --- | --- | --- | --- | --- | --- | --- |")
        for version in versions(root):
            card = read_card(root, version)
            fs = card["feature_set"]
            ap = card.get("metrics", {}).get("ensemble", {}).get("average_precision")
            rows.append(
                f"| {version} | {card['stage']} | {card.get('created_utc', '?')} | "
                f"{fs['name']} v{fs['version']} | {len(card['inputs'])} | "
                f"{'-' if ap is None else f'{ap:.3f}'} | {str(card.get('git_commit', '?'))[:12]} |"
            )
        print("\n".join(rows) if len(rows) > 2 else f"no model versions in {root}")
    elif args.action == "show":
        chosen: str | None = args.version or champion(root)
        if chosen is None:
            print(f"no champion in {root}; name a version", file=sys.stderr)
            return 1
        print(json.dumps(read_card(root, chosen), indent=2))
    elif args.action == "promote":
        previous = promote_checked(root, args.version, settings, args.force)
        retired = f" (retired {previous})" if previous else ""
        print(f"{args.version} is now champion{retired}")
    else:
        retired, restored = registry.rollback(root)
        print(f"rolled back: {retired} retired, {restored} is champion again")
    return 0
