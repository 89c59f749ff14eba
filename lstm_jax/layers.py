"""Flax modules around the recurrence in `lstm.py`: a stacked, optionally bidirectional LSTM
with projection, dropout, recurrent dropout, masks and explicit state."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from lstm_jax.errors import ArgumentError
from lstm_jax.lstm import LSTMState, recurrence, resolve_mask, zeros_state


def forget_bias_init(hidden_size: int):
    """Bias initialiser for the fused [i, f, g, o] gates: 1.0 on f, 0 elsewhere (Jozefowicz 2015)."""

    def init(key, shape, dtype=jnp.float32):
        del key
        return jnp.zeros(shape, dtype).at[hidden_size : 2 * hidden_size].set(1.0)

    return init


class LSTMLayerWeights(nn.Module):
    """The weights of one LSTM layer in one direction: PyTorch's layout transposed, biases summed.

    kernel_ih float32[F, 4H] (Glorot uniform), kernel_hh float32[P, 4H] (orthogonal),
    bias float32[4H] (if use_bias), kernel_proj float32[H, P] (if proj_size > 0); P = proj_size or H.
    """

    hidden_size: int
    proj_size: int = 0
    use_bias: bool = True

    @nn.compact
    def __call__(self, in_features: int):
        hidden, out = self.hidden_size, self.proj_size or self.hidden_size
        kernel_ih = self.param("kernel_ih", nn.initializers.glorot_uniform(), (in_features, 4 * hidden))
        kernel_hh = self.param("kernel_hh", nn.initializers.orthogonal(), (out, 4 * hidden))
        bias = self.param("bias", forget_bias_init(hidden), (4 * hidden,)) if self.use_bias else None
        proj = self.param("kernel_proj", nn.initializers.glorot_uniform(), (hidden, out)) if self.proj_size else None
        return kernel_ih, kernel_hh, bias, proj


class LSTM(nn.Module):
    """A stacked LSTM over batch-major sequences; forward, reverse-only or bidirectional.

    Call: `outputs, state = layer(x, initial_state=None, *, lengths=None, mask=None,
    deterministic=True)` with x float32[B, T, F]; lengths int[B] (right padding) or mask
    bool[B, T] (any padding, also in the middle).

    Returns outputs float32[B, T, D * P] (D = 2 if bidirectional else 1, P = proj_size or
    hidden_size; zero at masked steps) and the final state: a tuple of `num_layers * D`
    `LSTMState`s, ordered like PyTorch's h_n (layer-major, then direction), each with
    c float32[B, H] and h float32[B, P]. Masked steps leave the state untouched, so the
    backward direction starts at each row's true end, and padding left or right changes nothing.

    Fields:
      dropout: on the outputs of every layer but the last (as in PyTorch), when not deterministic.
      recurrent_dropout: on h before the recurrent matmul, one mask per sequence for all steps
        (Gal & Ghahramani 2016). Both draw from the 'dropout' PRNG stream.
      reverse: with bidirectional=False, run the single direction from the end to the start.
      learn_initial_state: when no initial_state is given, start from learned c0, h0 (one per
        layer and direction, shared over the batch) instead of zeros.
      unroll: time steps per loop iteration of the scan.
      implementation: "fused" (default: custom VJP, see `fused.py`; layers with a projection
        fall back to "scan") or "scan" (plain autodiff; supports forward-mode derivatives).
      batch_groups: split the batch into this many independent row groups per step, which
        XLA's CPU runtime runs concurrently (try the number of cores); must divide the batch.
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

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        return self.num_directions * (self.proj_size or self.hidden_size)

    def initial_state(self, batch_size: int, dtype=jnp.float32) -> tuple[LSTMState, ...]:
        """Zeros for every layer and direction: `num_layers * D` `LSTMState`s."""
        n = self.num_layers * self.num_directions
        return tuple(zeros_state(batch_size, self.hidden_size, self.proj_size, dtype) for _ in range(n))

    def _learned_initial_state(self, batch_size: int) -> tuple[LSTMState, ...]:
        n, out = self.num_layers * self.num_directions, self.proj_size or self.hidden_size
        c0 = self.param("initial_c", nn.initializers.zeros, (n, self.hidden_size))
        h0 = self.param("initial_h", nn.initializers.zeros, (n, out))
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
                f"initial_state: expected {len(expected)} LSTMStates (layers x directions), found {len(state)}"
            )
        for k, (got, want) in enumerate(zip(state, expected)):
            if got.c.shape != want.c.shape or got.h.shape != want.h.shape:
                raise ArgumentError(
                    f"initial_state[{k}]: expected c{list(want.c.shape)} h{list(want.h.shape)}, "
                    f"found c{list(got.c.shape)} h{list(got.h.shape)}"
                )

    def _recurrent_keep(self, batch: int, deterministic: bool):
        """float32[B, P] multiplier for h (0 or 1/(1-p)), or None when no recurrent dropout applies."""
        if deterministic or self.recurrent_dropout == 0.0:
            return None
        keep = 1.0 - self.recurrent_dropout
        shape = (batch, self.proj_size or self.hidden_size)
        h_keep = jax.random.bernoulli(self.make_rng("dropout"), keep, shape).astype(jnp.float32) / keep
        self.sow("intermediates", "recurrent_keep", h_keep)  # visible with mutable=["intermediates"]
        return h_keep

    @nn.compact
    def __call__(self, x, initial_state=None, *, lengths=None, mask=None, deterministic=True):
        if x.ndim != 3:
            raise ArgumentError(f"x: expected float[B, T, F], found shape {x.shape}")
        if self.reverse and self.bidirectional:
            raise ArgumentError("reverse=True runs one direction backwards; it cannot be combined with bidirectional")
        if not 0 <= self.proj_size < self.hidden_size:
            raise ArgumentError(
                f"proj_size: expected 0 <= proj_size < hidden_size ({self.hidden_size}), found {self.proj_size}"
            )
        batch, time, _ = x.shape
        mask = resolve_mask(batch, time, lengths, mask)
        if self.learn_initial_state:
            learned = self._learned_initial_state(batch)
            initial_state = learned if initial_state is None else initial_state
        if initial_state is None:
            initial_state = self.initial_state(batch, x.dtype)
        self._check_state(initial_state, batch)

        seq = jnp.swapaxes(x, 0, 1)  # time-major [T, B, F]
        mask_tm = None if mask is None else jnp.swapaxes(mask, 0, 1)
        final_states = []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.num_directions):
                suffix = "_reverse" if direction == 1 else ""  # PyTorch's naming
                kernel_ih, kernel_hh, bias, proj = LSTMLayerWeights(
                    self.hidden_size, self.proj_size, self.use_bias, name=f"layer_{layer}{suffix}"
                )(seq.shape[-1])
                final, out = recurrence(
                    seq,
                    kernel_ih,
                    kernel_hh,
                    bias,
                    initial_state[layer * self.num_directions + direction],
                    mask_tm,
                    kernel_proj=proj,
                    h_keep=self._recurrent_keep(batch, deterministic),
                    reverse=direction == 1 or (self.reverse and not self.bidirectional),
                    unroll=self.unroll,
                    implementation=self.implementation,
                    batch_groups=self.batch_groups,
                )
                final_states.append(final)
                outputs.append(out)
            seq = outputs[0] if len(outputs) == 1 else jnp.concatenate(outputs, axis=-1)
            if self.dropout > 0.0 and layer < self.num_layers - 1:
                seq = nn.Dropout(self.dropout)(seq, deterministic=deterministic)
        return jnp.swapaxes(seq, 0, 1), tuple(final_states)
