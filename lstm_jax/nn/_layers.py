"""Flax modules around the recurrence in `lstm.py`: a stacked, optionally bidirectional LSTM
with projection, dropout, recurrent dropout, masks, resets, mixed precision, regularisers and
explicit state. `gru.py` builds the GRU on the same module."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from lstm_jax.errors import ArgumentError
from lstm_jax.nn._initializers import orthogonal
from lstm_jax.recurrence._scan import LSTMState, recurrence, resolve_mask, zeros_state


def forget_bias_init(hidden_size: int):
    """Bias initialiser for the fused [i, f, g, o] gates: 1.0 on f, 0 elsewhere (Jozefowicz 2015)."""

    def init(key, shape, dtype=jnp.float32):
        del key
        return jnp.zeros(shape, dtype).at[hidden_size : 2 * hidden_size].set(1.0)

    return init


def at_least_float32(init):
    """`init` run in float32 (or wider) and cast to the requested dtype: an orthogonal basis
    computed in bfloat16 would be far from orthogonal. Unchanged values for float32."""

    def wrapped(key, shape, dtype=jnp.float32):
        return init(key, shape, jnp.promote_types(dtype, jnp.float32)).astype(dtype)

    return wrapped


class LSTMLayerWeights(nn.Module):
    """The weights of one LSTM layer in one direction: PyTorch's layout transposed, biases summed.

    kernel_ih float32[F, 4H] (Glorot uniform), kernel_hh float32[P, 4H] (orthogonal),
    bias float32[4H] (if use_bias), kernel_proj float32[H, P] (if proj_size > 0); P = proj_size or H.
    With layer_norm: ln_{ih,hh}_{scale,bias} float32[4H] and ln_c_{scale,bias} float32[H] (scales 1, biases 0).
    """

    hidden_size: int
    proj_size: int = 0
    use_bias: bool = True
    layer_norm: bool = False
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, in_features: int):
        hidden, out, dt = self.hidden_size, self.proj_size or self.hidden_size, self.param_dtype
        kernel_ih = self.param(
            "kernel_ih", at_least_float32(nn.initializers.glorot_uniform()), (in_features, 4 * hidden), dt
        )
        kernel_hh = self.param("kernel_hh", at_least_float32(orthogonal()), (out, 4 * hidden), dt)
        bias = self.param("bias", forget_bias_init(hidden), (4 * hidden,), dt) if self.use_bias else None
        proj = (
            self.param("kernel_proj", at_least_float32(nn.initializers.glorot_uniform()), (hidden, out), dt)
            if self.proj_size
            else None
        )
        norm = None
        if self.layer_norm:
            norm = {}
            for part, size in (("ih", 4 * hidden), ("hh", 4 * hidden), ("c", hidden)):
                norm[f"{part}_scale"] = self.param(f"ln_{part}_scale", nn.initializers.ones, (size,), dt)
                norm[f"{part}_bias"] = self.param(f"ln_{part}_bias", nn.initializers.zeros, (size,), dt)
        return {"kernel_ih": kernel_ih, "kernel_hh": kernel_hh, "bias": bias, "kernel_proj": proj, "norm": norm}


def _rate(name: str, value, upper_inclusive: bool = False) -> None:
    if not (0.0 <= value <= 1.0 if upper_inclusive else 0.0 <= value < 1.0):
        raise ArgumentError(f"{name}: expected a rate in [0, 1), found {value!r}")


class LSTM(nn.Module):
    """A stacked LSTM over batch-major sequences; forward, reverse-only or bidirectional.

    Call: `outputs, state = layer(x, initial_state=None, *, lengths=None, mask=None, reset=None,
    deterministic=True)` with x float32[B, T, F]; lengths int[B] (right padding) or mask
    bool[B, T] (any padding, also in the middle); reset bool[B, T], True at step t where a new
    segment (document) starts: the state of every layer is zeroed before step t (the reverse
    direction zeroes it after step t), so each segment gives what it gives when run alone from
    zeros (from `initial_state` for the first forward / last reverse segment).

    Returns outputs float32[B, T, D * P] (D = 2 if bidirectional else 1, P = proj_size or
    hidden_size; zero at masked steps) and the final state: a tuple of `num_layers * D`
    `LSTMState`s, ordered like PyTorch's h_n (layer-major, then direction), each with
    c float32[B, H] and h float32[B, P]. Masked steps leave the state untouched, so the
    backward direction starts at each row's true end, and padding left or right changes nothing;
    no value at a masked step (NaN included) reaches the outputs or the gradients.

    Fields:
      dropout: on the outputs of every layer but the last (as in PyTorch), when not deterministic.
      recurrent_dropout: on h before the recurrent matmul, one mask per sequence for all steps
        (Gal & Ghahramani 2016). All random masks draw from the 'dropout' PRNG stream.
      reverse: with bidirectional=False, run the single direction from the end to the start.
      learn_initial_state: when no initial_state is given, start from learned c0, h0 (one per
        layer and direction, shared over the batch) instead of zeros. A reset zeroes.
      unroll: time steps per loop iteration of the scan.
      implementation: "fused" (default: custom VJP, see `fused.py`; layers with a projection
        or layer_norm fall back to "scan"), "scan" (plain autodiff; supports forward-mode
        derivatives) or "native" (opt-in: the loop in C++ with its own GEMM, see `native.py`;
        no zoneout or mixed precision; runs "fused", with a warning, where it cannot load).
      batch_groups: split the batch into this many independent row groups per step, which
        XLA's CPU runtime runs concurrently (try the number of cores); must divide the batch.
      dtype: compute dtype (e.g. "bfloat16", "float16"): matmul operands, outputs and h; c, the
        gate math and the weight gradients stay float32. None: the input's dtype promoted with
        param_dtype (float32 by default, exactly the unmixed computation).
      param_dtype: dtype of the parameters (float32).
      zoneout: rate, or (rate_c, rate_h): when not deterministic, each unit of c (h) keeps its
        previous value with this probability at each step; deterministic, the expectation
        (Krueger et al. 2016, "Zoneout: Regularizing RNNs by Randomly Preserving Hidden
        Activations"; they use 0.5 for c and 0.05 for h). Both paths (fused: exact hand-written
        backward pass).
      weight_drop: DropConnect (Wan et al. 2013) on the recurrent kernel kernel_hh, one mask per
        call for all steps and rows, scaled by 1 / (1 - p), when not deterministic (Merity et al.
        2017, AWD-LSTM, "Regularizing and Optimizing LSTM Language Models"). Both paths.
      layer_norm: layer-normalise x W_ih, h W_hh (over 4H) and c before the output tanh, each with
        its own gain and bias (Ba, Kiros & Hinton 2016, "Layer Normalization", sec. 3.1). Scan path
        only: normalising x W_ih and h W_hh separately needs them as two products, which defeats
        the fused path's single stacked [x_t, h] @ [W_ih; W_hh] matmul per step.
    """

    hidden_size: int
    num_layers: int = 1
    bidirectional: bool = False
    proj_size: int = 0
    dropout: float = 0.0
    recurrent_dropout: float = 0.0
    use_bias: bool = True
    reverse: bool = False
    learn_initial_state: bool = False
    unroll: int = 2  # measured: 2 steps per loop iteration beat 1 and 4 (BENCHMARKS.md)
    implementation: str = "fused"
    batch_groups: int = 1
    dtype: Any = None
    param_dtype: Any = jnp.float32
    zoneout: float | tuple[float, float] = 0.0
    weight_drop: float = 0.0
    layer_norm: bool = False

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        return self.num_directions * (self.proj_size or self.hidden_size)

    def _dtypes(self, x_dtype=None) -> tuple[Any, Any, Any]:
        """(compute dtype, c dtype, mixed dtype or None) for inputs of x_dtype."""
        try:
            param = jnp.dtype(self.param_dtype)
            compute = jnp.dtype(self.dtype) if self.dtype is not None else None
        except TypeError as exc:
            raise ArgumentError(f"dtype/param_dtype: expected a float dtype such as 'bfloat16' ({exc})") from None
        for name, dt in (("dtype", compute), ("param_dtype", param)):
            if dt is not None and not jnp.issubdtype(dt, jnp.floating):
                raise ArgumentError(f"{name}: expected a float dtype such as 'bfloat16', found {dt}")
        if compute is None:  # not mixed: everything in the promoted dtype (float64 under x64 stays so)
            compute = param if x_dtype is None else jnp.result_type(x_dtype, param)
            return compute, compute, None
        if compute == param:
            return compute, compute, None
        return compute, jnp.promote_types(compute, jnp.float32), compute

    def initial_state(self, batch_size: int, dtype=None) -> tuple[LSTMState, ...]:
        """Zeros for every layer and direction: `num_layers * D` `LSTMState`s (h in the compute
        dtype, for inputs of `dtype`; c float32 under mixed precision)."""
        compute, c_dtype, _ = self._dtypes(dtype)
        n = self.num_layers * self.num_directions
        return tuple(zeros_state(batch_size, self.hidden_size, self.proj_size, compute, c_dtype) for _ in range(n))

    def _learned_initial_state(self, batch_size: int) -> tuple[LSTMState, ...]:
        n, out = self.num_layers * self.num_directions, self.proj_size or self.hidden_size
        c0 = self.param("initial_c", nn.initializers.zeros, (n, self.hidden_size), self.param_dtype)
        h0 = self.param("initial_h", nn.initializers.zeros, (n, out), self.param_dtype)
        return tuple(
            LSTMState(
                jnp.broadcast_to(c0[k], (batch_size, self.hidden_size)), jnp.broadcast_to(h0[k], (batch_size, out))
            )
            for k in range(n)
        )

    def _check_state(self, state, batch: int) -> None:
        expected = self.initial_state(batch)
        if len(state) != len(expected):
            raise ArgumentError(
                f"initial_state: expected {len(expected)} states (layers x directions), found {len(state)}"
            )
        for k, (got, want) in enumerate(zip(state, expected)):
            if any(jnp.shape(g) != w.shape for g, w in zip(got, want)):
                shapes = " ".join(f"{f}{list(w.shape)}" for f, w in zip(want._fields, want))
                found = " ".join(f"{f}{list(jnp.shape(g))}" for f, g in zip(want._fields, got))
                raise ArgumentError(f"initial_state[{k}]: expected {shapes}, found {found}")

    def _cast_state(self, state, compute, c_dtype):
        """The state in the dtypes the recurrence carries (unchanged when they already match)."""
        return tuple(
            type(s)(*(v if v.dtype == dt else v.astype(dt) for v, dt in zip(s, self._state_dtypes(compute, c_dtype))))
            for s in state
        )

    def _state_dtypes(self, compute, c_dtype):
        return (c_dtype, compute)

    def _validate(self, x) -> None:
        if x.ndim != 3:
            raise ArgumentError(f"x: expected float[B, T, F], found shape {x.shape}")
        if x.shape[-1] < 1:
            raise ArgumentError(
                f"x: expected at least one input feature (float[B, T, F], F >= 1), found shape {x.shape}"
            )
        for name in ("hidden_size", "num_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not hasattr(value, "__index__") or value < 1:
                raise ArgumentError(f"{name}: expected an integer >= 1, found {value!r}")
        if self.reverse and self.bidirectional:
            raise ArgumentError("reverse=True runs one direction backwards; it cannot be combined with bidirectional")
        if not 0 <= self.proj_size < self.hidden_size:
            raise ArgumentError(
                f"proj_size: expected 0 <= proj_size < hidden_size ({self.hidden_size}), found {self.proj_size}"
            )
        for name in ("dropout", "recurrent_dropout", "weight_drop"):
            _rate(name, getattr(self, name))
        for rate in self._zoneout_rates():
            _rate("zoneout", rate)

    def _zoneout_rates(self) -> tuple[float, float]:
        z = self.zoneout
        return (float(z), float(z)) if isinstance(z, (int, float)) else tuple(float(v) for v in z)

    def _recurrent_keep(self, batch: int, deterministic: bool, dtype):
        """float[B, P] multiplier for h (0 or 1/(1-p)), or None when no recurrent dropout applies."""
        if deterministic or self.recurrent_dropout == 0.0:
            return None
        keep = 1.0 - self.recurrent_dropout
        shape = (batch, self.proj_size or self.hidden_size)
        h_keep = jax.random.bernoulli(self.make_rng("dropout"), keep, shape).astype(jnp.float32) / keep
        self.sow("intermediates", "recurrent_keep", h_keep)  # visible with mutable=["intermediates"]
        return h_keep if dtype is None else h_keep.astype(dtype)

    def _weight_dropped(self, kernel_hh, deterministic: bool):
        """kernel_hh with DropConnect applied (training only): one mask for every step and row."""
        if deterministic or self.weight_drop == 0.0:
            return kernel_hh
        keep = 1.0 - self.weight_drop
        mask = jax.random.bernoulli(self.make_rng("dropout"), keep, kernel_hh.shape)
        self.sow("intermediates", "weight_keep", mask)
        return jnp.where(mask, kernel_hh / keep, jnp.zeros_like(kernel_hh))

    def _zoneout(self, shape_c, shape_h, deterministic: bool):
        """(keep_c, keep_h) for `recurrence` (either path), or None: bool[T, B, n] masks when
        training, rates otherwise."""
        rates = self._zoneout_rates()
        if not any(rates):
            return None
        if deterministic:
            return tuple(jnp.float32(r) if r else None for r in rates)
        masks = tuple(
            jax.random.bernoulli(self.make_rng("dropout"), r, shape) if r else None
            for r, shape in zip(rates, (shape_c, shape_h))
        )
        self.sow("intermediates", "zoneout_keep", masks)
        return masks

    def _direction(self, name, seq, state, mask_tm, reset_tm, reverse, deterministic, mixed):
        """One layer in one direction over seq [T, B, F]: (final state, outputs [T, B, P])."""
        w = LSTMLayerWeights(
            self.hidden_size, self.proj_size, self.use_bias, self.layer_norm, self.param_dtype, name=name
        )(seq.shape[-1])
        steps, batch = seq.shape[:2]
        zone = self._zoneout(
            (steps, batch, self.hidden_size), (steps, batch, self.proj_size or self.hidden_size), deterministic
        )
        return recurrence(
            seq,
            w["kernel_ih"],
            self._weight_dropped(w["kernel_hh"], deterministic),
            w["bias"],
            state,
            mask_tm,
            kernel_proj=w["kernel_proj"],
            h_keep=self._recurrent_keep(batch, deterministic, mixed),
            reset=reset_tm,
            zoneout=zone,
            norm=w["norm"],
            dtype=mixed,
            reverse=reverse,
            unroll=self.unroll,
            implementation=self.implementation,
            batch_groups=self.batch_groups,
        )

    @nn.compact
    def __call__(self, x, initial_state=None, *, lengths=None, mask=None, reset=None, deterministic=True):
        x = jnp.asarray(x)
        self._validate(x)
        batch, time, _ = x.shape
        mask = resolve_mask(batch, time, lengths, mask)
        if reset is not None:
            reset = jnp.asarray(reset, bool)
            if reset.shape != (batch, time):
                raise ArgumentError(f"reset: expected bool[B, T] of shape {(batch, time)}, found {reset.shape}")
        compute, c_dtype, mixed = self._dtypes(x.dtype)
        if x.dtype != compute:
            x = x.astype(compute)
        if self.learn_initial_state:
            learned = self._learned_initial_state(batch)
            initial_state = learned if initial_state is None else initial_state
        if initial_state is None:
            initial_state = self.initial_state(batch, x.dtype)
        self._check_state(initial_state, batch)
        initial_state = self._cast_state(initial_state, compute, c_dtype)

        seq = jnp.swapaxes(x, 0, 1)  # time-major [T, B, F]
        mask_tm = None if mask is None else jnp.swapaxes(mask, 0, 1)
        reset_tm = None if reset is None else jnp.swapaxes(reset, 0, 1)
        final_states = []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.num_directions):
                suffix = "_reverse" if direction == 1 else ""  # PyTorch's naming
                final, out = self._direction(
                    f"layer_{layer}{suffix}",
                    seq,
                    initial_state[layer * self.num_directions + direction],
                    mask_tm,
                    reset_tm,
                    direction == 1 or (self.reverse and not self.bidirectional),
                    deterministic,
                    mixed,
                )
                final_states.append(final)
                outputs.append(out)
            seq = outputs[0] if len(outputs) == 1 else jnp.concatenate(outputs, axis=-1)
            if self.dropout > 0.0 and layer < self.num_layers - 1:
                seq = nn.Dropout(self.dropout)(seq, deterministic=deterministic)
        return jnp.swapaxes(seq, 0, 1), tuple(final_states)
