"""Convert between `torch.nn.LSTM` / `torch.nn.GRU` and `lstm_jax.LSTM` / `lstm_jax.GRU`.

PyTorch stores weight_ih_l{k}[_reverse] float[G*H, F], weight_hh float[G*H, P], bias_ih and
bias_hh float[G*H] (G = 4 gates i, f, g, o for the LSTM, 3 gates r, z, n for the GRU), and
weight_hr float[P, H] with proj_size. The LSTM stores the transposes and the sum of the two
biases; the GRU keeps both biases (b_hn sits inside r * (...), so they cannot be summed).
torch is imported lazily, so this module costs nothing for users without it.
"""

from __future__ import annotations

import logging

import numpy as np

from lstm_jax.errors import ArgumentError
from lstm_jax.nn._layers import LSTM

log = logging.getLogger(__name__)


def _array(tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy().astype(np.float32)


def _names(num_layers: int, bidirectional: bool):
    """(our weights' name, torch's suffix) for every layer and direction, in torch's order."""
    for layer in range(num_layers):
        for suffix in ("", "_reverse") if bidirectional else ("",):
            yield f"layer_{layer}{suffix}", f"l{layer}{suffix}"


def from_torch(torch_rnn, *, unroll: int = 2):
    """(module, variables) giving the same outputs as `torch_rnn` (an nn.LSTM or nn.GRU) in eval mode.

    Works for any num_layers, bidirectional, bias, and proj_size (LSTM). torch's `batch_first`
    only changes its own input layout: our module is always batch-major [B, T, F]. Dropout
    between layers is carried over (it acts only when called with deterministic=False).
    """
    import torch

    t = torch_rnn
    is_gru = isinstance(t, torch.nn.GRU)
    if not is_gru and not isinstance(t, torch.nn.LSTM):
        raise ArgumentError(f"torch_rnn: expected a torch.nn.LSTM or torch.nn.GRU, found {type(t).__name__}")
    common = dict(
        hidden_size=t.hidden_size,
        num_layers=t.num_layers,
        bidirectional=t.bidirectional,
        dropout=float(t.dropout),
        use_bias=t.bias,
        unroll=unroll,
    )
    if is_gru:
        from lstm_jax.nn._gru import GRU

        module = GRU(**common)
    else:
        module = LSTM(proj_size=t.proj_size, **common)
    params = {}
    for ours, theirs in _names(t.num_layers, t.bidirectional):
        weights = {
            "kernel_ih": _array(getattr(t, f"weight_ih_{theirs}")).T,
            "kernel_hh": _array(getattr(t, f"weight_hh_{theirs}")).T,
        }
        if t.bias and is_gru:
            weights["bias_ih"] = _array(getattr(t, f"bias_ih_{theirs}"))
            weights["bias_hh"] = _array(getattr(t, f"bias_hh_{theirs}"))
        elif t.bias:
            weights["bias"] = _array(getattr(t, f"bias_ih_{theirs}")) + _array(getattr(t, f"bias_hh_{theirs}"))
        if not is_gru and t.proj_size:
            weights["kernel_proj"] = _array(getattr(t, f"weight_hr_{theirs}")).T
        params[ours] = weights
    return module, {"params": params}


def to_torch(module, variables, *, batch_first: bool = True):
    """A `torch.nn.LSTM` (or `nn.GRU`, for a `GRU`) in eval mode with the weights of `variables`,
    giving the same outputs as `module.apply(variables, x)` (float32; torch's default layout of
    the input is chosen by `batch_first`).

    The LSTM's summed bias goes to bias_ih, with bias_hh zero. Options torch's modules do not
    have raise an ArgumentError: learn_initial_state, reverse (a single backward direction) and
    layer_norm. Training-only regularisers torch lacks (recurrent_dropout, zoneout,
    weight_drop) are left out with a log message: eval-mode outputs do not depend on them,
    except zoneout, whose evaluation mixes in the previous state, so it raises too.
    """
    import torch

    from lstm_jax.nn._gru import GRU

    is_gru = isinstance(module, GRU)
    if not is_gru and not isinstance(module, LSTM):
        raise ArgumentError(f"module: expected an lstm_jax LSTM or GRU, found {type(module).__name__}")
    for field in ("learn_initial_state", "reverse", "layer_norm"):
        if getattr(module, field):
            raise ArgumentError(f"{type(module).__name__}.{field}: torch.nn has no equivalent; expected False")
    if any(module._zoneout_rates()):
        raise ArgumentError(f"{type(module).__name__}.zoneout: torch.nn has no equivalent; expected 0")
    dropped = [f for f in ("recurrent_dropout", "weight_drop") if getattr(module, f)]
    if dropped:
        log.info("to_torch: %s have no torch equivalent and are left out (they act in training only)", dropped)
    params = variables["params"] if "params" in variables else variables
    if "layer_0" not in params:
        raise ArgumentError(f"variables: expected LSTM/GRU params with 'layer_0', found keys {sorted(params)}")
    input_size = int(np.shape(params["layer_0"]["kernel_ih"])[0])
    kwargs = dict(
        input_size=input_size,
        hidden_size=module.hidden_size,
        num_layers=module.num_layers,
        bias=module.use_bias,
        batch_first=batch_first,
        dropout=float(module.dropout),
        bidirectional=module.bidirectional,
    )
    t = torch.nn.GRU(**kwargs) if is_gru else torch.nn.LSTM(proj_size=module.proj_size, **kwargs)

    def tensor(a):
        return torch.from_numpy(np.array(a, dtype=np.float32))

    with torch.no_grad():
        for ours, theirs in _names(module.num_layers, module.bidirectional):
            w = params[ours]
            getattr(t, f"weight_ih_{theirs}").copy_(tensor(w["kernel_ih"]).T)
            getattr(t, f"weight_hh_{theirs}").copy_(tensor(w["kernel_hh"]).T)
            if module.use_bias and is_gru:
                getattr(t, f"bias_ih_{theirs}").copy_(tensor(w["bias_ih"]))
                getattr(t, f"bias_hh_{theirs}").copy_(tensor(w["bias_hh"]))
            elif module.use_bias:
                getattr(t, f"bias_ih_{theirs}").copy_(tensor(w["bias"]))
                getattr(t, f"bias_hh_{theirs}").zero_()
            if not is_gru and module.proj_size:
                getattr(t, f"weight_hr_{theirs}").copy_(tensor(w["kernel_proj"]).T)
    return t.eval()
