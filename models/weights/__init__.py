"""Shipped checkpoints, one directory each (config.json + model.safetensors)."""
