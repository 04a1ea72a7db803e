"""Drift monitoring: the served model against the best baseline, week after week.

:mod:`~interest_lib.monitor.drift` computes one week's drift rows (every ``interest score`` run
appends them to gold.model_metrics, ``series`` = drift); :mod:`~interest_lib.monitor.trend`
judges the series for ``interest monitor`` (exit 1: retrain). The trend needs no Spark.
"""
