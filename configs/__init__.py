"""TOML presets, loaded with emomon.config.load_config(name): runtime presets here (what `emomon replay` and
`emomon live` read: default.toml), training recipes in recipes/ (what `emomon train` reads)."""
