"""The seed systems' architectures and the baselines, selectable for ``emomon train``/``eval`` and
``bench/compare.py``. Importing this package registers them with :mod:`emomon.models.registry`."""

from emomon.models.registry import register

_RESEARCH = {
    "complementary": "emomon.training.architectures.complementary:ComplementaryFusion",
    "merhan": "emomon.training.architectures.merhan:MERHAN",
    "hff": "emomon.training.architectures.hff:HFF",
    "text_bilstm": "emomon.training.architectures.baselines:TextBiLSTM",
    "speech_cnn": "emomon.training.architectures.baselines:SpeechCNN",
    "avg_ensemble": "emomon.training.architectures.baselines:AverageEnsemble",
    "weighted_ensemble": "emomon.training.architectures.baselines:WeightedEnsemble",
    "bcma": "emomon.training.architectures.baselines:BCMA",
    "kohmt": "emomon.training.architectures.baselines:KoHMT",
}
for _arch, _target in _RESEARCH.items():
    register(_arch, _target)
