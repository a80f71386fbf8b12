"""TOML presets, loaded with emomon.config.load_config(name)."""
