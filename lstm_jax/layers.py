"""Flax modules around the recurrence in `lstm.py`: a stacked LSTM with explicit state."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from lstm_jax.lstm import LSTMState, lstm_scan, resolve_mask, zeros_state


def forget_bias_init(hidden_size: int):
    """Bias initialiser for the fused [i, f, g, o] gates: 1.0 on f, 0 elsewhere (Jozefowicz 2015)."""

    def init(key, shape, dtype=jnp.float32):
        del key
        return jnp.zeros(shape, dtype).at[hidden_size : 2 * hidden_size].set(1.0)

    return init


class LSTMLayerWeights(nn.Module):
    """The weights of one LSTM layer; PyTorch's layout transposed, with the two biases summed.

    kernel_ih float32[F, 4H], kernel_hh float32[H, 4H] (orthogonal), bias float32[4H].
    """

    hidden_size: int

    @nn.compact
    def __call__(self, in_features: int):
        four_h = 4 * self.hidden_size
        kernel_ih = self.param("kernel_ih", nn.initializers.glorot_uniform(), (in_features, four_h))
        kernel_hh = self.param("kernel_hh", nn.initializers.orthogonal(), (self.hidden_size, four_h))
        bias = self.param("bias", forget_bias_init(self.hidden_size), (four_h,))
        return kernel_ih, kernel_hh, bias


class LSTM(nn.Module):
    """A stacked, unidirectional LSTM over batch-major sequences.

    Call: `outputs, state = layer(x, initial_state=None, *, lengths=None, mask=None)` with
      x float32[B, T, F]; lengths int[B] (right padding) or mask bool[B, T] (any padding);
      initial_state a tuple of `num_layers` `LSTMState`s (zeros when None).
    Returns outputs float32[B, T, H] (zero at masked steps) and the final state, a tuple of
    `LSTMState`s with c, h float32[B, H] per layer. Masked steps leave the state untouched.
    """

    hidden_size: int
    num_layers: int = 1
    unroll: int = 1

    def initial_state(self, batch_size: int) -> tuple[LSTMState, ...]:
        """Zero state for every layer: a tuple of `LSTMState`s, c, h float32[batch_size, H]."""
        return tuple(zeros_state(batch_size, self.hidden_size) for _ in range(self.num_layers))

    @nn.compact
    def __call__(self, x, initial_state=None, *, lengths=None, mask=None, deterministic=True):
        del deterministic  # no dropout yet; kept so callers can pass it
        batch, time, _ = x.shape
        mask = resolve_mask(batch, time, lengths, mask)
        if initial_state is None:
            initial_state = self.initial_state(batch)
        if len(initial_state) != self.num_layers:
            raise ValueError(
                f"initial_state: expected {self.num_layers} layer states, found {len(initial_state)}"
            )
        seq = jnp.swapaxes(x, 0, 1)  # time-major [T, B, F]
        mask_tm = None if mask is None else jnp.swapaxes(mask, 0, 1)
        final_states = []
        for layer in range(self.num_layers):
            kernel_ih, kernel_hh, bias = LSTMLayerWeights(self.hidden_size, name=f"layer_{layer}")(
                seq.shape[-1]
            )
            # One [T*B, F] x [F, 4H] matmul for all steps instead of T small ones in the loop.
            x_proj = jnp.einsum("tbf,fg->tbg", seq, kernel_ih) + bias
            final, seq = lstm_scan(x_proj, kernel_hh, initial_state[layer], mask_tm, unroll=self.unroll)
            final_states.append(final)
        return jnp.swapaxes(seq, 0, 1), tuple(final_states)

