"""Using a trained model: load it from a run store and apply it to numpy arrays in batches.

Shared by ``interest evaluate`` (on the driver) and ``interest score`` (inside pandas UDFs).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from interest_lib.models import InputSizes


def pick_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when present, else ``cpu``."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def load_trained(path, device: str = "cpu"):
    """(model in eval mode on ``device``, its saved record) from a run's ``model.pt`` (a path
    or a file-like object holding its bytes)."""
    from interest_lib.conf import model_spec
    from interest_lib.models import build_model
    from interest_lib.runs.store import load_record

    record = load_record(path, map_location=device)
    params = model_spec(record["model_name"]).saved_params(record["params"])
    sizes = InputSizes(**record["sizes"])
    state = dict(record["state_dict"])
    text = frozen_text(record)
    # Records written before the frozen tables left the state dict hold them as buffers there.
    legacy = [state.pop(k) for k in ("encoder.item_text", "encoder.event_text") if k in state]
    if text is None and len(legacy) == 2:
        text = tuple(t.cpu().numpy() for t in legacy)
    model = build_model(record["model_name"], params, sizes, text)
    model.load_state_dict(state)
    return model.to(device).eval(), record


def frozen_text(record: dict):
    """The (item vectors, event-text vectors) a model record carries once, outside its
    state dict (``record["frozen"]``), as numpy arrays; None for a model without text."""
    frozen = record.get("frozen") or {}
    if "item_text" not in frozen:
        return None
    return frozen["item_text"].cpu().numpy(), frozen["event_text"].cpu().numpy()


def predict_arrays(model, arrays: dict, batch_size: int = 1024, device: Optional[str] = None) -> dict:
    """``model.predict`` over numpy input columns, in batches; outputs concatenated as numpy."""
    import torch

    device = device or next(model.parameters()).device
    n = len(next(iter(arrays.values())))
    outputs: dict[str, list] = {}
    for start in range(0, n, batch_size):
        batch = {k: torch.as_tensor(np.asarray(v[start:start + batch_size])).to(device)
                 for k, v in arrays.items() if k in model.columns}
        for key, value in model.predict(batch).items():
            outputs.setdefault(key, []).append(value.float().cpu().numpy() if value.is_floating_point()
                                               else value.cpu().numpy())
    return {k: np.concatenate(v) for k, v in outputs.items()}
