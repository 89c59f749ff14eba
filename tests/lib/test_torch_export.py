"""`to_torch`: lstm_jax -> torch.nn.LSTM / nn.GRU with the same outputs (1e-5), and the round
trip torch -> lstm_jax -> torch giving identical weights and outputs. Skipped without torch."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lstm_jax import LSTM  # noqa: E402
from lstm_jax.errors import ArgumentError  # noqa: E402
from lstm_jax.nn import GRU  # noqa: E402
from lstm_jax.io import from_torch, to_torch  # noqa: E402

X = np.random.default_rng(0).standard_normal((3, 7, 5)).astype(np.float32)
MODULES = {
    "lstm bidirectional 2 layers": LSTM(8, num_layers=2, bidirectional=True),
    "lstm proj no bias": LSTM(8, proj_size=3, use_bias=False),
    "gru bidirectional": GRU(8, bidirectional=True),
}


@pytest.mark.parametrize("module", MODULES.values(), ids=MODULES.keys())
def test_to_torch_gives_the_same_outputs(module):
    variables = module.init(jax.random.key(0), X)
    variables = jax.tree.map(lambda a: a + 0.1 * jax.random.normal(jax.random.key(1), a.shape), variables)
    ours, state = module.apply(variables, X)
    t = to_torch(module, variables)
    assert not t.training
    with torch.no_grad():
        out, h = t(torch.from_numpy(X))
    h = h[0] if isinstance(h, tuple) else h
    np.testing.assert_allclose(out.numpy(), ours, atol=1e-5)
    for k, s in enumerate(state):
        np.testing.assert_allclose(h[k].numpy(), s.h, atol=1e-5)


@pytest.mark.parametrize("cls", [torch.nn.LSTM, torch.nn.GRU])
def test_round_trip_torch_to_jax_to_torch_is_identical(cls):
    torch.manual_seed(0)
    t = cls(5, 6, num_layers=2, bidirectional=True, batch_first=True)
    back = to_torch(*from_torch(t))
    with torch.no_grad():
        want, _ = t.eval()(torch.from_numpy(X))
        got, _ = back(torch.from_numpy(X))
    if cls is torch.nn.GRU:  # every weight comes back as it was: bitwise the same outputs
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    else:  # the LSTM's two biases come back summed into bias_ih: one rounding apart
        np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-6)
    for name, p in t.named_parameters():
        if not name.startswith("bias"):
            np.testing.assert_array_equal(getattr(back, name).detach().numpy(), p.detach().numpy())


def test_options_torch_lacks_are_clear_errors():
    for module in (LSTM(4, learn_initial_state=True), LSTM(4, layer_norm=True), LSTM(4, zoneout=0.1)):
        variables = module.init(jax.random.key(0), jnp.zeros((1, 2, 3)))
        with pytest.raises(ArgumentError, match="torch.nn has no equivalent"):
            to_torch(module, variables)
