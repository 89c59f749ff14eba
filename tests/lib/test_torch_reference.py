"""lstm_jax against torch.nn.LSTM with weights imported by `from_torch`.

Outputs and final states within 1e-5, gradients within 1e-4 (float32), for the default "fused"
path and for "native" (which runs "fused", with a warning, where its kernels are not built;
tests/lib/test_native.py fails then if a compiler is there). Skipped without torch;
`make test` installs it (the `bench` extra), so CI runs these.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lstm_jax import from_torch  # noqa: E402

CASES = {
    "1 layer": dict(num_layers=1),
    "2 layers": dict(num_layers=2),
    "bidirectional 2 layers": dict(num_layers=2, bidirectional=True),
    "proj_size bidirectional": dict(num_layers=2, bidirectional=True, proj_size=3),
    "no bias": dict(num_layers=1, bias=False),
}


def make(kwargs, seed=0):
    torch.manual_seed(seed)
    t = torch.nn.LSTM(5, 8, batch_first=True, **kwargs)
    x = torch.randn(4, 6, 5, requires_grad=True)
    return t, x


def torch_states(h, c, k):
    return h[k].detach().numpy(), c[k].detach().numpy()


@pytest.mark.parametrize("implementation", ["fused", "native"])
@pytest.mark.parametrize("kwargs", CASES.values(), ids=CASES.keys())
def test_outputs_and_final_states_match(kwargs, implementation):
    t, x = make(kwargs)
    out, (h, c) = t(x)
    module, variables = from_torch(t)
    module = module.clone(implementation=implementation)
    ours, state = module.apply(variables, jnp.asarray(x.detach().numpy()))
    np.testing.assert_allclose(ours, out.detach().numpy(), atol=1e-5)
    assert len(state) == h.shape[0]
    for k, s in enumerate(state):
        th, tc = torch_states(h, c, k)
        np.testing.assert_allclose(s.h, th, atol=1e-5)
        np.testing.assert_allclose(s.c, tc, atol=1e-5)


@pytest.mark.parametrize("implementation", ["fused", "native"])
@pytest.mark.parametrize("kwargs", CASES.values(), ids=CASES.keys())
def test_gradients_match(kwargs, implementation):
    t, x = make(kwargs)
    out, (h, c) = t(x)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    (out * weights).sum().add(h.sum()).backward()

    module, variables = from_torch(t)
    module = module.clone(implementation=implementation)

    def loss(params, xs):
        o, state = module.apply({"params": params}, xs)
        return jnp.sum(o * jnp.asarray(weights.numpy())) + sum(jnp.sum(s.h) for s in state)

    g_params, g_x = jax.grad(loss, argnums=(0, 1))(variables["params"], jnp.asarray(x.detach().numpy()))
    np.testing.assert_allclose(g_x, x.grad.numpy(), atol=1e-4)
    for name, g in g_params.items():
        layer, suffix = name.split("_")[1], "_reverse" if name.endswith("_reverse") else ""
        tname = f"l{layer}{suffix}"
        np.testing.assert_allclose(g["kernel_ih"], getattr(t, f"weight_ih_{tname}").grad.numpy().T, atol=1e-4)
        np.testing.assert_allclose(g["kernel_hh"], getattr(t, f"weight_hh_{tname}").grad.numpy().T, atol=1e-4)
        if "bias" in g:
            np.testing.assert_allclose(g["bias"], getattr(t, f"bias_ih_{tname}").grad.numpy(), atol=1e-4)
        if "kernel_proj" in g:
            np.testing.assert_allclose(g["kernel_proj"], getattr(t, f"weight_hr_{tname}").grad.numpy().T, atol=1e-4)


@pytest.mark.parametrize("kwargs", [CASES["2 layers"], CASES["bidirectional 2 layers"]], ids=["2 layers", "bidir"])
def test_padded_batch_matches_pack_padded_sequence(kwargs):
    t, x = make(kwargs)
    lengths = torch.tensor([6, 2, 4, 1])
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out_packed, (h, c) = t(packed)
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(out_packed, batch_first=True, total_length=6)
    module, variables = from_torch(t)
    ours, state = module.apply(variables, jnp.asarray(x.detach().numpy()), lengths=jnp.asarray(lengths.numpy()))
    np.testing.assert_allclose(ours, out.detach().numpy(), atol=1e-5)
    for k, s in enumerate(state):
        th, tc = torch_states(h, c, k)
        np.testing.assert_allclose(s.h, th, atol=1e-5)
        np.testing.assert_allclose(s.c, tc, atol=1e-5)


def test_initial_state_is_used_like_torch():
    t, x = make(CASES["bidirectional 2 layers"])
    h0, c0 = torch.randn(4, 4, 8), torch.randn(4, 4, 8)
    out, _ = t(x, (h0, c0))
    module, variables = from_torch(t)
    from lstm_jax import LSTMState

    init = tuple(LSTMState(jnp.asarray(c0[k].numpy()), jnp.asarray(h0[k].numpy())) for k in range(4))
    ours, _ = module.apply(variables, jnp.asarray(x.detach().numpy()), init)
    np.testing.assert_allclose(ours, out.detach().numpy(), atol=1e-5)


def test_module_from_torch_has_the_same_parameter_shapes_as_a_fresh_one():
    t, x = make(CASES["proj_size bidirectional"])
    module, variables = from_torch(t)
    fresh = module.init(jax.random.key(0), jnp.zeros((1, 2, 5)))
    assert jax.tree.map(np.shape, fresh) == jax.tree.map(np.shape, variables)
