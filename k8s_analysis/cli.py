"""The ``k8s-analysis`` command: import exports, run the pipeline, predict kind/bug."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from k8s_analysis.paths import DATA_DIR_ENV, STORAGE_URL_ENV, DataLayout, resolve_data_dir

if TYPE_CHECKING:
    from k8s_analysis.storage import TablePath

logger = logging.getLogger("k8s_analysis")

# Notes whose label no reasonable model gets wrong: `predict --test` fails when it does.
KNOWN_BUG_NOTE = (
    "Fixed a bug where the kubelet crashed with a nil pointer dereference "
    "when a pod had no containers."
)
KNOWN_NON_BUG_NOTE = "Added a new --output flag to kubectl get that prints resources as YAML."
ANALYSIS_FLAGS = (
    "created", "closed", "created_vs_closed", "labels_by_name", "labels_by_group", "users_by_created",
    "users_by_closed", "release_notes_stats", "time_to_close", "monthly_throughput",
)
# The run queue starts one run at a time that carries the export tag (see jobs.EXPORT_TAG).
DAGSTER_YAML = """telemetry:
  enabled: false
concurrency:
  runs:
    tag_concurrency_limits:
      - key: k8s-analysis/github-export
        limit: 1
"""
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Dagster's console logger prints every step event at DEBUG; INFO keeps the asset logs.
RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def model_dir_argument(value: str):
    """Parse --model-dir for serve and bot: a local folder, or a URL such as s3://BUCKET/PREFIX/models/current."""
    from k8s_analysis.storage import StorageConfigError, model_location

    try:
        return model_location(value)
    except StorageConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir", default=argparse.SUPPRESS,
        help=f"data directory (default: ${DATA_DIR_ENV}, else ./data)",
    )
    parser = argparse.ArgumentParser(
        prog="k8s-analysis", parents=[common],
        description="Learn from a GitHub project's issues and pull requests, and label new ones.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    importer = commands.add_parser(
        "import", parents=[common],
        help="load recorded exports and release-notes folders into the raw store",
        description="Load exports (JSON list, JSON Lines, .gz/.xz/.zst, or a tar holding api.json) "
                    "and folders or files of published release notes into the raw store.",
    )
    importer.add_argument("paths", nargs="+", type=Path, metavar="PATH")

    commands.add_parser(
        "run", parents=[common],
        help="materialize every asset through Dagster and print a summary",
        description="Run the main job (every asset and check) on the Dagster instance in "
                    "$DAGSTER_HOME, or in DATA_DIR/dagster_home when that is unset.",
    )

    export = commands.add_parser(
        "export", parents=[common],
        help="export issues and pull requests from the GitHub API into the raw store",
        description="Run the export job through Dagster: a full export the first time, then deltas. "
                    "Needs GITHUB_TOKEN. The repository and API URL are remembered in the data directory.",
    )
    kind = export.add_mutually_exclusive_group()
    kind.add_argument("--full", action="store_const", const="full", dest="mode",
                      help="list every issue and pull request again (also finds deleted and transferred ones)")
    kind.add_argument("--update", action="store_const", const="delta", dest="mode",
                      help="fetch only what changed since the newest stored item")
    export.add_argument("--repo", help="OWNER/NAME (default: the remembered one, else kubernetes/kubernetes)")
    export.add_argument("--api-url", help="API base URL (default: the remembered one, else https://api.github.com)")
    export.add_argument("--plan", action="store_true",
                        help="print the requests, rate-budget share and time of a full export and a delta; export nothing")

    analyze = commands.add_parser(
        "analyze", parents=[common],
        help="print or save one of the analyses computed from the tables",
        description="Compute analyses from DATA_DIR/tables. Without --save, print each series as a table.",
    )
    for name in ANALYSIS_FLAGS:
        analyze.add_argument(f"--{name.replace('_', '-')}", dest="analyses", action="append_const", const=name,
                             help=f"the {name.replace('_', ' ')} analysis")
    scope = analyze.add_mutually_exclusive_group()
    scope.add_argument("--pull-requests", dest="scope", action="store_const", const="pull_requests",
                       help="pull requests only (default: issues and pull requests)")
    scope.add_argument("--issues", dest="scope", action="store_const", const="issues", help="issues only")
    analyze.add_argument("--include", metavar="REGEX", help="keep only labels or users that match REGEX")
    analyze.add_argument("--exclude", metavar="REGEX", help="drop labels or users that match REGEX")
    analyze.add_argument("--count", type=int, default=25, metavar="N", help="rows of a ranking (default 25)")
    analyze.add_argument("--save", type=Path, metavar="FILE",
                         help="write the series or chart instead of printing: .png, .svg, .csv or .parquet")

    train = commands.add_parser(
        "train", parents=[common],
        help="retrain the kind/bug classifier on the stored release_notes table",
        description="Run the retrain job (train, check against the baseline and the promoted model, "
                    "evaluate) on DATA_DIR/tables/release_notes.parquet, written by `k8s-analysis run`.",
    )
    train.add_argument("--tune", action="store_true",
                       help="first search layers (1-3), units (8-128), word n-grams (1-3) and k, print the "
                            "trials by validation F1, save the best to DATA_DIR/models/tuned-config.json, "
                            "then train with it")
    train.add_argument("--trials", type=int, default=20, metavar="N",
                       help="with --tune: how many configurations to try, the current one included (default 20)")

    predict = commands.add_parser(
        "predict", parents=[common],
        help="print the probability that a release note is kind/bug",
        description="Exit status 0 when the probability reaches the threshold, 1 below it.",
    )
    predict.add_argument("text", nargs="?", help="release-note text")
    predict.add_argument("--threshold", type=float,
                         help="decision threshold (default: the one stored with the model, else 0.6)")
    predict.add_argument("--model-dir", type=Path, help="model version folder (default: DATA_DIR/models/current)")
    predict.add_argument("--test", action="store_true",
                         help="judge one known bug note and one known non-bug note; fail if either is wrong")
    predict.add_argument("--input", type=Path, metavar="FILE",
                         help="score a JSON Lines file of {\"text\": ...} objects instead of TEXT")
    predict.add_argument("--sig", action="append", default=[], metavar="NAME",
                         help="with TEXT: a sig/NAME label of the PR (repeatable); used when the model "
                              "was trained with label features")
    predict.add_argument("--area", action="append", default=[], metavar="NAME",
                         help="with TEXT: an area/NAME label of the PR (repeatable)")
    predict.add_argument("--output", type=Path, metavar="FILE",
                         help="with --input: where to write the objects with probability and kind_bug added")

    serve = commands.add_parser(
        "serve", parents=[common],
        help="serve predictions over HTTP (KServe V1 and V2 routes, Prometheus metrics)",
        description="Serve the promoted model over HTTP: POST /v1/models/NAME:predict, "
                    "POST /v2/models/NAME/infer, GET /v2/health/ready, GET /metrics. The server reloads "
                    "the model when DATA_DIR/models/current points at a new version, or, with "
                    f"{STORAGE_URL_ENV} set, when STORAGE/models/current.json names a new version.",
    )
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1; 0.0.0.0 listens on every interface)")
    serve.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    serve.add_argument("--workers", type=int, default=1, metavar="N",
                       help="worker processes sharing the port (default 1)")
    serve.add_argument("--model-dir", type=model_dir_argument,
                       help="model version folder, or the promoted model in object storage given as "
                            f"STORAGE/models/current, such as s3://BUCKET/PREFIX/models/current (default: "
                            f"${STORAGE_URL_ENV}/models/current when that is set, else DATA_DIR/models/current)")
    serve.add_argument("--model-name", default="kubernetes-analysis",
                       help="the NAME in the routes (default kubernetes-analysis)")
    serve.add_argument("--max-body-bytes", type=int, default=1024 * 1024, metavar="BYTES",
                       help="larger request bodies get 413 (default 1048576, 1 MiB)")
    serve.add_argument("--reload-interval", type=float, default=2.0, metavar="SECONDS",
                       help="how often to check whether the model folder points at a new version "
                            "(default 2; 0 turns the check off, POST /v1/models/NAME/load still reloads)")
    serve.add_argument("--access-log", action="store_true", help="log every request (off by default)")

    commands.add_parser(
        "rollback", parents=[common],
        help="promote the model version that was current before the last promotion",
        description="Point DATA_DIR/models/current back at DATA_DIR/models/previous, and keep the version it "
                    "leaves as the new previous, so a second rollback undoes the first. With "
                    f"{STORAGE_URL_ENV} set, STORAGE/models/current.json is rewritten too. A running prediction "
                    "server and bot load it within their reload interval.",
    )

    bot = commands.add_parser(
        "bot", parents=[common],
        help="run the labelling bot: a GitHub webhook and Prow external-plugin server",
        description="Receive pull_request and issues deliveries at POST / (and /hook), predict kind/bug for the "
                    "release note, and keep one comment and the kind/bug label up to date. Needs GITHUB_TOKEN "
                    "and GITHUB_WEBHOOK_SECRET. Human kind/* label changes are stored in "
                    "DATA_DIR/tables/label_feedback.parquet for training.",
    )
    bot.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    bot.add_argument("--port", type=int, default=8888, help="port to listen on (default 8888)")
    bot.add_argument("--api-url", default="https://api.github.com",
                     help="GitHub API base URL (default https://api.github.com; GitHub Enterprise: "
                          "https://HOST/api/v3)")
    bot.add_argument("--dry-run", action="store_true",
                     help="log the comments and label changes instead of making them")
    bot.add_argument("--insecure-no-signature", action="store_true",
                     help="accept deliveries without a valid X-Hub-Signature-256 (local tests only)")
    bot.add_argument("--model-dir", type=model_dir_argument,
                     help="model version folder, or STORAGE/models/current in object storage (default: "
                          f"${STORAGE_URL_ENV}/models/current when that is set, else DATA_DIR/models/current)")
    bot.add_argument("--predict-url", metavar="URL",
                     help="predict through a running `k8s-analysis serve` instead of in-process, given as the "
                          "model's V1 URL, such as http://127.0.0.1:8080/v1/models/kubernetes-analysis")
    bot.add_argument("--bot-login", metavar="LOGIN",
                     help="the bot's own login (default: read from GET /user; a GitHub App's is NAME[bot])")
    bot.add_argument("--writes-per-item", type=int, default=10, metavar="N",
                     help="at most N comment and label writes per pull request per hour (default 10)")
    bot.add_argument("--writes-per-minute", type=int, default=80, metavar="N",
                     help="at most N writes per minute in all, GitHub's secondary limit (default 80)")
    bot.add_argument("--reload-interval", type=float, default=2.0, metavar="SECONDS",
                     help="how often to check for a newly promoted model (default 2; 0 turns it off)")
    bot.add_argument("--shutdown-timeout", type=float, default=30.0, metavar="SECONDS",
                     help="on SIGTERM, how long to finish queued work before giving up the rest (default 30)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format=LOG_FORMAT)
    # Database migrations log every step at INFO on a new Dagster instance.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # TensorFlow's C++ start-up banners (oneDNN, CPU features) are noise to a user.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        layout = DataLayout(resolve_data_dir(getattr(args, "data_dir", None)))
        if args.command == "import":
            return import_command(args, layout)
        if args.command == "run":
            return run_command(layout)
        if args.command == "analyze":
            return analyze_command(args, layout, parser)
        if args.command == "export":
            return plan_command(args, layout) if args.plan else export_command(args, layout)
        if args.command == "train":
            return train_command(args, layout)
        if args.command == "serve":
            return serve_command(args, layout, parser)
        if args.command == "bot":
            return bot_command(args, layout, parser)
        if args.command == "rollback":
            return rollback_command(layout)
        return predict_command(args, layout, parser)
    except (ValueError, RuntimeError, OSError) as error:  # GitHubError and ExportBusyError included
        print(f"k8s-analysis {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"k8s-analysis {args.command}: interrupted", file=sys.stderr)
        return 130


def import_command(args: argparse.Namespace, layout: DataLayout) -> int:
    from k8s_analysis.importer import import_paths

    report = import_paths(args.paths, layout)
    issues = report.issues
    print(f"issues and pull requests: {issues.inserted:,} new, {issues.updated:,} updated, "
          f"{issues.unchanged:,} unchanged")
    print(f"release-notes files: {report.release_note_files_written} stored, "
          f"{report.release_note_files_unchanged} unchanged")
    print(f"raw store: {layout.root / 'raw'}")
    return 0


def prepare_dagster_home(layout: DataLayout) -> Path:
    """Use $DAGSTER_HOME, or create DATA_DIR/dagster_home with telemetry off."""
    home = Path(os.environ.get("DAGSTER_HOME") or layout.dagster_home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def execute_job(layout: DataLayout, job_name: str, run_config: dict):
    """Run one job of the code location in-process on the instance in DAGSTER_HOME."""
    import dagster as dg

    from k8s_analysis.definitions import defs

    # The resources resolve the data directory at run time from this variable.
    os.environ[DATA_DIR_ENV] = str(layout.root)
    home = prepare_dagster_home(layout)
    config = {**RUN_CONFIG, **run_config}
    with dg.DagsterInstance.get() as instance:
        result = defs.resolve_job_def(job_name).execute_in_process(
            run_config=config, instance=instance, raise_on_error=False
        )
    return result, home


def run_command(layout: DataLayout) -> int:
    from k8s_analysis.jobs import MAIN_JOB
    from k8s_analysis.summary import print_summary

    result, home = execute_job(layout, MAIN_JOB, {})
    print_summary(layout, result, home)
    return 0 if result.success else 1


def train_command(args: argparse.Namespace, layout: DataLayout) -> int:
    from k8s_analysis.jobs import RETRAIN_JOB
    from k8s_analysis.storage import table_exists
    from k8s_analysis.summary import model_line, new_model_not_promoted, step_failures

    notes_path = layout.table_path("release_notes")
    if not table_exists(notes_path):
        raise ValueError(f"no release_notes table at {notes_path}; build the tables first: "
                         f"`k8s-analysis --data-dir {layout.root} import EXPORT RELEASE_NOTES`, then "
                         f"`k8s-analysis --data-dir {layout.root} run`")
    if args.tune:
        if args.trials < 1:
            raise ValueError(f"--trials is {args.trials}; it must be 1 or more")
        tune_command(layout, notes_path, args.trials)
    result, home = execute_job(layout, RETRAIN_JOB, {})
    print()
    trained = training_happened(result)
    if not result.success:
        outcome = "FAILED"
    elif trained:
        outcome = "succeeded"
    else:
        outcome = "finished, but no model was trained"
    print(f"k8s-analysis train {outcome} (Dagster run {result.run_id})")
    print(f"  model:          {model_line(layout, result)}")
    blocked = new_model_not_promoted(result)
    if blocked:
        print(f"  new model:      {blocked}")
    print(f"  models:         {layout.models_dir}")
    for line in step_failures(result):
        print(line)
    # A skipped training is a successful Dagster run, but no model came out of it.
    return 0 if result.success and trained else 1


def training_happened(result) -> bool:
    for event in result.get_asset_materialization_events():
        metadata = event.materialization.metadata
        if event.asset_key.path[-1] == "kind_bug_classifier" and "status" in metadata:
            return metadata["status"].value == "trained"
    return False


def tune_command(layout: DataLayout, notes_path: TablePath, trials: int) -> None:
    import json
    from datetime import UTC, datetime

    import pandas as pd

    from k8s_analysis.assets.model import TUNED_SETTINGS, ClassifierConfig, read_tuned_config
    from k8s_analysis.atomic import write_text
    from k8s_analysis.model.dataset import build_dataset
    from k8s_analysis.model.tune import tune
    from k8s_analysis.storage import read_parquet

    defaults = ClassifierConfig()
    base = defaults.to_model_config(read_tuned_config(layout.tuned_config_path, logger))
    dataset = build_dataset(read_parquet(notes_path), defaults.split_config(), log=logger)
    results = tune(dataset, base, trials=trials, seed=defaults.seed, log=logger)
    table = pd.DataFrame([trial.row() for trial in results])
    table.index = range(1, len(table) + 1)
    print(f"\n{len(results)} configurations by validation F1 (split {dataset.info['method']}, "
          f"validation releases {'-'.join(dataset.info['releases']['validation']) or 'n/a'}):")
    print(table.to_string())
    best = results[0].config.as_dict()
    write_text(layout.tuned_config_path, json.dumps({
        "config": {name: best[name] for name in TUNED_SETTINGS},
        "validation_f1": results[0].f1,
        "validation_roc_auc": results[0].roc_auc,
        "created_at": datetime.now(UTC).isoformat(),
        "trials": [trial.row() for trial in results],
    }, indent=2) + "\n")
    print(f"\nsaved the best configuration to {layout.tuned_config_path}; training with it now")


def export_command(args: argparse.Namespace, layout: DataLayout) -> int:
    from k8s_analysis.jobs import EXPORT_JOB
    from k8s_analysis.sources.github import TOKEN_ENV
    from k8s_analysis.summary import print_export_summary

    if not os.environ.get(TOKEN_ENV):
        raise ValueError(f"export needs a GitHub token: set {TOKEN_ENV} (a token with read access to the repository)")
    check_export(args, layout)
    op_config = {"mode": args.mode or "auto", "repository": args.repo, "api_url": args.api_url}
    result, home = execute_job(layout, EXPORT_JOB, {"ops": {"raw_issues": {"config": op_config}}})
    print_export_summary(layout, result, home)
    return 0 if result.success else 1


def check_export(args: argparse.Namespace, layout: DataLayout) -> None:
    """Catch the usual mistakes in one line before a Dagster run starts.

    Checks the repository name, the token and API URL (``GET /rate_limit``, which GitHub
    does not count), that the repository exists (one request), that this data directory
    contains no other repository, and that no other import or export is writing to it.
    """
    from k8s_analysis.export.exporter import check_same_source
    from k8s_analysis.export.state import ExportState, exclusive_writer
    from k8s_analysis.sources.base import ExportRequest
    from k8s_analysis.sources.github import TOKEN_ENV, GitHubIssueSource

    source = GitHubIssueSource(token=os.environ[TOKEN_ENV])
    repository, api_url = source.resolve(layout, ExportRequest(repository=args.repo, api_url=args.api_url))
    check_same_source(ExportState.load(layout.export_state_path), layout, repository, api_url)
    client = source.client(api_url)
    client.check_api()
    client.get_json(f"/repos/{repository}")
    with exclusive_writer(layout.raw_lock_path, "k8s-analysis export (checking)"):
        pass


def plan_command(args: argparse.Namespace, layout: DataLayout) -> int:
    from datetime import timedelta

    from k8s_analysis.export.plan import plan_export
    from k8s_analysis.raw_store import RawIssueStore
    from k8s_analysis.sources.base import ExportRequest
    from k8s_analysis.sources.github import TOKEN_ENV, GitHubIssueSource

    token = os.environ.get(TOKEN_ENV) or None
    # A plan spends 2-3 requests: it keeps no reserve and does not wait long for a rate limit.
    source = GitHubIssueSource(token=token, rate_limit_reserve=0, max_sleep_s=60, max_total_wait_s=120)
    repository, api_url = source.resolve(layout, ExportRequest(repository=args.repo, api_url=args.api_url))
    plan = plan_export(source.client(api_url), repository, RawIssueStore(layout.raw_issues_dir),
                       timedelta(minutes=source.overlap_minutes), GitHubIssueSource().rate_limit_reserve)
    print("\n".join(plan.lines()))
    if token is None:
        print(f"note:           {TOKEN_ENV} is not set; an export needs it, and without it GitHub allows "
              "60 requests an hour")
    remember_source(layout, repository, api_url)
    return 0


def remember_source(layout: DataLayout, repository: str, api_url: str) -> None:
    """Record the planned source, so that a later plain `export` uses the same one."""
    from k8s_analysis.export.state import ExportState

    state = ExportState.load(layout.export_state_path)
    if state.repository is None:
        state.repository, state.api_url = repository, api_url
        state.save(layout.export_state_path)


def analyze_command(args: argparse.Namespace, layout: DataLayout, parser: argparse.ArgumentParser) -> int:
    from k8s_analysis.analysis.cli import run_analyses

    if not args.analyses:
        parser.error("analyze needs at least one analysis: " + ", ".join(f"--{n.replace('_', '-')}" for n in ANALYSIS_FLAGS))
    return run_analyses(args, layout)


def predict_command(args: argparse.Namespace, layout: DataLayout, parser: argparse.ArgumentParser) -> int:
    from k8s_analysis.model.bundle import ModelLoadError, Predictor
    from k8s_analysis.model.text import clean_text

    if (args.input is None) != (args.output is None):
        parser.error("--input and --output go together")
    if sum([args.test, bool(args.text), args.input is not None]) != 1:
        parser.error("predict needs one of TEXT, --test or --input/--output")
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        parser.error(f"invalid --threshold {args.threshold}: a probability threshold lies between 0 and 1")
    if args.text and not clean_text(args.text):
        parser.error("TEXT has no words once comments and markup are removed; give the release note's text")
    try:
        predictor = Predictor(args.model_dir or layout.current_model_dir)
    except ModelLoadError as error:
        if args.model_dir and (args.model_dir / "current").is_dir():
            raise ModelLoadError(f"{error}; {args.model_dir} contains model versions: "
                                 f"did you mean --model-dir {args.model_dir / 'current'}?") from None
        if args.model_dir:
            raise
        raise ModelLoadError(
            f"{error}. To train one: k8s-analysis --data-dir {layout.root} import EXPORT RELEASE_NOTES, "
            f"then k8s-analysis --data-dir {layout.root} run"
        ) from None
    threshold = predictor.threshold if args.threshold is None else args.threshold
    if args.test:
        return self_test(predictor, threshold)
    if args.input is not None:
        from k8s_analysis.model.scoring import score_file

        report = score_file(predictor, args.input, args.output, threshold)
        skipped = len(report.problems)
        print(f"scored {plural(report.scored, 'note')} into {args.output} (threshold {threshold:.3f}, "
              f"model {predictor.version}); {plural(skipped, 'line')} skipped")
        for problem in report.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1 if report.problems else 0
    if (args.sig or args.area) and not predictor.uses_labels:
        print(f"note: model {predictor.version} was trained without label features, so --sig and --area "
              "do not change its prediction", file=sys.stderr)
    sigs = [name.removeprefix("sig/") for name in args.sig]
    areas = [name.removeprefix("area/") for name in args.area]
    probabilities, informative_texts = predictor.score([args.text], [sigs], [areas])
    probability = float(probabilities[0])
    informative = bool(informative_texts[0])
    is_bug = informative and probability >= threshold
    verdict = "kind/bug" if is_bug else "not kind/bug"
    if not informative:
        verdict = "not judged: no word of the text is in the model's vocabulary"
    print(f"{probability:.4f} {verdict} (threshold {threshold:.3f}, model {predictor.version})")
    if not informative:
        print("warning: no word of this text occurred in the training notes, so its probability carries "
              "no evidence; give the full release note", file=sys.stderr)
    return 0 if is_bug else 1


def serve_command(args: argparse.Namespace, layout: DataLayout, parser: argparse.ArgumentParser) -> int:
    from k8s_analysis.serving.server import serve
    from k8s_analysis.serving.settings import ServerSettings
    from k8s_analysis.storage import is_pointer_location

    if not 0 <= args.port <= 65535:
        parser.error(f"invalid --port {args.port}: give 0 to 65535")
    if args.workers < 1:
        parser.error(f"invalid --workers {args.workers}: give 1 or more")
    model_dir = args.model_dir or layout.promoted_model
    if not is_pointer_location(model_dir):
        # The model may appear later, and the server waits for it. A --model-dir in a folder that
        # does not exist is a typo, though; the default folder appears with the first training.
        if args.model_dir is not None and not model_dir.parent.is_dir():
            parser.error(f"invalid --model-dir {model_dir}: the folder {model_dir.parent} does not exist")
        if (model_dir / "current").is_dir() and not (model_dir / "manifest.json").is_file():
            parser.error(f"{model_dir} contains model versions, not one model: did you mean --model-dir "
                         f"{model_dir / 'current'}?")
    try:
        settings = ServerSettings(model_dir, args.model_name, args.max_body_bytes, args.reload_interval,
                                  log_level="DEBUG" if args.verbose else "INFO")
    except ValueError as error:
        parser.error(str(error))
    serve(settings, args.host, args.port, args.workers, args.access_log)
    return 0


def rollback_command(layout: DataLayout) -> int:
    from k8s_analysis.model.bundle import rollback
    from k8s_analysis.storage import publish_model

    left, current = rollback(layout.models_dir)
    print(f"rolled back: {layout.current_model_dir} now points at {current} (was {left}); run rollback again "
          "to undo")
    published = publish_model(layout, current, promoted=True)
    if published is not None:
        print(f"object storage: {published.parent / 'current.json'} now names {current}")
    return 0


def bot_command(args: argparse.Namespace, layout: DataLayout, parser: argparse.ArgumentParser) -> int:
    from k8s_analysis.bot.server import BotOptions, run_bot
    from k8s_analysis.export.client import check_api_url
    from k8s_analysis.storage import is_pointer_location

    if not 0 <= args.port <= 65535:
        parser.error(f"invalid --port {args.port}: give 0 to 65535")
    for name in ("writes_per_item", "writes_per_minute"):
        if getattr(args, name) < 1:
            parser.error(f"invalid --{name.replace('_', '-')} {getattr(args, name)}: give 1 or more")
    if args.shutdown_timeout < 0:
        parser.error(f"invalid --shutdown-timeout {args.shutdown_timeout}: give 0 or more seconds")
    if args.model_dir is not None and args.predict_url:
        parser.error("give --model-dir or --predict-url, not both")
    if args.model_dir is not None and not is_pointer_location(args.model_dir) and not args.model_dir.parent.is_dir():
        parser.error(f"invalid --model-dir {args.model_dir}: the folder {args.model_dir.parent} does not exist")
    if args.predict_url and not args.predict_url.startswith(("http://", "https://")):
        parser.error(f"invalid --predict-url {args.predict_url!r}: give the model's V1 URL, such as "
                     "http://127.0.0.1:8080/v1/models/kubernetes-analysis")
    options = BotOptions(host=args.host, port=args.port, api_url=check_api_url(args.api_url), dry_run=args.dry_run,
                         insecure_no_signature=args.insecure_no_signature, model_dir=args.model_dir,
                         predict_url=args.predict_url, bot_login=args.bot_login,
                         writes_per_item_per_hour=args.writes_per_item, writes_per_minute=args.writes_per_minute,
                         reload_interval=args.reload_interval, shutdown_timeout_s=args.shutdown_timeout)
    run_bot(options, layout)
    return 0


def plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def self_test(predictor, threshold: float) -> int:
    bug, non_bug = predictor.predict_proba([KNOWN_BUG_NOTE, KNOWN_NON_BUG_NOTE])
    results = [("bug note", KNOWN_BUG_NOTE, bug, bug >= threshold),
               ("non-bug note", KNOWN_NON_BUG_NOTE, non_bug, non_bug < threshold)]
    for name, text, probability, correct in results:
        print(f"{'ok  ' if correct else 'FAIL'} {name}: {probability:.4f} (threshold {threshold:.3f}): {text}")
    print(f"model {predictor.version}")
    return 0 if all(correct for *_, correct in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
