"""The serving side of the model contract: onnxruntime and numpy only, never scikit-learn.

ONNX sessions and per-model scores (:mod:`scoring.onnx_io`), the ensemble's inputs
(:mod:`scoring.stacking`), decision thresholds (:mod:`scoring.thresholds`), the rule model
(:mod:`scoring.rules`), loading a verified registry version (:mod:`scoring.registry`), the
degraded-mode scoring policy (:mod:`scoring.scorer`), reason codes (:mod:`scoring.explain`) and
the decision field names (:mod:`scoring.fields`). Both the scoring UDF and training import it.

This file imports nothing: thread-mode operators import :mod:`scoring.fields` inside the
TaskManager's embedded interpreter, where importing onnxruntime hangs the operator's start.
"""
