import os

# Tests run on the CPU even where an accelerator is present, so results match across machines.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
