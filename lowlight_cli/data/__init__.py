"""Datasets: paired / unpaired / LOL layout / synthetic, transforms and labeled splits."""
