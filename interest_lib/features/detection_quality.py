"""Migration detection scored against planted ground truth: a pure function shared by
``interest featurize`` (on the collected rows of silver.interest_migrations and
ref.planted_migrations) and bench/detection_ceiling.py (on any detector's windows), no Spark."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DetectionQuality:
    """Migration detection against the planted ground truth."""

    planted: int
    detected: int
    matched_planted: int
    matched_detected: int
    precision: float
    recall: float
    f1: float
    median_delay_windows: float

    def summary(self) -> str:
        """One line for reports."""
        return (f"precision {self.precision:.3f}, recall {self.recall:.3f}, F1 {self.f1:.3f}, "
                f"median delay {self.median_delay_windows:.1f} windows "
                f"({self.detected} detected / {self.planted} planted)")


def detection_quality(detected: list[tuple], planted: list[tuple], tolerance: int = 1) -> DetectionQuality:
    """:func:`evaluate_detection` on (user, window, confirmed window) and (user, window) rows. A
    detection and a planted migration of one user match when their windows differ by at most
    ``tolerance``; each planted migration (user, window) is matched by its closest detection (the
    earlier window on a tie), whose confirmed window gives the delay; a detection counts as
    matched when it matches any planted migration."""
    by_user: dict = {}
    for user, window, confirmed in detected:
        by_user.setdefault(user, []).append((window, confirmed))
    best: dict = {}  # (user, planted window) -> ((distance, detected window), delay)
    matched_detected = set()
    for user, p_window in planted:
        for d_window, confirmed in by_user.get(user, ()):
            if abs(d_window - p_window) <= tolerance:
                matched_detected.add((user, d_window))
                key = (abs(d_window - p_window), d_window)
                if (user, p_window) not in best or key < best[(user, p_window)][0]:
                    best[(user, p_window)] = (key, confirmed - p_window)
    n_planted, n_detected = len(planted), len(detected)
    delays = sorted(delay for _key, delay in best.values())
    precision = len(matched_detected) / n_detected if n_detected else 0.0
    recall = len(best) / n_planted if n_planted else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    median = float(delays[len(delays) // 2]) if delays else float("nan")
    return DetectionQuality(n_planted, n_detected, len(best), len(matched_detected), precision, recall, f1, median)
