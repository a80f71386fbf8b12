"""TOML presets, loaded with emomon.models.config.load_config(name)."""
