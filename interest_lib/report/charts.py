"""Plotly figures of the report, one builder per chart, from :mod:`~interest_lib.report.gather`'s frames.

Each builder returns a ``plotly.graph_objects.Figure`` or None when its frame is empty (the page
then says what is missing). Figures use the empty template and rounded values so the page stays
small; plotly.js itself is inlined once by :mod:`~interest_lib.report.page`.
"""

from __future__ import annotations

from typing import Optional

import pandas as pd
import plotly.graph_objects as go

from interest_lib.report.gather import ALL_PERIODS, CHART_METRICS, STAGES

_STAGE_COLOURS = {"initial": "#9ecae1", "developing": "#4292c6", "stable": "#08519c", "fading": "#fdae6b"}
_LAYOUT = dict(template="none", height=420, margin=dict(l=150, r=30, t=50, b=60),
               font=dict(family="system-ui, sans-serif", size=12))


def _dates(values) -> list[str]:
    return [pd.Timestamp(v).strftime("%Y-%m-%d") for v in values]


def heatmap_figure(heat: pd.DataFrame, marks: pd.DataFrame, row_title: str) -> Optional[go.Figure]:
    """Rows × windows heat map of the share of active users' interest, with the migrations into
    each row overlaid as circles (area ∝ migrations)."""
    if heat.empty:
        return None
    grid = heat.pivot(index="row", columns="window_start", values="share").fillna(0.0)
    grid = grid.loc[grid.sum(axis=1).sort_values().index]  # largest interest on top
    x = _dates(grid.columns)
    users = heat.drop_duplicates("window_start").set_index("window_start").users.reindex(grid.columns)
    fig = go.Figure(go.Heatmap(
        z=grid.values.round(4), x=x, y=list(grid.index), colorscale="YlGnBu", zmin=0,
        colorbar=dict(title="share"), name="interest share",
        customdata=[[int(u) for u in users]] * len(grid.index),
        hovertemplate="%{y}<br>week of %{x}<br>share of active users' interest %{z:.1%}"
                      "<br>%{customdata} active users<extra></extra>"))
    if not marks.empty:
        biggest = max(int(marks.migrations.max()), 1)
        fig.add_trace(go.Scatter(
            x=_dates(marks.window_start), y=list(marks.row), mode="markers", name="migrations into",
            marker=dict(size=[8 + 22 * (m / biggest) ** 0.5 for m in marks.migrations], color="rgba(0,0,0,0)",
                        line=dict(color="#d62728", width=2)),
            text=[f"{m} migrations into {r}" for m, r in zip(marks.migrations, marks.row)],
            hovertemplate="%{text}<br>week of %{x}<extra></extra>"))
    fig.update_layout(**_LAYOUT, title="Interest evolution: share of active users' interest per week",
                      xaxis_title="week (window start)", yaxis_title=row_title, showlegend=False)
    return fig


def sankey_figure(flows: pd.DataFrame, note: str) -> Optional[go.Figure]:
    """From → to Sankey of the published migration flows; a menu picks the period (all windows
    first, then each window)."""
    if flows.empty:
        return None
    periods = list(dict.fromkeys(flows.period))
    fig = go.Figure()
    for i, period in enumerate(periods):
        cells = flows[flows.period == period]
        sources = sorted(set(cells.source))
        targets = sorted(set(cells.target))
        labels = [f"{s} (from)" for s in sources] + [f"{t} (to)" for t in targets]
        fig.add_trace(go.Sankey(
            visible=(i == 0), name=period, arrangement="snap",
            node=dict(label=labels, pad=12, thickness=14),
            link=dict(source=[sources.index(s) for s in cells.source],
                      target=[len(sources) + targets.index(t) for t in cells.target],
                      value=[int(u) for u in cells.users],
                      hovertemplate="%{source.label} → %{target.label}: %{value} users<extra></extra>")))
    buttons = [dict(label=p, method="update",
                    args=[{"visible": [j == i for j in range(len(periods))]},
                          {"title": f"Migration flows, {p} ({note})"}]) for i, p in enumerate(periods)]
    fig.update_layout(**{**_LAYOUT, "margin": dict(l=30, r=30, t=80, b=30)},
                      title=f"Migration flows, {periods[0]} ({note})",
                      updatemenus=[dict(buttons=buttons, direction="down", x=1.0, xanchor="right", y=1.15,
                                        yanchor="top", showactive=True)])
    return fig


def stages_figure(stages: pd.DataFrame) -> Optional[go.Figure]:
    """Stacked areas of followed interests per evolution stage and week."""
    if stages.empty:
        return None
    fig = go.Figure()
    for stage in dict.fromkeys(stages.stage):
        rows = stages[stages.stage == stage]
        fig.add_trace(go.Scatter(
            x=_dates(rows.window_start), y=[int(v) for v in rows.interests], name=stage, mode="lines",
            stackgroup="stages", line=dict(color=_STAGE_COLOURS.get(stage), width=0.5),
            hovertemplate=f"{stage}: %{{y}} interests<br>week of %{{x}}<extra></extra>"))
    fig.update_layout(**_LAYOUT, title="Evolution stages over time (followed user interests)",
                      xaxis_title="week (window start)", yaxis_title="user × interest pairs")
    return fig


def metrics_figure(metrics: pd.DataFrame, task: str) -> Optional[go.Figure]:
    """Grouped bars of one task's test metrics per model (baselines first) with 95% intervals."""
    rows = metrics[(metrics.task == task) & metrics.metric.isin(CHART_METRICS[task])]
    if rows.empty:
        return None
    fig = go.Figure()
    for model in dict.fromkeys(rows.model):
        mine = rows[rows.model == model]
        kind = mine.kind.iloc[0]
        fig.add_trace(go.Bar(
            x=[f"{s} · {m}" for s, m in zip(mine.slice, mine.metric)], y=mine.value.round(4).tolist(),
            name=f"{model} ({kind})", marker_pattern_shape="" if kind == "model" else "/",
            error_y=dict(type="data", symmetric=False, array=(mine.ci_high - mine.value).round(4).tolist(),
                         arrayminus=(mine.value - mine.ci_low).round(4).tolist()),
            customdata=list(zip(mine.ci_low.round(4), mine.ci_high.round(4), mine.rows)),
            hovertemplate=f"{model}: %{{y:.4f}} [95% %{{customdata[0]:.4f}}, %{{customdata[1]:.4f}}], "
                          f"n %{{customdata[2]}}<extra></extra>"))
    lower = " (lower is better for js)" if task == "evolution" else ""
    fig.update_layout(**_LAYOUT, barmode="group", title=f"{task.capitalize()}: models vs baselines, "
                      f"test split, 95% intervals{lower}", yaxis_title="value", legend=dict(orientation="h", y=-0.2))
    return fig


def drift_figure(drift: pd.DataFrame, metric: str, weeks: int) -> Optional[go.Figure]:
    """The drift series: the served model and the best baseline per week, each with its 95%
    interval; weeks where the model is below the baseline are marked."""
    if drift.empty:
        return None
    x = list(drift.week_start)
    fig = go.Figure()
    for who, colour, dash in (("model", "#1f77b4", "solid"), ("baseline", "#7f7f7f", "dash")):
        value, low, high = drift[f"{who}_value"], drift[f"{who}_low"], drift[f"{who}_high"]
        fig.add_trace(go.Scatter(
            x=x, y=value.round(4).tolist(), mode="lines+markers", name="model" if who == "model" else "best baseline",
            line=dict(color=colour, dash=dash),
            error_y=dict(type="data", symmetric=False, array=(high - value).round(4).fillna(0).tolist(),
                         arrayminus=(value - low).round(4).fillna(0).tolist()),
            text=list(drift[who]),
            hovertemplate="%{text}: %{y:.4f}<br>week of %{x}<extra></extra>"))
    below = drift[drift.below]
    if not below.empty:
        fig.add_trace(go.Scatter(x=list(below.week_start), y=below.model_value.round(4).tolist(), mode="markers",
                                 name="model below the baseline", marker=dict(symbol="x", size=12, color="#d62728"),
                                 hoverinfo="skip"))
    fig.update_layout(**_LAYOUT, title=f"Drift: {metric} of the served model vs the best baseline per week "
                      f"(95% intervals; retrain after {weeks} week(s) below)", xaxis_title="week (start)",
                      yaxis_title=metric, legend=dict(orientation="h", y=-0.2))
    return fig


def stream_figure(progress: pd.DataFrame) -> Optional[go.Figure]:
    """Streaming micro-batches: landing -> scores latency and batch duration (seconds), and rows
    processed per second on a second axis."""
    if progress.empty:
        return None
    x = [f"{q} #{b}" if progress["query"].nunique() > 1 else int(b) for q, b in zip(progress["query"], progress.batch_id)]
    fig = go.Figure()
    if progress.latency_s.notna().any():
        fig.add_trace(go.Scatter(x=x, y=progress.latency_s.round(2).tolist(), mode="lines+markers",
                                 name="latency: oldest file landed -> batch done (s)", line=dict(color="#d62728")))
    fig.add_trace(go.Scatter(x=x, y=progress.batch_seconds.round(2).tolist(), mode="lines+markers",
                             name="batch duration (s)", line=dict(color="#1f77b4")))
    fig.add_trace(go.Bar(x=x, y=progress.processed_rows_per_s.round(1).tolist(), name="rows/s processed",
                         yaxis="y2", marker_color="rgba(44,160,44,0.35)"))
    fig.update_layout(**_LAYOUT, title="Streaming micro-batches (gold.stream_progress)", xaxis_title="micro-batch",
                      yaxis_title="seconds", yaxis2=dict(title="rows/s", overlaying="y", side="right"),
                      legend=dict(orientation="h", y=-0.2))
    return fig


def accounting_figure(acc: dict) -> Optional[go.Figure]:
    """Rows in beside accepted + quarantined + duplicates (stacked), so a gap shows."""
    if acc.get("accepted") is None:
        return None
    x_in, x_parts = "rows in", "accepted + quarantined + duplicates"
    fig = go.Figure()
    if acc.get("rows_in") is not None:
        fig.add_trace(go.Bar(x=[x_in], y=[acc["rows_in"]], name="rows in", marker_color="#7f7f7f"))
    for key, colour in (("accepted", "#2ca02c"), ("quarantined", "#d62728"), ("duplicates", "#ff7f0e")):
        if acc.get(key) is not None:
            fig.add_trace(go.Bar(x=[x_parts], y=[acc[key]], name=key, marker_color=colour))
    fig.update_layout(**{**_LAYOUT, "height": 340, "margin": dict(l=80, r=30, t=50, b=40)}, barmode="stack",
                      title=f"Ingest accounting (from the {acc['source']})", yaxis_title="raw records")
    return fig


def step_times_figure(seconds: dict) -> Optional[go.Figure]:
    """Horizontal bars of the seconds each pipeline step took."""
    if not seconds:
        return None
    steps = list(seconds)
    fig = go.Figure(go.Bar(x=[round(float(seconds[s]), 1) for s in steps], y=steps, orientation="h",
                           marker_color="#1f77b4", hovertemplate="%{y}: %{x:.1f} s<extra></extra>"))
    fig.update_layout(**{**_LAYOUT, "height": 60 + 30 * len(steps)}, title="Time per pipeline step",
                      xaxis_title="seconds", yaxis=dict(autorange="reversed"))
    return fig


__all__ = ["heatmap_figure", "sankey_figure", "stages_figure", "metrics_figure", "drift_figure", "stream_figure",
           "accounting_figure", "step_times_figure", "ALL_PERIODS", "STAGES"]
