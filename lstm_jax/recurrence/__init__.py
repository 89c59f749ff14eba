"""The LSTM recurrence as pure functions: the `lax.scan` reference, "fused" (one scan per
direction with a hand-written backward pass), "native" (C++ kernels through XLA's FFI), and the
GRU's paths. `implementation` picks one; the layers in `lstm_jax.nn` call `recurrence`.

`native` is the kernels' namespace: `native.available()`, `native.team_size()`, `native.isa()`.
"""

from lstm_jax.recurrence._scan import LSTMState, lengths_to_mask, lstm_scan, reset_state, zeros_state
from lstm_jax.recurrence import _native as native

__all__ = ["LSTMState", "lengths_to_mask", "lstm_scan", "native", "reset_state", "zeros_state"]
