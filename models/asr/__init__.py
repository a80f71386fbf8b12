"""Speech recognition that shares its encoder with the emotion model.

:mod:`~emomon.models.asr.encoder` runs Whisper's encoder in PyTorch from the faster-whisper weights and keeps every
hidden layer; :mod:`~emomon.models.asr.decoder` decodes text and word times with CTranslate2 from the final layer.
"""
