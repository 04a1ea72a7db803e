"""Evaluation of next-category and next-window models: ranking metrics, distribution distances."""
