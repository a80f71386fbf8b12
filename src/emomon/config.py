"""Settings as frozen dataclasses, loaded from TOML presets with strict validation.

Every section of a preset maps onto one dataclass below. Loading rejects unknown keys and out-of-range values with a
:class:`~emomon.errors.ConfigError` that names the offending key (``model.layers: must be >= 1, got 0``), so a typo
never silently falls back to a default. Ranges and choices are declared next to each field in its metadata; every
number is checked by one helper, :func:`checked_number`, which also refuses NaN and infinities (for which a plain
``value < lo`` is false), bools where an integer belongs and integers past a float's range, and a document nested
deeper than :data:`MAX_NESTING` is refused before it is parsed.

Presets ship in ``emomon.configs`` (the repository's ``configs/``): runtime presets, what ``emomon replay`` and
``emomon live`` read (``default``), in ``configs/``, and training recipes, what ``emomon train`` reads (``en-tiny``), in
``configs/recipes/``. Either kind is found by name, or a TOML file by path. A recipe with ``[[members]]`` trains one
member of an ensemble at a time (``load_config(name, member=K)``).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from emomon.errors import ConfigError
from emomon.labels import EMOTIONS


def _opt(default: Any, *, lo: float | None = None, hi: float | None = None, choices: tuple | None = None, doc: str = ""):
    """A dataclass field with validation metadata (range or allowed values) and a one-line description."""
    meta = {"lo": lo, "hi": hi, "choices": choices, "doc": doc}
    if isinstance(default, (list, dict, set)):
        raise TypeError("use tuples for sequence defaults (configs are frozen)")
    return field(default=default, metadata=meta)


#: Corpora with a reader (models/data/corpora.py, seed_corpora.py): ``[[data.sources]] corpus`` and
#: ``encoders.text.tune_corpora`` name one of these.
CORPORA = ("manifest", "ravdess", "meld", "goemotions", "ased", "nemo", "kemdy19", "kemdy20", "aihub", "iemocap")


# --------------------------------------------------------------------------------------------------- encoders
@dataclass(frozen=True)
class TextEncoderConfig:
    """Text encoder: token states of a transformer (``minilm``/``mpnet`` = all-MiniLM-L6-v2/all-mpnet-base-v2 from pip
    packages, offline)."""

    name: str = _opt("minilm", doc="'minilm' or 'mpnet' (from pip packages, offline) or any transformers checkpoint name or local path")
    layer: int = _opt(-1, lo=-64, hi=64, doc="hidden layer whose token states are used (-1 = last)")
    max_tokens: int = _opt(64, lo=4, hi=1024, doc="longest token sequence kept (the tokenizer truncates)")
    tune_layers: int = _opt(
        0, lo=0, hi=64, doc="top layers fine-tuned on the preset's labelled text before features are taken (0 = frozen encoder)"
    )
    tune_epochs: int = _opt(2, lo=1, hi=100, doc="epochs of that fine-tuning (the epoch with the best validation weighted F1 is kept)")
    tune_lr: float = _opt(3e-5, lo=1e-7, hi=1.0, doc="AdamW learning rate of that fine-tuning")
    tune_schedule: str = _opt(
        "constant", choices=("constant", "linear"),
        doc="learning rate over the tuning: 'constant', or 'linear' (warm up over the first 6% of steps, then decay to 0)",
    )
    tune_epoch_size: int = _opt(0, lo=0, hi=10_000_000, doc="sentences per tuning epoch, split by source weight (0 = all once)")
    tune_corpora: tuple[str, ...] = _opt((), choices=CORPORA, doc="text-only corpora the tuning reads (empty = all of the preset's)")
    tune_seed: int = _opt(
        -1, lo=-1, hi=2**31 - 1,
        doc="random seed of that fine-tuning (-1 = train.seed); lets runs that differ in train.seed share one tuning and its cached features",
    )
    tuned_from: str = _opt(
        "", doc="take the tuned layers (and, for train.text_branch_from_tuning, the tuning's head) from this checkpoint (a "
                "shipped name or a directory) instead of tuning again, so the new training can join that checkpoint's "
                "ensemble: tuning is not bit-reproducible on CPU threads, and members must share one text encoder "
                "('' = tune)",
    )


@dataclass(frozen=True)
class SpeechEncoderConfig:
    """Speech encoder: frames of the faster-whisper encoder, a transformers speech model, or MFCC/log-mel."""

    name: str = _opt("whisper-encoder", doc="'whisper-encoder', 'mfcc', 'logmel' or a transformers checkpoint name/path")
    model: str = _opt("tiny.en", doc="faster-whisper model for 'whisper-encoder': 'tiny.en' (packaged) or a name/path")
    layers: tuple[int, ...] = _opt((-1,), lo=-64, hi=64, doc="hidden layers averaged into the frames (0 = input embedding, -1 = final)")
    n_mfcc: int = _opt(40, lo=8, hi=128, doc="coefficients for 'mfcc'")


@dataclass(frozen=True)
class EncodersConfig:
    text: TextEncoderConfig = TextEncoderConfig()
    speech: SpeechEncoderConfig = SpeechEncoderConfig()


# --------------------------------------------------------------------------------------------------- model
ARCHITECTURES = (
    "hyfuser",
    "complementary",
    "merhan",
    "hff",
    "text_bilstm",
    "speech_cnn",
    "avg_ensemble",
    "weighted_ensemble",
    "bcma",
    "kohmt",
)


@dataclass(frozen=True)
class ModelConfig:
    """Architecture and sizes. Defaults are HyFusER's Table 3."""

    arch: str = _opt("hyfuser", choices=ARCHITECTURES, doc="architecture")
    text_len: int = _opt(64, lo=1, hi=1024, doc="text positions (tokens, padded/truncated); seed: 126")
    speech_len: int = _opt(64, lo=1, hi=4096, doc="speech frames after linear-interpolation alignment; seed: = text_len")
    layers: int = _opt(3, lo=1, hi=24, doc="transformer encoder layers per modality")
    heads: int = _opt(1, lo=1, hi=32, doc="attention heads")
    ff_dim: int = _opt(768, lo=8, hi=16384, doc="feed-forward width")
    dropout: float = _opt(0.1, lo=0.0, hi=0.9, doc="dropout in encoders and cross attention")
    layer_norm_eps: float = _opt(1e-6, lo=0.0, hi=1e-2, doc="LayerNorm epsilon")
    d_model: int = _opt(0, lo=0, hi=8192, doc="model width; 0 = the encoders' feature size (must then match)")
    step_loss_weight: float = _opt(
        0.0, lo=0.0, hi=10.0, doc="weight of extra per-step cross-entropy terms (0 = seed: loss on the ensemble only)"
    )
    speaker_baseline: float = _opt(
        0.0, lo=0.0, hi=1000.0,
        doc="speaker baseline normalisation: weight (in utterances) of the population prior; 0 = off (models/speaker_baseline.py)",
    )
    branch_heads: bool = _opt(
        False, doc="add a text branch and a speech branch beside the architecture, late-fused by confidence (models/branches.py)"
    )
    min_asr_logprob: float = _opt(
        -20.0, lo=-20.0, hi=0.0,
        doc="an ASR transcript whose average token log-probability is below this reaches the model as no text (speech "
        "the ASR cannot read, e.g. a language tiny.en does not know, comes out as confident-looking English words); "
        "-20 = every transcript is read. Applies in training, evaluation and live",
    )
    # architecture-specific settings (each is ignored by the architectures that do not name it)
    moe_experts: int = _opt(5, lo=1, hi=256, doc="complementary: experts in each mixture of experts (seed: 5)")
    moe_top_k: int = _opt(
        2, lo=0, hi=256, doc="complementary: experts each example is routed to (0 or >= moe_experts = all, dense gating; seed's best: 2)"
    )
    gat_layers: int = _opt(2, lo=1, hi=8, doc="complementary: graph attention layers over the word-timestamp graph (GAT paper: 2)")
    gat_heads: int = _opt(8, lo=1, hi=32, doc="complementary: graph attention heads, concatenated (GAT paper: 8; must divide the width)")
    lstm_hidden: int = _opt(256, lo=4, hi=4096, doc="merhan, text_bilstm, ensembles: BiLSTM hidden size per direction (MER-HAN: 256)")
    lstm_layers: int = _opt(2, lo=1, hi=8, doc="merhan, text_bilstm, ensembles: stacked BiLSTM layers (MER-HAN: 2)")
    conv_kernel: int = _opt(3, lo=1, hi=31, doc="merhan (1D-CNN projection), speech_cnn, ensembles: convolution width in frames")
    mc_passes: int = _opt(
        10, lo=1, hi=256, doc="hff: MC-dropout passes of the uncertainty head at evaluation (1 = one deterministic pass)"
    )

    def reads_transcript(self, text: str | None, avg_logprob: float) -> bool:
        """Whether the model reads an ASR transcript: it has words, and the ASR was sure enough of them
        (``min_asr_logprob``). Training, evaluation and the live worker all ask this, so they agree."""
        return bool(text and text.strip()) and avg_logprob >= self.min_asr_logprob


# --------------------------------------------------------------------------------------------------- training
@dataclass(frozen=True)
class TrainConfig:
    """Optimisation. Defaults are HyFusER's Table 3 (Adam 1e-4, batch 32, <=30 epochs, patience 3 on val accuracy)."""

    lr: float = _opt(1e-4, lo=1e-7, hi=1.0, doc="Adam learning rate")
    weight_decay: float = _opt(0.0, lo=0.0, hi=1.0, doc="decoupled weight decay (0 = plain Adam as in the seed)")
    batch_size: int = _opt(32, lo=1, hi=4096, doc="mini-batch size")
    max_epochs: int = _opt(30, lo=1, hi=1000, doc="upper bound on epochs")
    patience: int = _opt(3, lo=1, hi=100, doc="early stopping: epochs without a better validation accuracy")
    epoch_size: int = _opt(0, lo=0, hi=10_000_000, doc="examples drawn per epoch (0 = one pass over the training set)")
    label_smoothing: float = _opt(0.0, lo=0.0, hi=0.5, doc="cross-entropy label smoothing")
    branch_label_mask: bool = _opt(False, doc="with model.branch_heads: each branch learns only from the examples whose own modality expresses the label (a neutral partner, a fixed-sentence corpus's text or an espeak-ng voice does not; models/dataset.py)")
    soup: int = _opt(0, lo=0, hi=100, doc="greedy weight soup (Wortsman et al. 2022) over the N best epochs by validation accuracy: their weights are averaged in that order while the average's validation accuracy does not fall, and the soup replaces the best epoch when it is at least as good (0 = keep the best epoch, as the seed)")
    keep: str = _opt("best", choices=("best", "last"),
                     doc="'best': keep the epoch (or soup) with the best validation accuracy, stopping early after "
                         "train.patience epochs without one (the seed); 'last': train exactly max_epochs and keep the "
                         "last, without early stopping and without needing validation data, for a final refit on "
                         "training + validation speakers with an epoch count chosen earlier on validation")
    average_epochs: tuple[int, ...] = _opt(
        (), lo=1, hi=1000,
        doc="with train.keep = 'last': keep the mean of these epochs' weights instead of the last epoch's (a soup "
            "fixed in advance, e.g. the epochs a validated run's train.soup kept, for its refit without validation)")
    seed: int = _opt(0, lo=0, hi=2**31 - 1, doc="random seed")
    device: str = _opt("auto", choices=("auto", "cpu", "cuda"), doc="'auto' picks CUDA when present")
    init_from: str = _opt("", doc="start from this checkpoint's weights (a shipped name or a directory) instead of random ones: "
                                  "every tensor whose name and shape match is copied (fine-tuning); '' = from scratch")
    text_branch_from_tuning: bool = _opt(
        False, doc="with model.branch_heads and encoders.text.tune_layers: the text branch is the text tuning's own head "
                   "(trained on the tuning corpora alone, chosen on their validation split), carried into the scaled space "
                   "and kept frozen, so joint training on the mixed corpora cannot dilute it (models/text_tuning.py)")


# --------------------------------------------------------------------------------------------------- data
@dataclass(frozen=True)
class SourceConfig:
    """One corpus to train or evaluate on. A relative ``path`` starts from ``data.root``."""

    corpus: str = _opt("manifest", choices=CORPORA, doc="corpus adapter")
    path: str = _opt("", doc="corpus root (or the manifest CSV)")
    text: str = _opt(
        "transcript",
        choices=("transcript", "asr", "none"),
        doc="where an audio clip's text comes from: the corpus transcript, the ASR model's transcript, or nothing",
    )
    test_speakers: tuple[str, ...] = _opt((), doc="speakers held out for testing (never trained on or selected on)")
    val_speakers: tuple[str, ...] = _opt((), doc="speakers used for validation / early stopping")
    test_fraction: float = _opt(0.0, lo=0.0, hi=0.9, doc="without named speakers: share of speakers held out for test")
    val_fraction: float = _opt(0.0, lo=0.0, hi=0.9, doc="without named speakers: share of speakers used for validation")
    text_labelled: bool = _opt(True, doc="the items' own text expresses their label (false for corpora that read the same sentences in every emotion, e.g. RAVDESS, nEMO): with train.branch_label_mask the text branch does not learn from it")
    weight: float = _opt(1.0, lo=0.0, hi=1000.0, doc="relative share of training examples drawn from this source")
    augment: bool = _opt(True, doc="add augmented copies of this source's audio (see data.augment_copies)")
    max_items: int = _opt(0, lo=0, hi=10_000_000, doc="use at most this many items per split (0 = all)")
    required: bool = _opt(True, doc="a missing corpus is an error (false: skip it with a warning)")


@dataclass(frozen=True)
class DataConfig:
    """Training data and the recipe that pairs unpaired corpora (see the README's model card)."""

    root: str = _opt("../shared/data", doc="folder the sources' relative paths start from (relative to the current directory; $EMOMON_DATA overrides it)")
    sources: tuple[SourceConfig, ...] = _opt((), doc="corpora, each a [[data.sources]] table")
    augment_copies: int = _opt(2, lo=0, hi=32, doc="augmented copies of each training clip (noise, gain, speed, reverb)")
    synth_sentences: int = _opt(0, lo=0, hi=1_000_000, doc="training sentences of each text-only corpus read by espeak-ng as flat-voice speech")
    p_text_drop: float = _opt(0.15, lo=0.0, hi=1.0, doc="modality dropout: chance that a paired example loses its text")
    p_speech_drop: float = _opt(0.1, lo=0.0, hi=1.0, doc="modality dropout: chance that an example loses its speech")
    p_label_pair: float = _opt(0.2, lo=0.0, hi=1.0, doc="chance that an unpaired example is paired by label instead of with a neutral partner")
    cut_like_monitor: bool = _opt(False, doc="cut every corpus clip with the monitor's own segmenter (webrtcvad, "
                                             "pre-roll, tail) before encoding, so training sees speech as the monitor hands it over")


# --------------------------------------------------------------------------------------------------- ASR
@dataclass(frozen=True)
class AsrConfig:
    """faster-whisper transcription settings."""

    model: str = _opt("tiny.en", doc="faster-whisper model: 'tiny.en' (packaged) or a model name/path")
    language: str = _opt("en", doc="language code, or 'auto' to detect (multilingual models only)")
    beam_size: int = _opt(1, lo=1, hi=16, doc="beam size (1 = greedy)")
    compute_type: str = _opt("int8", doc="CTranslate2 compute type on CPU (CUDA uses float16)")
    no_speech_threshold: float = _opt(0.6, lo=0.0, hi=1.0, doc="drop text when no-speech probability is above this ...")
    log_prob_threshold: float = _opt(-1.0, lo=-20.0, hi=0.0, doc="... and the average log-probability is below this")
    compression_ratio_threshold: float = _opt(2.4, lo=1.0, hi=100.0, doc="drop repetitive text above this gzip ratio")
    word_timestamps: bool = _opt(True, doc="align words to audio (cross-attention DTW)")


# --------------------------------------------------------------------------------------------------- runtime
@dataclass(frozen=True)
class SegmenterConfig:
    """Voice activity segmentation (webrtcvad) of each input stream into utterances."""

    frame_ms: int = _opt(30, choices=(10, 20, 30), doc="VAD frame length (webrtcvad accepts 10, 20 or 30 ms)")
    aggressiveness: int = _opt(2, lo=0, hi=3, doc="webrtcvad aggressiveness: 0 keeps the most audio as speech, 3 the least")
    start_ms: int = _opt(150, lo=10, hi=2000, doc="voiced audio needed within the start window to open an utterance")
    start_window_ms: int = _opt(240, lo=10, hi=3000, doc="window in which start_ms of voiced frames opens an utterance")
    pre_roll_ms: int = _opt(300, lo=0, hi=2000, doc="audio kept before the start (for the ASR; not in the start time)")
    hangover_ms: int = _opt(300, lo=30, hi=5000, doc="silence that closes an utterance")
    tail_ms: int = _opt(150, lo=0, hi=2000, doc="audio kept after the last voiced frame (for the ASR)")
    min_utterance_ms: int = _opt(300, lo=0, hi=10000, doc="shorter voiced stretches are dropped (clicks, coughs)")
    max_utterance_s: float = _opt(15.0, lo=1.0, hi=29.0, doc="longer speech is cut, at the quietest point near the end")
    cut_search_s: float = _opt(3.0, lo=0.1, hi=10.0, doc="how far back from max_utterance_s to look for a quiet cut point")


@dataclass(frozen=True)
class RuntimeConfig:
    """The streaming monitor: model, batching and queues."""

    model: str = _opt("hyfuser-tiny-en", doc="checkpoint: a shipped name (its old name en-tiny loads it too) or a directory")
    device: str = _opt("auto", choices=("auto", "cpu", "cuda"), doc="'auto' picks CUDA when present")
    batch_size: int = _opt(8, lo=1, hi=256, doc="inference worker: most utterances per micro-batch")
    batch_wait_ms: int = _opt(10, lo=0, hi=2000, doc="inference worker: longest wait to fill a micro-batch")
    queue_seconds: float = _opt(30.0, lo=1.0, hi=3600.0, doc="live: audio buffered per input before the oldest is dropped")
    max_pending_utterances: int = _opt(64, lo=1, hi=10000, doc="live: utterances waiting for ASR before the oldest is dropped")
    chunk_ms: int = _opt(30, lo=10, hi=2000, doc="audio block size from devices and real-time replays (fast replays read 0.5 s)")
    threads: int = _opt(0, lo=0, hi=256, doc="cores the session computes on (0 = all available): PyTorch (the inference worker) gets half, CTranslate2 (the ASR decoder) the rest")


@dataclass(frozen=True)
class ReplayConfig:
    """How a full-speed replay reads each speaker: it has the whole recording, which a live session has not.
    (``--realtime`` replays and live sessions always read as live: running baseline, one speed.)"""

    baseline: str = _opt("session", choices=("session", "running"),
                         doc="'session': a first pass reads every utterance, and each speaker is judged against the mean "
                             "of all their utterances; 'running': as live, against those heard so far")
    tta_speeds: tuple[float, ...] = _opt((), lo=0.5, hi=2.0,
                                         doc="extra speeds every utterance is also read at, distributions averaged "
                                             "(one speech-encoder pass each, in both passes; [] = none)")
    best_speeds: tuple[float, ...] = _opt((0.95, 1.05), lo=0.5, hi=2.0,
                                          doc="emomon replay --best: the extra speeds read and averaged in place of tta_speeds "
                                              "(one speech-encoder pass and one model pass more per speed)")
    keep_mb: float = _opt(128.0, lo=0.0, hi=65536.0,
                          doc="memory the first pass may fill with its encodings for the second pass, which then encodes "
                              "those utterances no more (past it, they are encoded again)")
    batch_wait_ms: int = _opt(1000, lo=0, hi=60000,
                              doc="inference worker: longest wait to fill a micro-batch in a full-speed replay (nobody "
                                  "waits for a row there, and a fuller batch costs less per utterance)")
    recordings_at_once: int = _opt(0, lo=0, hi=64,
                                   doc="batch replay: recordings one reader (the driver, a Ray actor) reads at once, their "
                                       "utterances sharing its device's micro-batches (0 = 1 on the CPU, 4 on a GPU)")


@dataclass(frozen=True)
class DashboardConfig:
    """The Rich live view and the affect readings it shows."""

    refresh_hz: float = _opt(4.0, lo=0.5, hi=30.0, doc="screen refreshes per second (fixed rate, never per frame)")
    timeline_minutes: float = _opt(5.0, lo=0.5, hi=120.0, doc="length of each speaker's rolling timeline")
    transcript_lines: int = _opt(30, lo=0, hi=200, doc="most lines of transcript tail shown (fewer when the screen is short)")
    unsure_below: float = _opt(0.5, lo=0.0, hi=1.0,
                               doc="a reading whose confidence (its top class probability) is below this is unsure: "
                                   "the dashboard draws it dim with a '?' (the report uses the same key)")
    va_window_s: float = _opt(30.0, lo=1.0, hi=3600.0, doc="valence/arousal smoothing window (session seconds)")
    alert_threshold: float = _opt(0.6, lo=0.0, hi=1.0,
                                  doc="the negative-affect alert ([alerts]): smoothed negative-affect share that counts as high")
    alert_seconds: float = _opt(60.0, lo=0.0, hi=36000.0,
                                doc="the negative-affect alert: how long it must stay high before the alert starts")


#: The kinds of alert (:mod:`emomon.monitor.views.alerts`), as the CSV's alert rows and ``[alerts] kinds`` name them.
ALERT_KINDS = ("negative-affect", "rising-arousal", "silence", "falling-valence")


@dataclass(frozen=True)
class AlertsConfig:
    """Alerts about one speaker that last (:mod:`emomon.monitor.views.alerts`): the dashboard shows them while they
    last, the session CSV keeps each one as an alert row once it has ended, and ``emomon report`` lists and marks them.
    Readings are per speaker, on session time (utterance ends), smoothed over ``[dashboard] va_window_s`` (what the
    dashboard shows); the sustained negative-affect alert's settings are ``[dashboard] alert_threshold`` and
    ``alert_seconds``."""

    kinds: tuple[str, ...] = _opt(ALERT_KINDS, choices=ALERT_KINDS, doc="the alerts that are on ([] = none)")
    rise: float = _opt(0.4, lo=0.01, hi=2.0,
                       doc="rising-arousal (escalation): smoothed arousal (-1..1) up by more than this from its lowest "
                           "point of the last rise_minutes; it ends when arousal is back below that point + rise/2")
    rise_minutes: float = _opt(2.0, lo=0.05, hi=120.0, doc="rising-arousal: the time the rise must happen within")
    silence_seconds: float = _opt(60.0, lo=1.0, hi=36000.0,
                                  doc="silence: a speaker who was talking says nothing for this long while the session "
                                      "goes on (another speaker's utterance, or the session's end, shows it)")
    silence_after: int = _opt(3, lo=1, hi=100000,
                              doc="silence: utterances a speaker must have said (since the start, or since their last "
                                  "silence) to count as talking")
    falling_drop: float = _opt(0.4, lo=0.05, hi=2.0,
                               doc="falling-valence: the least-squares line through the speaker's utterance valences "
                                   "(-1..1) falls by at least this from their first utterance to their latest (a slope "
                                   "times the time spanned); it ends when the fall is under half of this, and the trend "
                                   "starts again from there")
    falling_min_utterances: int = _opt(8, lo=3, hi=100000,
                                       doc="falling-valence: utterances the trend needs before it can count")
    falling_min_minutes: float = _opt(2.0, lo=0.0, hi=1440.0,
                                      doc="falling-valence: session minutes the trend's utterances must span")


@dataclass(frozen=True)
class DiarizationConfig:
    """Online speaker diarization within one input (speaker embeddings + incremental clustering)."""

    enabled: bool = _opt(False, doc="split one input's voices into speakers (per input device/channel otherwise)")
    threshold: float = _opt(0.75, lo=0.0, hi=1.0, doc="cosine similarity to a speaker's centroid needed to join it")
    max_speakers: int = _opt(8, lo=1, hi=64, doc="most speakers per input; beyond it, utterances join the nearest")
    min_seconds: float = _opt(0.8, lo=0.0, hi=30.0, doc="shorter utterances join the nearest speaker without updating it")


# --------------------------------------------------------------------------------------------------- whole preset
@dataclass(frozen=True)
class EmomonConfig:
    name: str = _opt("custom", doc="preset name")
    description: str = _opt("", doc="one line on what the preset is for")
    classes: tuple[str, ...] = _opt(EMOTIONS, doc="class names, in output order")
    encoders: EncodersConfig = EncodersConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    data: DataConfig = DataConfig()
    asr: AsrConfig = AsrConfig()
    segmenter: SegmenterConfig = SegmenterConfig()
    runtime: RuntimeConfig = RuntimeConfig()
    replay: ReplayConfig = ReplayConfig()
    dashboard: DashboardConfig = DashboardConfig()
    alerts: AlertsConfig = AlertsConfig()
    diarization: DiarizationConfig = DiarizationConfig()
    base_dir: str = _opt("", doc="(set by the loader) directory relative paths in the preset are resolved against")

    def resolve_path(self, p: str) -> Path:
        """A path from the preset: absolute, else relative to the preset file's folder (packaged presets: the
        current directory)."""
        path = Path(p).expanduser()
        if not path.is_absolute() and self.base_dir:
            path = Path(self.base_dir) / path
        return path

    def data_root(self) -> Path:
        """``$EMOMON_DATA``, else ``data.root`` (a relative root starts from the current directory, so a preset
        reads the same data whether it is loaded by name or by path)."""
        env = os.environ.get("EMOMON_DATA")
        return Path(env or self.data.root).expanduser()

    def source_path(self, source: "SourceConfig") -> Path:
        path = Path(source.path).expanduser()
        return path if path.is_absolute() else self.data_root() / path


# --------------------------------------------------------------------------------------------------- loading
#: The deepest nesting of arrays and tables a preset, or a checkpoint's config.json, may have. Real ones nest a few
#: levels (a checkpoint's metrics about a dozen); a document nested deeper is refused before it is parsed, since the
#: TOML and JSON parsers (and the code that walks what they return) recurse once per level.
MAX_NESTING = 64

# What nesting_depth skips: strings and comments, matched whole so that the brackets and dots inside them do not count.
_TOML_STRINGS_AND_COMMENTS = re.compile(
    r'"""(?:[^\\]|\\[\s\S])*?"""'  # multi-line basic string
    r"|'''[\s\S]*?'''"  # multi-line literal string
    r'|"(?:[^"\\\n]|\\.)*"'  # basic string
    r"|'[^'\n]*'"  # literal string
    r"|#[^\n]*"  # comment
)
_JSON_STRINGS = re.compile(r'"(?:[^"\\]|\\[\s\S])*"')
_BRACKETS = re.compile(r"[\[\]{}]")
#: A dotted key of more than MAX_NESTING parts (``a.b.c``; a string left by the scan is one part), searched from the
#: start of a word only, and without backtracking into a part, so that the search stays linear.
_LONG_DOTTED_KEY = re.compile(r"(?<![\w+-])(?:[\w+-]++\s*+\.\s*+){%d}[\w+-]" % MAX_NESTING)


def nesting_depth(text: str, syntax: str = "toml") -> int:
    """The deepest nesting of a TOML (``syntax="toml"``) or JSON (``"json"``) text, found without parsing it (regular
    expressions and a loop over the brackets: linear time, no recursion), strings and comments left out: the deepest
    bracket/brace nesting, and for TOML a dotted key (``a.b.c = 1``, ``[a.b.c]``) longer than :data:`MAX_NESTING`
    parts counts as one level deeper than that. For a malformed text it is at least what a parser would nest before
    it gives up, so checking it first keeps the parser from recursing deep (or, for tomllib's dotted keys, from
    using memory quadratic in their length)."""
    if syntax == "toml":
        skeleton = _TOML_STRINGS_AND_COMMENTS.sub(lambda m: "" if m.group().startswith("#") else "q", text)
        if _LONG_DOTTED_KEY.search(skeleton):
            return MAX_NESTING + 1
    else:
        skeleton = _JSON_STRINGS.sub("", text)
    depth = deepest = 0
    for m in _BRACKETS.finditer(skeleton):
        if m.group() in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
        else:
            depth = max(depth - 1, 0)
    return deepest


def value_depth(value: Any, limit: int = MAX_NESTING) -> int:
    """The nesting depth of a parsed document (dicts and lists; a scalar is 0), walked without recursion, and given up
    past ``limit`` (the result is then ``limit + 1``). TOML's dotted keys (``a.b.c = 1``) and table headers
    (``[a.b.c]``) nest tables with few or no brackets, so the text's :func:`nesting_depth` does not bound this."""
    deepest = 0
    stack = [(value, 0)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, dict):
            children = v.values()
        elif isinstance(v, list):
            children = v
        else:
            continue
        depth += 1
        if depth > deepest:
            deepest = depth
            if deepest > limit:
                break
        stack.extend((c, depth) for c in children)
    return deepest


def shown(value: Any, limit: int = 60) -> str:
    """``repr(value)`` for a one-line message: a huge integer is described, not written out (Python refuses to
    write an int of more than 4300 digits, and nobody reads one), and a long text is cut short."""
    try:
        text = repr(value)
    except ValueError:  # an int past sys.get_int_max_str_digits()
        return f"an integer of about {value.bit_length() * 0.30103:.0f} digits"
    except RecursionError:  # a list or table nested past the interpreter's stack (not from a file: those are scanned)
        return f"a {type(value).__name__} nested too deep to show"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def shown_key(name: Any) -> str:
    """A key as typed, or its repr when it holds a line break or another character that would not read as one line."""
    return name if isinstance(name, str) and name and name.isprintable() and len(name) <= 60 else shown(name)


def checked_number(value: Any, key: str, *, lo: float | None = None, hi: float | None = None, integer: bool = False,
                   error: typing.Callable[[str], Exception] = ConfigError) -> int | float:
    """``value`` as the number a setting (or a checkpoint field) holds, or ``error("<key>: <problem>")``.

    ``integer``: an ``int`` (a bool is not one here, and neither is ``2.0``); otherwise a ``float`` (an integer is
    taken as one; -0.0 as 0.0). Either way it must be finite and within ``lo``..``hi``. Each bound is checked as
    ``not value >= lo``, so NaN, for which every comparison is false, fails it instead of slipping through."""
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        raise error(f"{key}: expected {'an integer' if integer else 'a number'}, got {shown(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise error(f"{key}: must be a finite number, got {value!r}")
    if lo is not None and not value >= lo:
        raise error(f"{key}: must be >= {lo}, got {shown(value)}")
    if hi is not None and not value <= hi:
        raise error(f"{key}: must be <= {hi}, got {shown(value)}")
    if integer:
        return value
    try:
        number = float(value)
    except OverflowError:  # an int past float's range, with no bound to stop it above
        raise error(f"{key}: {shown(value)} is out of range") from None
    return 0.0 if number == 0 else number


def checked_text(value: Any, key: str, *, error: typing.Callable[[str], Exception] = ConfigError) -> str:
    """``value`` as a text setting, or ``error``: a string with no NUL character (no path, name or word holds one,
    and the OS refuses it in a path) and no lone surrogate (JSON can spell one, UTF-8 cannot: it could be neither
    printed nor written)."""
    if not isinstance(value, str):
        raise error(f"{key}: expected a string, got {shown(value)}")
    if "\x00" in value:
        raise error(f"{key}: must not contain a NUL character, got {shown(value)}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise error(f"{key}: is not valid Unicode text (it holds a lone surrogate), got {shown(value)}") from None
    return value


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str, meta: typing.Mapping[str, Any]) -> Any:
    """Check one TOML value against a dataclass field's type and its ``meta`` (range and choices; for a list, of each
    item); return it converted (lists -> tuples, integers in float settings -> floats)."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table, got {type(value).__name__}")
        return _build(tp, value, key)
    if origin is tuple:
        (item_tp, _ellipsis) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__}")
        return tuple(_coerce(v, item_tp, f"{key}[{i}]", meta) for i, v in enumerate(value))
    if origin in (typing.Union, types.UnionType):
        for alt in typing.get_args(tp):
            try:
                return _coerce(value, alt, key, meta)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: unexpected value {shown(value)}")
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {shown(value)}")
    elif tp is int or tp is float:
        value = checked_number(value, key, lo=meta.get("lo"), hi=meta.get("hi"), integer=tp is int)
    elif tp is str:
        value = checked_text(value, key)
    else:  # pragma: no cover - programming error
        raise ConfigError(f"{key}: unsupported setting type {_type_name(tp)}")
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(f"{key}: must be one of {', '.join(map(str, choices))}; got {shown(value)}")
    return value


def _build(cls: type, data: dict, prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields), key=str)
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(
            f"unknown setting {where}{shown_key(unknown[0])}; known keys here: {', '.join(sorted(k for k in fields if k != 'base_dir'))}"
        )
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        tp = hints[name]
        if name == "sources":  # tuple of tables
            if not isinstance(value, list):
                raise ConfigError(f"{key}: expected [[{key}]] tables")
            for i, v in enumerate(value):
                if not isinstance(v, dict):
                    raise ConfigError(f"{key}[{i}]: expected a table (corpus = ..., path = ...), got {shown(v)}")
            kwargs[name] = tuple(_build(SourceConfig, v, f"{key}[{i}]") for i, v in enumerate(value))
            continue
        kwargs[name] = _coerce(value, tp, key, fields[name].metadata)
    return cls(**kwargs)


def _validate(cfg: EmomonConfig) -> None:
    if len(cfg.classes) < 2:
        raise ConfigError("classes: need at least two classes")
    unknown = [c for c in cfg.classes if c not in EMOTIONS]
    if unknown:
        raise ConfigError(f"classes: {unknown[0]!r} is not one of {', '.join(EMOTIONS)}")
    if len(set(cfg.classes)) != len(cfg.classes):
        raise ConfigError("classes: names must be unique")
    m = cfg.model
    if m.d_model and m.d_model % m.heads:
        raise ConfigError(f"model.d_model: {m.d_model} is not divisible by model.heads = {m.heads}")
    if not cfg.encoders.speech.layers:
        raise ConfigError("encoders.speech.layers: name at least one layer")
    if cfg.train.text_branch_from_tuning and not (m.branch_heads and cfg.encoders.text.tune_layers):
        raise ConfigError("train.text_branch_from_tuning: needs model.branch_heads = true and encoders.text.tune_layers > 0")
    if cfg.encoders.text.tuned_from and not cfg.encoders.text.tune_layers:
        raise ConfigError("encoders.text.tuned_from: needs encoders.text.tune_layers > 0 (a frozen encoder has no tuned layers to take)")
    if cfg.train.keep == "last" and cfg.train.soup > 1:
        raise ConfigError("train.soup: a soup is chosen on validation, so it needs train.keep = \"best\"")
    if cfg.train.average_epochs:
        epochs = cfg.train.average_epochs
        if cfg.train.keep != "last":
            raise ConfigError("train.average_epochs: a fixed soup is for train.keep = \"last\" (with \"best\", use train.soup)")
        if len(epochs) < 2 or len(set(epochs)) != len(epochs) or max(epochs) > cfg.train.max_epochs:
            raise ConfigError(f"train.average_epochs: {list(epochs)} must be two or more distinct epochs within 1..train.max_epochs "
                              f"({cfg.train.max_epochs})")


def config_from_dict(data: dict, *, base_dir: str = "") -> EmomonConfig:
    """Build and validate a config from a parsed TOML document (or a checkpoint's ``config`` table)."""
    if not isinstance(data, dict):
        raise ConfigError(f"expected a table of settings, got {shown(data)}")
    cfg = _build(EmomonConfig, dict(data), "")
    cfg = dataclasses.replace(cfg, base_dir=base_dir)
    _validate(cfg)
    return cfg


#: Where packaged presets live inside ``emomon.configs``: runtime presets at its top, training recipes in this folder.
RECIPES_FOLDER = "recipes"
#: The runtime preset ``emomon replay`` and ``emomon live`` read unless ``--config`` names another.
DEFAULT_RUNTIME_PRESET = "default"


def _names_in(folder) -> list[str]:
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml")) if folder.is_dir() else []


def runtime_preset_names() -> list[str]:
    """Packaged runtime presets (``configs/*.toml``): the segmenter, ASR, runtime, replay, dashboard and diarization
    settings of ``emomon replay`` and ``emomon live``."""
    return _names_in(resources.files("emomon.configs"))


def recipe_names() -> list[str]:
    """Packaged training recipes (``configs/recipes/*.toml``): what ``emomon train`` reads."""
    return _names_in(resources.files("emomon.configs").joinpath(RECIPES_FOLDER))


def preset_names() -> list[str]:
    """Every packaged name, runtime presets and training recipes together."""
    return sorted(runtime_preset_names() + recipe_names())


def _packaged_preset(name: str):
    """The packaged file of a preset name (runtime presets first, then recipes), or None."""
    root = resources.files("emomon.configs")
    found = [f for f in (root.joinpath(f"{name}.toml"), root.joinpath(RECIPES_FOLDER, f"{name}.toml")) if f.is_file()]
    if len(found) > 1:  # a packaging mistake: the name would mean two things
        raise ConfigError(f"preset {name!r} is both a runtime preset (configs/) and a training recipe (configs/recipes/)")
    return found[0] if found else None


def load_config(name_or_path: str | Path, *, member: int | None = None) -> EmomonConfig:
    """Load a preset by name (``default``, ``en-tiny``) or a TOML file by path; every problem is a one-line ConfigError.

    A document may start from a preset with ``extends = "en-tiny"``: its tables are merged over the preset's, key by
    key; any other value (numbers, strings, lists, the ``[[data.sources]]`` list) replaces the preset's.

    A recipe with ``[[members]]`` (one table per training of an ensemble: ``member`` = K, ``seed``, optionally
    ``tuned_from``) is loaded for one member: ``member`` = K sets ``train.seed`` and ``encoders.text.tuned_from`` from
    member K's table and replaces ``{member}`` in the recipe's strings with K (its name, a stage's ``train.init_from``).
    """
    data, base_dir = _read_document(name_or_path, ())
    data = _select_member(data, member, str(name_or_path))
    return config_from_dict(data, base_dir=base_dir)


#: The keys of a ``[[members]]`` table besides ``member``, and the setting each one sets.
MEMBER_KEYS = {"seed": ("train", "seed"), "tuned_from": ("encoders", "text", "tuned_from")}


def _select_member(data: dict, member: int | None, label: str) -> dict:
    """``data`` (a resolved document) for ``member``: its ``[[members]]`` table applied and ``{member}`` filled in."""
    members = data.pop("members", None)
    if members is None:
        if member is not None:
            raise ConfigError(f"--member {member}: {label} has no [[members]]; it is a single training")
        return data
    if not isinstance(members, list) or not members or not all(isinstance(m, dict) for m in members):
        raise ConfigError("members: expected [[members]] tables (member = K, seed = ...)")
    by_number: dict[int, dict] = {}
    for i, entry in enumerate(members):
        unknown = sorted(set(entry) - {"member", *MEMBER_KEYS})
        if unknown:
            raise ConfigError(f"unknown setting members[{i}].{unknown[0]}; known keys here: member, {', '.join(MEMBER_KEYS)}")
        k = entry.get("member")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f"members[{i}].member: expected the member's number (1, 2, ...), got {k!r}")
        if k in by_number:
            raise ConfigError(f"members[{i}].member: member {k} is listed twice")
        by_number[k] = entry
    numbers = ", ".join(map(str, sorted(by_number)))
    if "{member}" not in str(data.get("name", "")):
        raise ConfigError(f"name: a recipe with [[members]] puts {{member}} in its name, so each member's run has its own "
                          f"(got {data.get('name')!r})")
    if member is None:
        raise ConfigError(f"{label} trains one member of an ensemble: choose it with --member K (K = {numbers})")
    if member not in by_number:
        raise ConfigError(f"--member {member}: {label} has members {numbers}")
    overlay: dict = {}
    for key, (*tables, last) in MEMBER_KEYS.items():
        if key in by_number[member]:
            node = overlay
            for table in tables:
                node = node.setdefault(table, {})
            node[last] = by_number[member][key]
    return _merge_tables(_fill_member(data, str(member)), overlay)


def _fill_member(value: Any, member: str) -> Any:
    if isinstance(value, str):
        return value.replace("{member}", member)
    if isinstance(value, dict):
        return {k: _fill_member(v, member) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill_member(v, member) for v in value]
    return value


def _read_document(name_or_path: str | Path, chain: tuple[str, ...]) -> tuple[dict, str]:
    """The parsed TOML of a preset or file with its ``extends`` resolved, and the directory paths are relative to."""
    text_path = Path(name_or_path).expanduser()
    if text_path.suffix == ".toml" or text_path.exists() or "/" in str(name_or_path):
        if text_path.is_dir():
            raise ConfigError(f"config {text_path} is a folder; give a .toml file or a preset name")
        if not text_path.is_file():
            raise ConfigError(f"config file not found: {text_path}")
        try:
            raw = text_path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read config {text_path}: {exc.strerror or exc}") from None
        base_dir = str(text_path.resolve().parent)
        label = str(text_path)
    else:
        res = _packaged_preset(str(name_or_path))
        if res is None:
            raise ConfigError(f"unknown preset {str(name_or_path)!r}; presets: {', '.join(preset_names())} (or give a .toml path)")
        raw = res.read_bytes()
        base_dir = ""
        label = f"preset {name_or_path}"
    data = parse_toml(raw, label)
    parent = data.pop("extends", None)
    if parent is None:
        return data, base_dir
    if not isinstance(parent, str) or not parent or "/" in parent or parent.endswith(".toml"):
        raise ConfigError(f"extends: expected the name of a preset ({', '.join(preset_names())}), got {parent!r}")
    if parent in chain:
        raise ConfigError(f"extends: preset {parent!r} extends itself ({' -> '.join((*chain, parent))})")
    if _packaged_preset(parent) is None:
        raise ConfigError(f"{label}: extends = {parent!r} is not a preset; presets: {', '.join(preset_names())}")
    base, _ = _read_document(parent, (*chain, parent))
    return _merge_tables(base, data), base_dir


def parse_toml(raw: bytes, label: str) -> dict:
    """A TOML document, or a one-line ConfigError: not UTF-8, not TOML (an integer past 4300 digits included), or
    nested deeper than :data:`MAX_NESTING` (checked on the text before parsing, as tomllib recurses once per level,
    and on the result, which dotted keys can nest without brackets)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{label} is not valid TOML: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    too_deep = f"{label} is not a usable preset: arrays or tables nested more than {MAX_NESTING} deep"
    if nesting_depth(text, "toml") > MAX_NESTING:
        raise ConfigError(too_deep)
    try:
        data = tomllib.loads(text)
    except RecursionError:  # the scan above bounds the parser's recursion; this is its second line
        raise ConfigError(too_deep) from None
    except ValueError as exc:  # TOMLDecodeError, or int()'s refusal of a number of more than 4300 digits
        raise ConfigError(f"{label} is not valid TOML: {' '.join(str(exc).split())}") from None
    if value_depth(data, MAX_NESTING + 1) > MAX_NESTING + 1:  # the document's own table is a level, with no bracket
        raise ConfigError(too_deep)
    return data


def _merge_tables(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge_tables(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def config_to_dict(cfg: Any) -> dict:
    """Plain dict of a config (tuples as lists), e.g. for a checkpoint's JSON."""
    out = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if dataclasses.is_dataclass(v):
            v = config_to_dict(v)
        elif isinstance(v, tuple):
            v = [config_to_dict(x) if dataclasses.is_dataclass(x) else x for x in v]
        out[f.name] = v
    return out
