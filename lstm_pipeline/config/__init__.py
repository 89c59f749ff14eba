"""params.yaml: reading it as DVC does (`yamlfile`), its schema (`params`, `schema`, `tasks`,
`texts`) and the resource bounds checked before anything is allocated (`resources`). Every stage
imports it through `load_params`, so dvc.yaml lists this folder once per stage, not its files."""
