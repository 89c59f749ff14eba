"""Import the weights of a `torch.nn.LSTM` into an equivalent `lstm_jax.LSTM`.

PyTorch stores weight_ih_l{k}[_reverse] float[4H, F], weight_hh float[4H, P], bias_ih and
bias_hh float[4H], and weight_hr float[P, H] with proj_size; gate order i, f, g, o, like ours.
We store the transposes and the sum of the two biases. torch is imported lazily, so this
module costs nothing for users without it.
"""

from __future__ import annotations

import numpy as np

from lstm_jax.layers import LSTM


def _array(tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy().astype(np.float32)


def from_torch(torch_lstm, *, unroll: int = 2) -> tuple[LSTM, dict]:
    """(module, variables) giving the same outputs as `torch_lstm` in eval mode.

    Works for any num_layers, bidirectional, proj_size and bias. torch's `batch_first` only
    changes its own input layout: our module is always batch-major [B, T, F]. Dropout between
    layers is carried over (it acts only when called with deterministic=False).
    """
    t = torch_lstm
    module = LSTM(
        hidden_size=t.hidden_size,
        num_layers=t.num_layers,
        bidirectional=t.bidirectional,
        proj_size=t.proj_size,
        dropout=float(t.dropout),
        use_bias=t.bias,
        unroll=unroll,
    )
    params = {}
    for layer in range(t.num_layers):
        for suffix in ("", "_reverse") if t.bidirectional else ("",):
            name = f"l{layer}{suffix}"
            weights = {
                "kernel_ih": _array(getattr(t, f"weight_ih_{name}")).T,
                "kernel_hh": _array(getattr(t, f"weight_hh_{name}")).T,
            }
            if t.bias:
                weights["bias"] = _array(getattr(t, f"bias_ih_{name}")) + _array(getattr(t, f"bias_hh_{name}"))
            if t.proj_size:
                weights["kernel_proj"] = _array(getattr(t, f"weight_hr_{name}")).T
            params[f"layer_{layer}{suffix}"] = weights
    return module, {"params": params}
