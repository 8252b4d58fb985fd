"""Evaluation: metrics as pure functions of ranks, and the full-ranking evaluator."""

from tgraph.eval import metrics
from tgraph.eval.evaluator import EvalResult, Evaluator, ground_truth_ranks

__all__ = ["EvalResult", "Evaluator", "ground_truth_ranks", "metrics"]
