"""``python -m lowlight_cli`` (also what ``torchrun -m lowlight_cli`` runs)."""

from .cli.entry import main

main()
