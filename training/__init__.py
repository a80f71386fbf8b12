"""Training and evaluation: corpora, the pairing dataset, the feature cache, the training loop, text tuning,
ensemble saving and the seed research architectures. The runtime (``emomon.monitor``) never imports it."""

# Registers the research architectures, so that every training, evaluation and benchmark can build them.
from emomon.training import architectures  # noqa: E402,F401
