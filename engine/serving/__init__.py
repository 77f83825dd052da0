"""Serving helpers: where model weights and persona adapters are, the served-model-name rule,
and the ``vllm serve`` arguments derived from the installed personas."""
