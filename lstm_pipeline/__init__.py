"""lstm_pipeline: the DVC pipeline around the `lstm_jax` library.

The params schema (`params`), the one adapter from params to library calls (`adapter`), the
tutorial experiments (`alphabet`, `sequences`, `experiments`), the stage runner (`stage`,
`runtime`), the CI gate (`gate`), plots and the report. Installed with the `pipeline` extra
(dvc, matplotlib, pyyaml, dvclive). The arrow goes one way: this package imports `lstm_jax`,
never the other way round.
"""
