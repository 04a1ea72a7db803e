"""Scoring users inside Spark: predictors, recommendations, and the ``interest score`` job."""
