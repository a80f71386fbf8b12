"""The audio layer: decoding files (PyAV), cutting speech into utterances (webrtcvad) and changing speed.

It loads no model and imports neither torch nor any ``emomon.models`` module, so the runtime's sources and
training's corpus readers can both use it cheaply (``tests/test_layers.py`` checks this).
"""
