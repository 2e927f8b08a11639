"""The engine tier on Ray Serve: deployments built from the registry's engines (`serve.app`), their
config (`serve/config.yaml`) and `python -m engines serve` (`serve.cli`). Imports `engines/` only."""
