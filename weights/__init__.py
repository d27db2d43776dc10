"""Bundled checkpoints (``<name>/config.json`` + ``model.safetensors`` + ``MODEL_CARD.md``).

Installed as the package data ``lowlight_cli.weights``; see ``lowlight_cli.hub.bundled_weights_dir``.
"""
