"""Make monitor/samples/sample.ogg: a short two-voice classroom exchange read by espeak-ng (Opus, 16 kHz mono).

Run from the repository root:  python scripts/make_sample.py
The transcript with the intended emotions is written next to it as sample.txt.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from emomon.training.data.synth import speak

# (speaker voice, rate, pitch, intended emotion, sentence)
LINES = [
    ("en-us+m3", 160, 45, "neutral", "Good morning everyone, let's get started with today's lesson."),
    ("en+f4", 185, 70, "happy", "I'm so excited, I finally finished my project and it works!"),
    ("en-us+m3", 165, 55, "happy", "That is wonderful news, well done, I am really proud of you."),
    ("en+f4", 170, 60, "fear", "But I'm really worried about the exam next week. I'm scared I will fail."),
    ("en-us+m3", 150, 45, "neutral", "We will go through the practice questions together on Thursday."),
    ("en+f4", 195, 75, "angry", "Someone broke my laptop and nobody even said sorry. I'm furious!"),
    ("en-us+m3", 135, 35, "sad", "I'm sorry to hear that. That is really sad."),
    ("en+f4", 165, 55, "disgust", "And the cafeteria food today was absolutely disgusting."),
    ("en-us+m3", 175, 70, "surprise", "Wow, really? I did not expect that at all!"),
    ("en+f4", 130, 40, "sad", "I miss my old friends so much. I feel lonely here."),
]
SR = 16_000


def main() -> None:
    out = Path(__file__).resolve().parent.parent / "monitor" / "samples"
    out.mkdir(parents=True, exist_ok=True)
    parts = [np.zeros(int(0.8 * SR), np.float32)]
    script = []
    t = len(parts[0]) / SR
    for voice, rate, pitch, emotion, text in LINES:
        audio = speak(text, voice=voice, rate=rate, pitch=pitch)
        script.append(f"{t:6.2f}\t{t + len(audio) / SR:6.2f}\t{'Teacher' if voice == 'en-us+m3' else 'Student'}\t{emotion}\t{text}")
        parts += [audio, np.zeros(int(0.9 * SR), np.float32)]
        t += len(audio) / SR + 0.9
    audio = np.concatenate(parts)
    pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
    with av.open(str(out / "sample.ogg"), "w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=48000)
        stream.bit_rate = 32000
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(pcm[None], format="s16", layout="mono")
        frame.sample_rate = SR
        resampler = av.AudioResampler(format="s16", layout="mono", rate=48000)
        for f in resampler.resample(frame) + resampler.resample(None):
            for packet in stream.encode(f):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    (out / "sample.txt").write_text("start\tend\tspeaker\tintended emotion\ttext\n" + "\n".join(script) + "\n")
    print(f"wrote {out / 'sample.ogg'} ({len(audio) / SR:.1f} s)")


if __name__ == "__main__":
    main()
