"""The streaming runtime: sources, segmenter, ASR, inference worker, sinks."""
