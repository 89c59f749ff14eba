"""GRU against torch.nn.GRU with weights imported by `from_torch`: outputs and final states
within 1e-5, gradients within 1e-4 (float32, on the default fused path), with padding and
bidirectional; the fused path (hand-written backward) against autodiff of the scan, in float64
to 1e-10 and under bfloat16; plus the LSTM API it shares (resets, mixed precision, state fed
back). Torch cases skip without torch."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lstm_jax.nn import GRU, GRUState
from lstm_jax.nn._gru import gru_recurrence

CASES = {
    "1 layer": dict(num_layers=1),
    "bidirectional 2 layers": dict(num_layers=2, bidirectional=True),
    "no bias": dict(num_layers=1, bias=False),
}


def _numpy_case(layer, dtype, shape=(4, 9, 3), seed=0):
    """x float[shape] and random params for `layer`, made with numpy (eager jax ops would each
    be compiled: seconds of the test's time)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape).astype(dtype)
    shapes = jax.eval_shape(layer.init, jax.random.key(0), x)
    return x, jax.tree.map(lambda s: (0.5 * rng.normal(size=s.shape)).astype(dtype), shapes)


# Padding on the left (row 1), in the middle (row 2) and on the right (row 3).
MASK = np.ones((4, 9), bool)
MASK[1, :3] = MASK[2, 4:6] = MASK[3, 7:] = False
RESET = np.zeros((4, 9), bool)
RESET[0, 5] = RESET[2, 3] = RESET[1, 0] = True


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
    from lstm_jax.io import from_torch

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
    from lstm_jax.io import from_torch

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
    gru = GRU(6, bidirectional=True)
    x, params = _numpy_case(gru, np.float32, shape=(2, 7, 3))
    reset = np.zeros((2, 7), bool)
    reset[:, 4] = True

    @jax.jit  # one compilation for all the calls
    def run(params, x):
        out, state = gru.apply(params, x)
        pieces = jnp.concatenate([gru.apply(params, x[:, :4])[0], gru.apply(params, x[:, 4:])[0]], 1)
        out2, _ = gru.apply(params, x, state)  # a returned state is a valid initial state
        return out, gru.apply(params, x, reset=reset)[0], pieces, gru.clone(dtype="bfloat16").apply(params, x), out2

    out, out_reset, pieces, (out16, state16), out2 = run(params, x)
    np.testing.assert_allclose(out_reset, pieces, atol=1e-6)  # x W_ih of another T: rounding
    assert out16.dtype == jnp.bfloat16 and isinstance(state16[0], GRUState)
    np.testing.assert_allclose(out16.astype(jnp.float32), out, atol=2e-2)
    assert out2.shape == (2, 7, 12)


def test_gru_rejects_what_it_does_not_have():
    x = jnp.zeros((1, 2, 3))
    with pytest.raises(ValueError, match="proj_size: a GRU has no projection"):
        GRU(4, proj_size=2).init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="layer_norm: not available on the GRU"):
        GRU(4, layer_norm=True).init(jax.random.key(0), x)


def _fused_and_scan(layer, params, x, loss_of):
    """value_and_grad of `loss_of(module, params, x) -> (loss, aux)` for params and x, on the
    fused path (with layer's batch_groups) and on the scan path, both in one compiled function."""

    def run(impl, params, x):
        module = layer.clone(implementation=impl, batch_groups=layer.batch_groups if impl == "fused" else 1)
        return jax.value_and_grad(lambda p, x: loss_of(module, p, x), argnums=(0, 1), has_aux=True)(params, x)

    return jax.jit(lambda params, x: (run("fused", params, x), run("scan", params, x)))(params, x)


def test_fused_matches_autodiff_of_the_scan_in_float64():
    """Bidirectional, masks, resets, recurrent dropout (the same keep mask on both paths: the
    same 'dropout' key) and two batch groups; NaN inputs at masked steps reach nothing."""
    with jax.enable_x64(True):
        layer = GRU(5, bidirectional=True, recurrent_dropout=0.3, batch_groups=2, unroll=1)
        x, params = _numpy_case(layer, np.float64)
        x[~MASK] = np.nan
        weights = np.random.default_rng(1).normal(size=(4, 9, 10))

        def loss_of(module, p, x):
            kw = dict(mask=MASK, reset=RESET, deterministic=False, rngs={"dropout": jax.random.key(2)})
            out, state = module.apply(p, x, **kw)
            return jnp.sum(out * weights) + sum(jnp.sum(s.h**3) for s in state), out

        fused, scan = _fused_and_scan(layer, params, x, loss_of)
        assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(fused))
        for got, want in zip(jax.tree.leaves(fused), jax.tree.leaves(scan)):
            assert got.dtype == np.float64
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", [None, "bfloat16"])
def test_fused_matches_the_scan_in_float32_and_bfloat16(dtype):
    """Masks and resets, forward in float32: within 2e-5 (rounding); in reverse under mixed
    precision (bfloat16 matmuls and h, float32 gates): outputs and gradients within 1% of their
    largest value (measured: outputs equal, gradients 0.4%; the scan rounds the cotangent of h
    to bfloat16 at every step, the fused path keeps it in float32)."""
    layer = GRU(8, reverse=dtype is not None, unroll=1, dtype=dtype)
    x, params = _numpy_case(layer, np.float32)

    def loss_of(module, p, x):
        out, state = module.apply(p, x, mask=MASK, reset=RESET)
        loss = jnp.sum(jnp.sin(out.astype(jnp.float32))) + sum(jnp.sum(s.h.astype(jnp.float32) ** 2) for s in state)
        return loss, out

    fused, scan = _fused_and_scan(layer, params, x, loss_of)
    for got, want in zip(jax.tree.leaves(fused), jax.tree.leaves(scan)):
        assert got.dtype == want.dtype
        got, want = np.asarray(got, np.float32), np.asarray(want, np.float32)
        if dtype is None:
            np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)
        else:
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-2 * np.max(np.abs(want)))


def test_bad_implementation_and_batch_groups_are_clear_errors():
    x, kernel_ih, kernel_hh, state = np.zeros((3, 4, 5)), np.zeros((5, 6)), np.zeros((2, 6)), GRUState(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="implementation: expected one of"):
        gru_recurrence(x, kernel_ih, kernel_hh, None, None, state, implementation="cudnn")
    with pytest.raises(ValueError, match="batch_groups: expected a divisor of the batch size 4, found 3"):
        gru_recurrence(x, kernel_ih, kernel_hh, None, None, state, batch_groups=3)


def test_gru_char_model_generates_with_carried_state_and_round_trips(tmp_path):
    """CharLM(cell="gru"): greedy generation, which carries the GRU state one token at a time,
    equals rerunning the whole prefix at every step; the checkpoint rebuilds the GRU model."""
    from lstm_jax import CharLM, Vocabulary, load_checkpoint, save_checkpoint
    from lstm_jax.training._generate import generate_batch
    from lstm_jax.training import init_params

    vocab = Vocabulary.from_text("abcdef ")
    model = CharLM(vocab_size=len(vocab), embed_dim=4, hidden_size=8, cell="gru")
    params = init_params(model, jax.random.key(3))
    assert isinstance(model.initial_state(2)[0], GRUState)
    (text,) = generate_batch(model, params, vocab, ["abc"], 6)
    apply = jax.jit(lambda ids: model.apply({"params": params}, ids)[0][0, -1])
    prefix = vocab.encode("abc").tolist()
    for _ in range(6):
        prefix.append(int(jnp.argmax(apply(np.asarray([prefix], np.int32)))))
    assert vocab.decode(prefix[3:]) == text
    save_checkpoint(tmp_path / "gru", model=model, params=params, vocab=vocab)
    ckpt = load_checkpoint(tmp_path / "gru")
    assert ckpt.model == model and generate_batch(ckpt.model, ckpt.params, vocab, ["abc"], 6) == [text]
