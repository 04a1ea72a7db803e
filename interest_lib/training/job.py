"""``interest train``: train one registered model on gold.training_sequences at a pinned version.

Driver side only: pin the table version, size the inputs from ref.vocab, save the frozen text
matrices and the lineage to the run store, then launch :func:`train_worker` through the
configured backend. The run id is derived from (model, the input table's location and version,
hyper-parameters, training settings) unless ``run.run_id`` is set, so rerunning the same command
on the same table resumes the same run from its last checkpoint and a finished run is not
retrained (``--fresh`` starts it over); another warehouse is another run. A finished (or found
finished) run is then published as its task's latest run in the run store, explicitly.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess
import time
from dataclasses import dataclass
from typing import Optional

from pyspark.sql import SparkSession, functions as F

from interest_lib.conf import Config, ConfigError
from interest_lib.logs import get_logger
from interest_lib.models import InputSizes, model_task
from interest_lib.sequence_contract import new_session_bucket
from interest_lib.storage import Tables
from interest_lib.storage.catalog import (
    GOLD_TRAINING_SEQUENCES, REF_ITEM_EMBEDDINGS, REF_TEXT_EMBEDDINGS, REF_VOCAB,
)
from interest_lib.training.backend import BackendError, make_backend
from interest_lib.training.loop import TrainJob, train_worker
from interest_lib.runs import fs
from interest_lib.runs.store import (
    RunStore, atomic_save, latest_run, load_record, read_json, training_run_id, write_json, write_latest,
)

log = get_logger(__name__)


@dataclass
class TrainReport:
    """What a training run did."""

    model: str
    run_id: str
    store: str
    table_version: int
    epochs_run: int
    best_validation: float
    seconds: float
    skipped: bool = False
    resumed_from: Optional[str] = None
    mlflow_model_uri: Optional[str] = None
    store_bytes: int = 0
    """Bytes the run keeps in the run store once finished (model.pt, lineage, logs)."""


def input_sizes(tables: Tables, top_k: int, session_gap_minutes: Optional[float] = None) -> InputSizes:
    """Largest vocabulary index per kind (embedding table sizes) from ref.vocab, and the session
    rule of the sequences (``sessionize.gap_minutes``; None: its default)."""
    rows = tables.read(REF_VOCAB).groupBy("kind").agg(F.max("idx").alias("n")).collect()
    n = {r["kind"]: int(r["n"]) for r in rows}
    session = {} if session_gap_minutes is None else {"session_bucket": new_session_bucket(session_gap_minutes)}
    return InputSizes(categories=n.get("category", 0), items=n.get("item", 0), texts=n.get("text", 0),
                      top_k=top_k, **session)


def text_matrices(tables: Tables, sizes: InputSizes):
    """(item vectors [items+1, dim], event-text vectors [texts+1, dim]) aligned with ref.vocab
    indices (row 0 and unembedded ids stay zero), or None when there are no embeddings.
    Collected to the driver: items x dim floats (1,900 x 384 on the default set)."""
    import numpy as np

    if not (tables.exists(REF_ITEM_EMBEDDINGS) and tables.exists(REF_TEXT_EMBEDDINGS)):
        return None
    vocab = tables.read(REF_VOCAB)

    def matrix(kind: str, emb_table: str, key: str, rows: int):
        joined = (vocab.filter(F.col("kind") == kind).select(F.col("key").alias(key), "idx")
                  .join(tables.read(emb_table).select(key, "embedding"), key).select("idx", "embedding").collect())
        if not joined:
            return None
        out = np.zeros((rows + 1, len(joined[0]["embedding"])), np.float32)
        for r in joined:
            out[r["idx"]] = r["embedding"]
        return out

    items = matrix("item", REF_ITEM_EMBEDDINGS, "item_id", sizes.items)
    texts = matrix("text", REF_TEXT_EMBEDDINGS, "text", sizes.texts)
    if items is None:
        return None
    if texts is None:
        texts = np.zeros((sizes.texts + 1, items.shape[1]), np.float32)
    return items, texts


def code_version() -> str:
    """The git commit of the code (with '+dirty' when modified), or the package version."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("interest-evolution")
        except PackageNotFoundError:
            return "unknown"


def resolve_gpu(conf: Config, spark: SparkSession) -> bool:
    """Whether to train on GPUs: ``train.use_gpu`` auto = CUDA present and visible to Spark."""
    import torch

    want = conf.train.use_gpu
    if want == "cpu":
        return False
    key = "spark.driver.resource.gpu.amount" if conf.train.local_mode else "spark.task.resource.gpu.amount"
    visible = torch.cuda.is_available() and int(spark.conf.get(key, "0") or 0) > 0
    if want == "cuda" and not visible:
        raise BackendError(f"train.use_gpu=cuda but CUDA is not available or Spark's {key} is not set "
                           "(TorchDistributor assigns GPUs through Spark resources)")
    if want == "auto" and torch.cuda.is_available() and not visible:
        log.warning("CUDA is present but %s is unset: training on CPU (set it to use the GPUs)", key)
    return visible


def model_fingerprint(model_name: str) -> str:
    """Hash of the model's source (its module and the shared building blocks): a changed
    architecture is a new run, never a resume from incompatible checkpoints."""
    import importlib

    from interest_lib.conf import model_spec

    digest = hashlib.sha256()
    for module in (model_spec(model_name).module.__name__, "interest_lib.models.common"):
        # through the module's loader: works when interest_lib is shipped as a zip (--py-files)
        digest.update(importlib.import_module(module).__loader__.get_source(module).encode())
    return digest.hexdigest()[:12]


def run_id_for(conf: Config, model_name: str, table_location: str, version: int,
               warm_start_from: Optional[str] = None) -> str:
    """``<model>-v<table version>-<hash of the table's location and version, hyper-parameters,
    training settings, model code>`` (:func:`~interest_lib.runs.store.training_run_id`); a warm
    start also hashes the run it continues (``-warm`` is added to a fixed ``run.run_id``)."""
    if conf.run.run_id:
        return f"{conf.run.run_id}-{model_name}" + ("-warm" if warm_start_from else "")
    settings = {"params": dataclasses.asdict(getattr(conf.models, model_name)),
                "train": {k: v for k, v in dataclasses.asdict(conf.train).items() if k != "store"},
                "code": model_fingerprint(model_name)}
    if warm_start_from:
        settings["warm_start_from"] = warm_start_from
    return training_run_id(model_name, table_location, version, settings)


def run_train(spark: SparkSession, conf: Config, tables: Tables, model_name: Optional[str] = None,
              task: str = "migration", fresh: bool = False, warm_start: bool = False,
              transfer_from: Optional[str] = None) -> TrainReport:
    """Train ``model_name`` (default: the configured model of ``task``) and return its report.

    ``warm_start``: continue the latest published run of the task on the table's current
    (newer) version for ``train.warm_start_epochs`` (:mod:`interest_lib.training.warm_start`;
    raises :class:`~interest_lib.training.warm_start.WarmStartError` naming what differs).
    ``transfer_from``: a finished run of the same model on another catalogue (its run folder):
    this run starts from its weights, each category's rows from the source category whose text
    is closest (:mod:`interest_lib.training.transfer`), and trains the full schedule."""
    if not model_name:
        model_name = conf.train.migration_model if task == "migration" else conf.train.evolution_model
        if model_task(model_name) != task:
            raise ConfigError(f"train.{task}_model is {model_name!r}, which predicts {model_task(model_name)}; "
                              f"choose a {task} model of conf/models/")
    task = model_task(model_name)
    if not tables.exists(GOLD_TRAINING_SEQUENCES):
        raise FileNotFoundError(f"{GOLD_TRAINING_SEQUENCES} does not exist: run `interest featurize` first")
    version = tables.version(GOLD_TRAINING_SEQUENCES)
    table_path = tables.path(GOLD_TRAINING_SEQUENCES)
    store_root = fs.canonical(conf.train.store)
    base = None
    if warm_start and transfer_from:
        raise ConfigError("--warm-start and --transfer-from exclude each other: a warm start continues "
                          "this catalogue's latest run, a transfer starts from another catalogue's run")
    if transfer_from:
        base = _transfer_source(transfer_from, model_name)
    if warm_start:
        from interest_lib.training.warm_start import WarmStartError

        base = latest_run(store_root, task)
        if base is None:
            raise WarmStartError(f"--warm-start: no published {task} run under {store_root} to continue; "
                                 f"run `interest train --model {task}` first")
        if int(base.read_lineage().get("table_version", -1)) == version and base.read_lineage().get("model") == model_name:
            # A rerun after the warm start finished: the latest run is already on this version.
            log.info("train %s: the latest %s run %s is already on %s@%d: nothing to warm-start",
                     model_name, task, base.run_id, GOLD_TRAINING_SEQUENCES, version)
            return _report(model_name, base, version, 0.0, skipped=True)
    started_from = (f"transfer:{base.root}" if transfer_from else base.run_id) if base else None
    store = RunStore(fs.join(store_root, run_id_for(conf, model_name, table_path, version, started_from)))
    if fresh:
        store.remove()
    if store.finished():
        log.info("train %s: run %s already finished (use --fresh to retrain)", model_name, store.run_id)
        write_latest(store_root, task, store, model_name, version)
        store.prune_finished()
        return _report(model_name, store, version, 0.0, skipped=True)

    sizes = input_sizes(tables, conf.features.top_k, conf.sessionize.gap_minutes)
    params = getattr(conf.models, model_name)
    from interest_lib.training.warm_start import input_contract, vocab_lists

    vocab = vocab_lists(tables)
    contract = input_contract(conf, sizes)
    fingerprint = model_fingerprint(model_name)
    from interest_lib.training.transfer import category_texts

    texts = category_texts(tables, vocab["category"])
    plan = alignment = None
    if base is not None and transfer_from:
        plan, alignment = _plan_transfer(conf, base, vocab, texts)
    elif base is not None:  # every check before anything of the new run is written
        plan = _plan_warm_start(base, vocab, model_name, fingerprint, params, contract, table_path, version)
    store.create()
    frozen_tables: dict = {}
    if not fs.exists(store.vocab):
        write_json(store.vocab, vocab)
    if not fs.exists(store.categories):
        write_json(store.categories, texts)
    if getattr(params, "use_text", False) and not store.has_inputs():
        import numpy as np

        frozen_tables = {name: tables.version(name) for name in (REF_VOCAB, REF_ITEM_EMBEDDINGS, REF_TEXT_EMBEDDINGS)
                         if tables.exists(name)}
        text = text_matrices(tables, sizes)
        if text is not None:
            fs.write_with(store.inputs, lambda fh: np.savez(fh, items=text[0], texts=text[1]))
        else:
            frozen_tables = {}
            log.warning("train %s: no text embeddings found; training without text", model_name)
    lineage = {
        "run_id": store.run_id, "model": model_name, "task": task,
        "table": GOLD_TRAINING_SEQUENCES, "table_path": table_path,
        "table_version": version, "code_version": code_version(), "sizes": dataclasses.asdict(sizes),
        # the ref tables (and versions) inputs.npz was built from: checkpoints reference them
        "frozen_tables": frozen_tables,
        "model_code": fingerprint, "contract": contract,
        "conf": conf.to_dict(), "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if alignment is not None:
        lineage["transfer"] = {"from_run": base.run_id, "from_store": base.root,
                               "alignment": {t: [s, round(c, 4)] for t, (s, c) in sorted(alignment.pairs.items())}}
    elif plan is not None:
        lineage["warm_start"] = plan.summary()
    if plan is not None and not fs.exists(store.warm_init) and store.latest_checkpoint() is None:
        _write_warm_init(base, store, plan, model_name, params, sizes)
    if not fs.exists(store.lineage):
        write_json(store.lineage, lineage)
    lineage = read_json(store.lineage)  # a resumed run keeps the lineage it started with
    use_gpu = resolve_gpu(conf, spark)
    t = conf.train
    warm_start = plan is not None and not transfer_from
    if warm_start:
        t = dataclasses.replace(t, epochs=t.warm_start_epochs, learning_rate=t.learning_rate * t.warm_start_lr_scale)
    backend = make_backend(t.backend, t.num_processes, t.local_mode, use_gpu)
    job = TrainJob(model_name=model_name, task=task, params=params, sizes=sizes,
                   table_path=table_path, table_version=version,
                   store_root=store.root, backend=backend, train=t, lineage=lineage, warm_start=warm_start)
    log.info("train %s: run %s on %s@%d, %d process(es) via %s (%s), store %s", model_name, store.run_id,
             GOLD_TRAINING_SEQUENCES, version, t.num_processes, t.backend,
             "GPU" if use_gpu else "CPU", store.root)
    started = time.perf_counter()
    result = backend.launch(train_worker, job)
    seconds = time.perf_counter() - started
    write_latest(store_root, task, store, model_name, version)  # publish: evaluate and score use it
    store.prune_finished()  # checkpoints and inputs.npz served resume only; model.pt has the rest
    for record in result["history"]:
        log.info("train %s epoch %d: %s", model_name, record["epoch"], record)
    from interest_lib.tracking import log_training_run

    log_training_run(conf, store, model_name)
    return _report(model_name, store, version, seconds, resumed_from=result.get("resumed_from"))


def _plan_warm_start(base: RunStore, vocab: dict, model_name: str, fingerprint: str, params, contract: dict,
                     table_path: str, version: int):
    """The checked id mapping from the base run to the new table (see :func:`plan_warm_start`)."""
    from interest_lib.training.warm_start import WarmStartError, plan_warm_start

    if not fs.exists(base.vocab):
        raise WarmStartError(f"base run {base.run_id} has no vocab.json (trained before warm starts existed): "
                             "its ids cannot be matched to the new table's by key; train it again, then warm-start")
    return plan_warm_start(base.read_lineage(), read_json(base.vocab), vocab, model_name, fingerprint,
                           dataclasses.asdict(params), contract, table_path, version)


def _transfer_source(location: str, model_name: str) -> RunStore:
    """The finished run a transfer starts from; WarmStartError when it is missing or another model."""
    from interest_lib.training.warm_start import WarmStartError

    base = RunStore(fs.canonical(location))
    if not base.finished():
        raise WarmStartError(f"--transfer-from {location}: no finished run there (no model.pt); give the "
                             "folder of a trained run, e.g. <train.store>/<run id>")
    trained = base.read_lineage().get("model")
    if trained != model_name:
        raise WarmStartError(f"--transfer-from {location}: that run trained {trained!r}, this one trains "
                             f"{model_name!r}; transfer needs the same model (same layers and sizes)")
    if not fs.exists(base.vocab):
        raise WarmStartError(f"--transfer-from {location}: the run has no vocab.json (trained before warm "
                             "starts existed): its categories cannot be aligned; train it again")
    return base


def _plan_transfer(conf: Config, base: RunStore, vocab: dict, texts: dict):
    """(plan, alignment) of a transfer from ``base`` to this table's categories, by text."""
    from interest_lib.features.embeddings import get_encoder
    from interest_lib.training.transfer import plan_transfer

    source_texts = read_json(base.categories) if fs.exists(base.categories) else {}
    if not source_texts:
        log.warning("transfer: run %s has no categories.json; its categories are aligned by their keys alone",
                    base.run_id)
    plan, alignment = plan_transfer(read_json(base.vocab), source_texts, vocab, texts,
                                    get_encoder(conf.embeddings), base.run_id)
    weak = alignment.below(0.5)
    log.info("transfer from run %s: %d target categories aligned by text; %d below cosine 0.5%s",
             base.run_id, len(alignment.pairs), len(weak), f" (e.g. {weak[:5]})" if weak else "")
    return plan, alignment


def _write_warm_init(base: RunStore, store: RunStore, plan, model_name: str, params, sizes: InputSizes) -> None:
    """Save the base run's weights moved to the new ids as the new run's starting point."""
    import torch

    from interest_lib.models import build_model
    from interest_lib.training.loop import load_text_matrix
    from interest_lib.training.warm_start import remap_state

    record = load_record(base.model)
    torch.manual_seed(0)
    fresh = build_model(model_name, params, sizes, load_text_matrix(store)).state_dict()
    state = remap_state(record["state_dict"], fresh, record["sizes"], plan)
    atomic_save({"from_run": base.run_id, "state_dict": state}, store.warm_init)
    log.info("train %s: starts from run %s's weights (%s@%d); added ids: %s", model_name, base.run_id,
             GOLD_TRAINING_SEQUENCES, plan.base_table_version, plan.summary()["added"])


def _report(model_name: str, store: RunStore, version: int, seconds: float, skipped: bool = False,
            resumed_from: Optional[str] = None) -> TrainReport:
    """The report of a finished run, read from the run store (writes nothing)."""
    record = load_record(store.model)
    uri = read_json(store.tracking)["model_uri"] if fs.exists(store.tracking) else None
    return TrainReport(model=model_name, run_id=store.run_id, store=store.root, table_version=version,
                       epochs_run=len(record["history"]), best_validation=float(record["best"]),
                       seconds=round(seconds, 1), skipped=skipped, resumed_from=resumed_from,
                       mlflow_model_uri=uri, store_bytes=store.size_bytes())
