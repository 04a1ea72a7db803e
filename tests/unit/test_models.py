"""Every registered model on small synthetic batches shaped like gold.training_sequences.

The tests are parametrised over the registry (conf/models/*.yml): a new model is tested here by
adding its module and YAML, nothing else.

Shapes and outputs (predictions are distributions, padding is never predicted), a finite loss
whose gradients reach the embeddings, learnability of deterministic rules that the frequency
priors cannot explain, and the Transformer's independence from other rows and from left padding.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from interest_lib.models import (
    EVENT_COLUMNS, WINDOW_COLUMNS, InputSizes, build_model, model_params, registered_models,
)
from interest_lib.models.common import (
    NUM_CATEGORY_FEATURES, NUM_STAGES, category_features, js_divergence, session_history, window_distributions,
)

pytestmark = pytest.mark.unit

C, ITEMS, TEXTS, TEXT_DIM = 12, 30, 10, 16  # categories, items, event texts, text vector width
L, W, K = 50, 8, 5  # events per sequence, windows, top categories per window
SIZES = InputSizes(categories=C, items=ITEMS, texts=TEXTS, top_k=K)
MODELS, MIGRATION, EVOLUTION = (registered_models(task) for task in (None, "migration", "evolution"))


def small_params(name: str, dropout: float = 0.1):
    """The model's default hyper-parameters, narrowed so every test stays fast on a CPU."""
    params = model_params(name)
    narrow = {"d_model": 32, "layers": 1, "hidden": 32, "dropout": dropout}
    return dataclasses.replace(params, **{k: v for k, v in narrow.items() if hasattr(params, k)})


def make_model(name: str, seed: int = 0, dropout: float = 0.1, text: bool = False):
    """A seeded small model; ``text`` adds random item / event-text vectors."""
    torch.manual_seed(seed)
    matrix = (torch.randn(ITEMS + 1, TEXT_DIM).numpy(), torch.randn(TEXTS + 1, TEXT_DIM).numpy()) if text else None
    return build_model(name, small_params(name, dropout), SIZES, matrix)


def _windows(b: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, W, K] window profiles: 1..K distinct categories with shares summing to 1, padded in
    front; the oldest windows of some rows are empty (left padding), the last one never is."""
    cats = torch.argsort(torch.rand(b, W, C, generator=gen), -1)[..., :K] + 1
    kept = torch.arange(K) >= K - torch.randint(1, K + 1, (b, W, 1), generator=gen)
    kept &= torch.arange(W)[None, :, None] >= torch.randint(0, W, (b, 1, 1), generator=gen)
    share = torch.rand(b, W, K, generator=gen) * kept
    return cats * kept, share / share.sum(-1, keepdim=True).clamp_min(1e-12)


def make_batch(b: int, gen: torch.Generator) -> dict:
    """Random rows with every column of gold.training_sequences that a model reads.

    Labels follow no rule; the learnability tests overwrite them.
    """
    real = torch.arange(L) >= L - torch.randint(5, L + 1, (b, 1), generator=gen)
    def ids(low, high):
        return torch.randint(low, high + 1, (b, L), generator=gen) * real
    win_cat, win_share = _windows(b, gen)
    next_cat, next_share = _windows(b, gen)
    batch = {"ev_category": ids(1, C), "ev_item": ids(1, ITEMS), "ev_type": ids(1, SIZES.event_types),
             "ev_interval": ids(1, SIZES.intervals), "ev_text": ids(0, TEXTS),
             "win_category": win_cat.reshape(b, W * K), "win_share": win_share.reshape(b, W * K),
             "next_category": torch.randint(1, C + 1, (b,), generator=gen),
             "next_dist_category": next_cat[:, -1], "next_dist_share": next_share[:, -1],
             "next_stage": torch.randint(0, NUM_STAGES, (b,), generator=gen)}
    batch["is_switch"] = ~(win_cat[:, -1] == batch["next_category"][:, None]).any(-1)
    return batch


def inputs(model, batch: dict) -> dict:
    """The columns the model reads, as the training feed delivers them."""
    return {c: batch[c] for c in model.columns}


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(1)


@pytest.fixture(autouse=True)
def one_thread():
    """These models are too small to gain from intra-op threads, and on a busy machine idle
    threads spinning for their turn make each step many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- shapes, distributions, gradients -------------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
def test_forward_shapes(name, gen):
    model, batch = make_model(name), make_batch(6, gen)
    assert set(model.columns) <= set(batch)
    out = model(inputs(model, batch))
    if model.task == "migration":
        assert out["logits"].shape == (6, C + 1)
        assert out["switch_logit"].shape == (6,)
        assert out["aux_logits"].shape == (6, L, C + 1)
        assert torch.equal(out["mask"], batch["ev_type"] != 0)
    else:
        assert out["forecast"].shape == (6, C + 1)
        assert out["stage_logits"].shape == (6, NUM_STAGES)


@pytest.mark.parametrize("name,text", [(n, False) for n in MODELS] + [(n, True) for n in MIGRATION])
def test_predictions_are_distributions(name, text, gen):
    model = make_model(name, text=text).eval()
    pred = model.predict(inputs(model, make_batch(16, gen)))
    probs = pred["next_probs"] if model.task == "migration" else pred["forecast"]
    assert probs.shape == (16, C + 1) and torch.isfinite(probs).all() and (probs >= 0).all()
    torch.testing.assert_close(probs.sum(-1), torch.ones(16))
    assert probs[:, 0].max() < 1e-6, "padding (column 0) must get no probability"
    if model.task == "migration":
        assert pred["p_switch"].shape == (16,) and ((pred["p_switch"] > 0) & (pred["p_switch"] < 1)).all()
    else:
        assert pred["stage"].shape == (16,) and ((pred["stage"] >= 1) & (pred["stage"] < NUM_STAGES)).all()


@pytest.mark.parametrize("name", MODELS)
def test_loss_is_finite_and_gradients_reach_the_embeddings(name, gen):
    model = make_model(name, text=True)
    batch = make_batch(16, gen)
    loss, parts = model.loss(batch, model(inputs(model, batch)))
    assert loss.ndim == 0 and torch.isfinite(loss) and all(torch.isfinite(v) for v in parts.values())
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), f"{pname}: no finite gradient"
    if model.task == "migration":
        enc = model.encoder
        for emb in (enc.category, enc.item, enc.event_type, enc.interval, enc.position, enc.text_proj):
            assert emb.weight.grad.abs().sum() > 0
        for emb in (enc.category, enc.item, enc.event_type, enc.interval):
            assert not emb.weight.grad[0].any(), "the padding row must not be trained"
    else:
        assert model.proj[0].weight.grad.abs().sum() > 0  # the window-vector embedding


# --- history features ---------------------------------------------------------------------


def test_session_history_counts_each_session_once():
    # Left-padded: a first session of three events on category 3 (bucket 1 = first event), then,
    # after a gap of hours (bucket 6), a session of one event on 5 and one on 2 (bucket 2).
    cats = torch.tensor([[0, 0, 3, 3, 3, 5, 2]])
    intervals = torch.tensor([[0, 0, 1, 2, 2, 6, 2]])
    equal = session_history(cats, intervals, 6, float("inf"))[0]
    assert torch.allclose(equal, torch.tensor([0, 0, 0.25, 0.5, 0, 0.25, 0]))
    recent = session_history(cats, intervals, 6, 1.0)[0]  # the older session weighs half
    assert torch.allclose(recent, torch.tensor([0, 0, 1 / 3, 1 / 3, 0, 1 / 3, 0]))
    empty = session_history(torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 4, dtype=torch.long), 6, 2.0)
    assert not empty.any()


def test_category_features_have_a_fixed_width_and_ignore_missing_inputs(gen):
    batch = make_batch(4, gen)
    full = category_features(batch, C, K)
    assert full.shape == (4, C + 1, 2 * NUM_CATEGORY_FEATURES)
    windows_only = {k: batch[k] for k in ("win_category", "win_share")}
    assert category_features(windows_only, C, K).shape == full.shape
    short = {k: v[:, -2 * K:] for k, v in windows_only.items()}  # two windows instead of W
    assert category_features(short, C, K).shape == full.shape


# --- learnability: rules the frequency priors cannot explain --------------------------------


def _train(model, batches, steps: int, lr: float = 1e-2) -> None:
    """``steps`` Adam steps on fresh batches from ``batches()``; leaves the model in eval mode."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        batch = batches()
        loss, _ = model.loss(batch, model(inputs(model, batch)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


def cyclic_next_category(b: int, gen: torch.Generator) -> dict:
    """next_category = (last event's category % C) + 1: a shift of the most recent event that
    no history or window frequency predicts."""
    batch = make_batch(b, gen)
    batch["next_category"] = batch["ev_category"][:, -1] % C + 1
    batch["is_switch"] = ~(batch["win_category"][:, -K:] == batch["next_category"][:, None]).any(-1)
    return batch


def hit_rate_at_1(model, batch: dict) -> float:
    """Share of rows whose most probable category is the label."""
    probs = model.predict(inputs(model, batch))["next_probs"]
    return (probs.argmax(-1) == batch["next_category"]).float().mean().item()


@pytest.mark.parametrize("name", MIGRATION)
def test_migration_model_learns_a_cyclic_shift(name, gen):
    model, test = make_model(name, dropout=0.0), cyclic_next_category(512, gen)
    before = hit_rate_at_1(model.eval(), test)
    _train(model, lambda: cyclic_next_category(64, gen), steps=80)
    after = hit_rate_at_1(model, test)
    assert before < 0.3 < 0.9 < after, (before, after)


def _label_window(batch: dict, cats: torch.Tensor, share: torch.Tensor) -> dict:
    batch["next_dist_category"], batch["next_dist_share"] = cats, share
    return batch


def cyclic_next_interest(b: int, gen: torch.Generator) -> dict:
    """The next window is all on (top category of the last window % C) + 1."""
    batch = make_batch(b, gen)
    last_cat, last_share = batch["win_category"][:, -K:], batch["win_share"][:, -K:]
    top = last_cat.gather(1, last_share.argmax(-1, keepdim=True))
    return _label_window(batch, torch.cat([top % C + 1, torch.zeros(b, K - 1, dtype=torch.long)], 1),
                         torch.eye(K)[0].expand(b, K))


def repeat_previous_but_one(b: int, gen: torch.Generator) -> dict:
    """The next window equals the previous-but-one window (a period-2 user)."""
    batch = make_batch(b, gen)
    return _label_window(batch, batch["win_category"][:, -2 * K:-K], batch["win_share"][:, -2 * K:-K])


def forecast_js(model, batch: dict) -> tuple[float, float]:
    """(model's mean JS to the label window, best of the persistence and mean-window priors)."""
    target = model.target(batch)
    windows = window_distributions(batch, C, K)
    present = (windows.sum(-1, keepdim=True) > 0).float()
    mean = (windows * present).sum(1) / present.sum(1)
    prior = min(js_divergence(p, target).mean().item() for p in (windows[:, -1], mean))
    return js_divergence(model.predict(inputs(model, batch))["forecast"], target).mean().item(), prior


def _assert_learns(name: str, rule, steps: int, gen) -> None:
    """Training on ``rule`` halves the JS of both the untrained model and the best prior."""
    model, test = make_model(name, dropout=0.0), rule(512, gen)
    before, prior = forecast_js(model.eval(), test)
    _train(model, lambda: rule(64, gen), steps=steps)
    after, _ = forecast_js(model, test)
    assert after < 0.5 * min(before, prior), (before, prior, after)


@pytest.mark.parametrize("name", EVOLUTION)
def test_evolution_model_learns_a_cyclic_shift(name, gen):
    _assert_learns(name, cyclic_next_interest, 150, gen)


def test_evolution_model_learns_a_period_two_user(gen):
    _assert_learns("evolution_gru", repeat_previous_but_one, 200, gen)


# --- the Transformer: batch independence, determinism, left padding --------------------------


def test_transformer_rows_are_independent_and_deterministic(gen):
    model = make_model("migration_transformer", text=True).eval()
    batch = inputs(model, make_batch(32, gen))
    full = model.predict(batch)
    again = model.predict(batch)
    assert all(torch.equal(full[k], again[k]) for k in full), "eval mode must be deterministic"
    perm = torch.randperm(32, generator=gen)
    shuffled = model.predict({k: v[perm] for k, v in batch.items()})
    single = [model.predict({k: v[i:i + 1] for k, v in batch.items()}) for i in range(4)]
    for key in full:
        torch.testing.assert_close(shuffled[key], full[key][perm])
        torch.testing.assert_close(torch.cat([s[key] for s in single]), full[key][:4])


def test_transformer_ignores_left_padding(gen):
    model = make_model("migration_transformer", text=True).eval()
    batch = inputs(model, make_batch(16, gen))
    base = model.predict(batch)
    longer = {k: torch.nn.functional.pad(v, (14, 0)) if k.startswith("ev_") else v for k, v in batch.items()}
    pad = longer["ev_type"] == 0
    for key, high in (("ev_item", ITEMS), ("ev_interval", SIZES.intervals), ("ev_text", TEXTS)):
        # Ids at padded positions (ev_type 0) are never attended to; the priors read only ev_category.
        longer[key] = torch.where(pad, torch.randint(1, high + 1, pad.shape, generator=gen), longer[key])
    padded = model.predict(longer)
    for key in base:
        torch.testing.assert_close(padded[key], base[key])


def test_a_model_saved_before_a_parameter_was_added_loads_as_it_was_trained(gen, tmp_path):
    """A model.pt written before ``window_mass`` and ``category_dim`` existed (its params lack
    them) rebuilds the network it trained, not today's defaults, and predicts as it did."""
    from interest_lib.models.inference import load_trained
    from interest_lib.runs.store import atomic_save

    old = dataclasses.replace(small_params("evolution_gru"), window_mass=False, category_dim=0)
    model = build_model("evolution_gru", old, SIZES).eval()
    saved = {k: v for k, v in dataclasses.asdict(old).items() if k not in ("window_mass", "max_events", "category_dim")}
    path = str(tmp_path / "model.pt")
    atomic_save({"model_name": "evolution_gru", "task": "evolution", "params": saved,
                 "sizes": dataclasses.asdict(SIZES), "state_dict": model.state_dict()}, path)
    loaded, _ = load_trained(path)
    assert loaded.params.window_mass is False and loaded.scorer.identity is None
    batch = make_batch(8, gen)
    with torch.no_grad():
        assert torch.allclose(loaded(batch)["forecast"], model(batch)["forecast"])
    assert model_params("evolution_gru").window_mass is True and model_params("evolution_gru").category_dim == 8


def test_a_saved_model_with_unknown_hyper_parameters_is_refused_by_name():
    from interest_lib.conf import ConfigError, model_spec

    with pytest.raises(ConfigError, match="does not know: stage_mixture"):
        model_spec("evolution_gru").saved_params({**dataclasses.asdict(model_params("evolution_gru")),
                                                  "stage_mixture": True})


def test_a_model_reading_fewer_windows_or_events_sees_what_a_shorter_table_holds(gen):
    """``max_windows`` (migration Transformer) and ``max_events`` (evolution GRU) make a model
    read the last N windows / events of a longer table: the same outputs as the same weights on
    a table built with those lengths."""
    batch = make_batch(6, gen)
    for name, key, n, columns, width in (("migration_transformer", "max_windows", 3, WINDOW_COLUMNS, 3 * K),
                                         ("evolution_gru", "max_events", 7, EVENT_COLUMNS, 7)):
        torch.manual_seed(0)
        short = build_model(name, dataclasses.replace(small_params(name, dropout=0.0), **{key: n}), SIZES).eval()
        full = build_model(name, dataclasses.replace(small_params(name, dropout=0.0), **{key: 0}), SIZES).eval()
        full.load_state_dict(short.state_dict())
        cut = {k: v[:, -width:] if k in columns else v for k, v in batch.items()}
        out = "logits" if name == "migration_transformer" else "forecast"
        with torch.no_grad():
            assert torch.allclose(short(batch)[out], full(cut)[out], atol=1e-6), name
            assert not torch.allclose(short(batch)[out], full(batch)[out], atol=1e-4), name
