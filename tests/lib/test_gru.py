"""GRU against torch.nn.GRU with weights imported by `from_torch`: outputs and final states
within 1e-5, gradients within 1e-4 (float32), with padding and bidirectional; plus the LSTM
API it shares (resets, mixed precision, state fed back). Torch cases skip without torch."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lstm_jax.gru import GRU, GRUState

CASES = {
    "1 layer": dict(num_layers=1),
    "bidirectional 2 layers": dict(num_layers=2, bidirectional=True),
    "no bias": dict(num_layers=1, bias=False),
}


def _torch_case(kwargs, seed=0):
    torch = pytest.importorskip("torch")
    torch.manual_seed(seed)
    t = torch.nn.GRU(5, 8, batch_first=True, **kwargs)
    with torch.no_grad():  # torch's biases are uniform too; make them clearly non-zero
        for name, p in t.named_parameters():
            if "bias" in name:
                p.add_(0.3 * torch.randn_like(p))
    return torch, t, torch.randn(4, 6, 5, requires_grad=True)


@pytest.mark.parametrize("kwargs", CASES.values(), ids=CASES.keys())
def test_outputs_states_and_gradients_match_torch(kwargs):
    from lstm_jax.torch_import import from_torch

    torch, t, x = _torch_case(kwargs)
    out, h = t(x)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    (out * weights).sum().add(h.sum()).backward()
    module, variables = from_torch(t)
    assert isinstance(module, GRU)
    xs = jnp.asarray(x.detach().numpy())

    def loss(params, xs):
        o, state = module.apply({"params": params}, xs)
        return jnp.sum(o * jnp.asarray(weights.numpy())) + sum(jnp.sum(s.h) for s in state), (o, state)

    (_, (ours, state)), (g_params, g_x) = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(
        variables["params"], xs
    )
    np.testing.assert_allclose(ours, out.detach().numpy(), atol=1e-5)
    for k, s in enumerate(state):
        np.testing.assert_allclose(s.h, h[k].detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(g_x, x.grad.numpy(), atol=1e-4)
    for name, g in g_params.items():
        suffix = "_reverse" if name.endswith("_reverse") else ""
        tname = f"l{name.split('_')[1]}{suffix}"
        for ours_name, theirs in [("kernel_ih", "weight_ih"), ("kernel_hh", "weight_hh")]:
            np.testing.assert_allclose(g[ours_name], getattr(t, f"{theirs}_{tname}").grad.numpy().T, atol=1e-4)
        for b in ("bias_ih", "bias_hh"):
            if b in g:
                np.testing.assert_allclose(g[b], getattr(t, f"{b}_{tname}").grad.numpy(), atol=1e-4)


def test_padded_batch_matches_pack_padded_sequence():
    from lstm_jax.torch_import import from_torch

    torch, t, x = _torch_case(CASES["bidirectional 2 layers"])
    lengths = torch.tensor([6, 2, 4, 1])
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out_packed, h = t(packed)
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(out_packed, batch_first=True, total_length=6)
    module, variables = from_torch(t)
    ours, state = module.apply(variables, jnp.asarray(x.detach().numpy()), lengths=jnp.asarray(lengths.numpy()))
    np.testing.assert_allclose(ours, out.detach().numpy(), atol=1e-5)
    for k, s in enumerate(state):
        np.testing.assert_allclose(s.h, h[k].detach().numpy(), atol=1e-5)


def test_gru_resets_state_and_mixed_precision():
    x = jax.random.normal(jax.random.key(0), (2, 7, 3))
    gru = GRU(6, bidirectional=True)
    params = gru.init(jax.random.key(1), x)
    reset = jnp.zeros((2, 7), bool).at[:, 4].set(True)
    out, _ = gru.apply(params, x, reset=reset)
    pieces = [gru.apply(params, x[:, :4])[0], gru.apply(params, x[:, 4:])[0]]
    np.testing.assert_allclose(out, jnp.concatenate(pieces, 1), atol=1e-6)  # x W_ih of another T: rounding
    out16, state16 = gru.clone(dtype="bfloat16").apply(params, x)
    assert out16.dtype == jnp.bfloat16 and isinstance(state16[0], GRUState)
    np.testing.assert_allclose(out16.astype(jnp.float32), gru.apply(params, x)[0], atol=2e-2)
    _, state = gru.apply(params, x)
    out2, _ = gru.apply(params, x, state)  # a returned state is a valid initial state
    assert out2.shape == (2, 7, 12)


def test_gru_rejects_what_it_does_not_have():
    x = jnp.zeros((1, 2, 3))
    with pytest.raises(ValueError, match="proj_size: a GRU has no projection"):
        GRU(4, proj_size=2).init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="layer_norm: not available on the GRU"):
        GRU(4, layer_norm=True).init(jax.random.key(0), x)
