"""Issue 16 probe: the benchmark's whole train step (embedding, LSTM layer, Dense, Adam) with the
layer's recurrence swapped for the native FFI kernel, beside lstm_jax's fused path and torch.

    python full_step.py native|fused|torch CONFIG    (CONFIG: a, b or c of benchmarks/speed_models.py)

"native" replaces `lstm_jax.lstm.fused_lstm` in this process only (the probe kernel has no masks,
reverse, dropout, resets, zoneout or mixed precision, so it refuses calls that need them). Run by
build_and_run.sh after the layer probe; each implementation in its own process.
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import speed_models as sm  # noqa: E402


def native_fused_lstm(
    x, kernel_ih, kernel_hh, bias, c0, h0, mask, h_keep, reverse, groups, unroll, reset, dtype, zoneout
):
    from ffi_layer import native_lstm_state

    unsupported = {"mask": mask, "h_keep": h_keep, "reset": reset, "dtype": dtype, "zoneout": zoneout}
    if reverse or groups != 1 or any(v is not None for v in unsupported.values()):
        raise NotImplementedError("the probe kernel runs plain forward float32 layers only")
    return native_lstm_state(x, kernel_ih, kernel_hh, bias, h0, c0)


def main() -> None:
    which, name = sys.argv[1], sys.argv[2]
    cfg = sm.CONFIGS[name]
    if which == "torch":
        step = sm.torch_step(cfg)
    else:
        if which == "native":
            from lstm_jax import lstm

            lstm.fused_lstm = native_fused_lstm
        step = sm.jax_step(cfg, sm.lstm_jax_rnn(cfg))
        step.compile()
    steps = 8 if name == "b" else 32
    median, low = sm.median_time(step.run, steps, warmup=2)
    print(f"{which} config ({name}) train step: median {median * 1e3:.1f} ms (min {low * 1e3:.1f})")


if __name__ == "__main__":
    main()
