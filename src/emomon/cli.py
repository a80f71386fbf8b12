"""Command line: a thin layer over :mod:`emomon.models` and :mod:`emomon.monitor`.

Every user-fixable problem is an :class:`~emomon.errors.EmomonError`, printed as one ``emomon: error: ...`` line with
the exit code documented in :mod:`emomon.errors`; the traceback of anything else is kept (it is a bug).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import threading
import time
from pathlib import Path

from emomon import __version__
from emomon.errors import ConfigError, EmomonError, as_resource_error

logger = logging.getLogger("emomon")


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S") if verbosity > 0 else logging.Formatter("%(message)s"))
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
    # Quiet the libraries' own chatter (hub warnings, load reports) unless debugging.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if verbosity <= 0:
        import warnings

        warnings.filterwarnings("ignore", category=UserWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)


# ---------------------------------------------------------------------------------------------------- train / eval
#: ``emomon.training.resume.RESUME_FILE``, named here so that checking ``--out`` imports no torch (a test keeps the two equal).
_RESUME_FILE = "resume.pt"


def _check_training_output(out: Path, *, overwrite: bool, resume: bool = False) -> None:
    """Before any import of torch, feature extraction or epoch: the checkpoint folder can be written, and a trained
    checkpoint there is replaced only when asked (training can take hours; losing one, or learning of a bad path at
    the end, is costly). An interrupted training there is continued only when asked (``--resume``)."""
    from emomon.errors import ConfigError, OutputError
    from emomon.files import check_output_folder

    check_output_folder(out, what="the checkpoint to", create=True)  # a file, a dangling link, an unwritable folder
    interrupted = (out / _RESUME_FILE).is_file()
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite: choose one (continue the interrupted training, or start again)")
    if resume and not interrupted:
        raise OutputError(f"nothing to resume in {out}: no interrupted training there ({_RESUME_FILE} is written after "
                          "each epoch and removed when a training ends)")
    if interrupted and not (resume or overwrite):
        raise OutputError(f"{out} holds an interrupted training; --resume to continue it, or --overwrite to start again")
    if os.path.lexists(out / "config.json") and not (overwrite or resume):
        raise OutputError(f"{out} already holds a checkpoint; choose another --out, or --overwrite to replace it")


def cmd_train(args: argparse.Namespace) -> int:
    import dataclasses

    from emomon.config import load_config

    cfg = load_config(args.config, member=args.member)
    if args.data_root:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, root=args.data_root))
    if args.epochs:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, max_epochs=args.epochs))
    out = Path(_output_arg(args.out, "--out") or f"runs/{cfg.name}")
    _check_training_output(out, overwrite=args.overwrite, resume=args.resume)
    from emomon.training.features import FeatureStore  # torch and the training code: only once --out is known good
    from emomon.training.loop import train

    try:
        result = train(cfg, out, store=FeatureStore(Path(args.cache)) if args.cache else None, device=args.device, resume=args.resume)
    except KeyboardInterrupt:
        from emomon.training.resume import RESUME_FILE

        if (out / RESUME_FILE).is_file():
            member = f" --member {args.member}" if args.member is not None else ""
            print(f"emomon: training interrupted; `emomon train {args.config}{member} --out {out} --resume` continues it after "
                  "its last finished epoch", file=sys.stderr)
        raise
    if result.soup_epochs:
        print(f"soup of epochs {', '.join(map(str, result.soup_epochs))}: validation accuracy {result.best_val:.4f}")
    elif cfg.train.keep == "last":
        val = "no validation data" if result.best_val is None else f"validation accuracy {result.best_val:.4f}"
        print(f"last epoch {result.best_epoch} kept: {val}")
    else:
        print(f"best epoch {result.best_epoch}: validation accuracy {result.best_val:.4f}")
    for source, modes in result.test.items():
        for mode, ev in modes.items():
            f = ev["fused"]
            print(f"test {source:<12} {mode:<12} acc {f['accuracy']:.3f}  wF1 {f['weighted_f1']:.3f}  UAR {f['uar']:.3f}  (n={f['n']})")
    print(f"checkpoint: {result.checkpoint}")
    return 0


def _parse_speakers(spec: str | None) -> tuple[str, ...]:
    """'19-24' or '19,20,Ses05F' -> ('19', '20', ...)."""
    if not spec:
        return ()
    out: list[str] = []
    for part in spec.split(","):
        part = part.strip()
        if "-" in part and all(p.isdigit() for p in part.split("-", 1)):
            lo, hi = map(int, part.split("-", 1))
            out += [str(i) for i in range(lo, hi + 1)]
        elif part:
            out.append(part)
    return tuple(out)


def cmd_eval(args: argparse.Namespace) -> int:
    from emomon.files import check_output_path

    if args.corpus and not args.path:
        raise ConfigError("--corpus needs --path (the corpus folder)")
    if args.speakers and not args.corpus:
        raise ConfigError("--speakers goes with --corpus")
    json_path = _output_arg(args.json, "--json")
    if json_path is not None:  # before torch, the checkpoint and the evaluation (hours): a bad path costs nothing
        check_output_path(json_path, overwrite=args.overwrite, what="the metrics JSON")
    from emomon.config import SourceConfig, load_config
    from emomon.models.checkpoint import load_checkpoint
    from emomon.training.evaluation import MODES, evaluate_checkpoint
    from emomon.training.features import FeatureStore

    sources = None
    split = args.split or "test"
    if args.manifest:
        sources = (SourceConfig(corpus="manifest", path=str(Path(args.manifest).resolve()), text=args.text or "transcript"),)
        split = args.split or "all"
    elif args.corpus:
        speakers = _parse_speakers(args.speakers)
        sources = (SourceConfig(corpus=args.corpus, path=str(Path(args.path).resolve()), text=args.text or "transcript", test_speakers=speakers),)
        split = args.split or ("test" if speakers else "all")
    elif args.config:
        sources = load_config(args.config).data.sources
    ckpt = load_checkpoint(args.checkpoint)
    modes = tuple(args.mode) if args.mode else MODES
    report = evaluate_checkpoint(ckpt, sources, split, modes, store=FeatureStore(Path(args.cache)) if args.cache else None)
    print(report.render(confusion=not args.no_confusion))
    if json_path is not None:
        from emomon.files import write_output

        write_output(json_path, (json.dumps(report.as_dict(), indent=1) + "\n").encode(), overwrite=args.overwrite,
                     what="write the metrics JSON")
    return 0


def _output_arg(arg: str | None, flag: str) -> Path | None:
    """An output path option: None when not given; an empty or blank path is a mistake, not "no output"."""
    if arg is None:
        return None
    if not arg.strip():
        raise ConfigError(f"{flag}: empty path; give a file or folder name")
    return Path(arg)


# ---------------------------------------------------------------------------------------------------- monitor
def _runtime_config(args: argparse.Namespace):
    import dataclasses

    from emomon.config import load_config

    cfg = load_config(args.config)
    rt = cfg.runtime
    if args.model:
        rt = dataclasses.replace(rt, model=args.model)
    if args.device:
        rt = dataclasses.replace(rt, device=args.device)
    cfg = dataclasses.replace(cfg, runtime=rt)
    if args.diarize:
        cfg = dataclasses.replace(cfg, diarization=dataclasses.replace(cfg.diarization, enabled=True))
    return cfg


def _check_session_outputs(args: argparse.Namespace) -> None:
    """The session CSV (and ``--save-audio``'s folder), checked before torch is even imported; ``run_monitor`` checks
    them again (it is also a library entry), then creates them only once the models have loaded."""
    from emomon.monitor.sinks import check_session_outputs, default_csv_path

    csv = _csv_path(args.csv)
    check_session_outputs(csv or default_csv_path(), create_folder=csv is None, save_audio=args.save_audio)


def cmd_replay(args: argparse.Namespace) -> int:
    # Every check on arguments, settings, inputs and outputs comes before the runtime (and torch) is imported.
    from emomon.audio.decode import check_audio_file

    if args.as_live and args.best:
        raise ConfigError("--as-live and --best ask for two different readings; give one")
    from emomon.records import parse_speaker_names

    speakers = parse_speaker_names(args.speaker or [])
    files = [Path(f) for f in args.files]
    if not files and not args.sample:
        raise ConfigError("give a recording to replay (or --sample for the bundled one)")
    for f in files:
        check_audio_file(f)
    cfg = _runtime_config(args)
    _check_session_outputs(args)
    from emomon.monitor.app import MonitorOptions, run_monitor, sample_recording

    if args.sample:
        files.insert(0, sample_recording())
    opts = MonitorOptions(files=files, realtime=args.realtime, split_channels=args.split_channels,
                          speakers=speakers, csv=_csv_path(args.csv),
                          printer=not args.quiet_lines, save_audio=args.save_audio, dashboard=args.dashboard,
                          audio_stream=args.audio_stream)
    if args.as_live:
        cfg = dataclasses.replace(cfg, replay=dataclasses.replace(cfg.replay, baseline="running", tta_speeds=()))
    elif args.best:
        cfg = dataclasses.replace(cfg, replay=dataclasses.replace(cfg.replay, tta_speeds=cfg.replay.best_speeds))
    return run_monitor(cfg, opts, live=False)


def _csv_path(arg: str | None) -> Path | None:
    """``--csv``: None (not given) means the default name; an empty or blank path is a mistake, not the default."""
    if arg is None:
        return None
    if not arg.strip():
        raise ConfigError("--csv: empty path; give a file name, or leave --csv out for sessions/<date>_<time>.csv")
    return Path(arg)


def cmd_live(args: argparse.Namespace) -> int:
    if args.duration is not None and not args.duration > 0:
        raise ConfigError(f"--duration: must be a positive number of seconds, got {args.duration:g}")
    from emomon.records import parse_speaker_names

    speakers = parse_speaker_names(args.speaker or [])
    cfg = _runtime_config(args)
    _check_session_outputs(args)
    from emomon.monitor.app import MonitorOptions, run_monitor

    opts = MonitorOptions(devices=list(args.input or []), speakers=speakers,
                          csv=_csv_path(args.csv), printer=not args.quiet_lines, duration=args.duration,
                          save_audio=args.save_audio, dashboard=sys.stdout.isatty() and not args.no_dashboard)
    return run_monitor(cfg, opts, live=True)


def cmd_devices(args: argparse.Namespace) -> int:
    from emomon.monitor.sources import list_input_devices

    devices = list_input_devices()
    if not devices:
        print("no audio input devices found")
        return 0
    for d in devices:
        mark = "*" if d["default"] else " "
        print(f"{mark}{d['index']:>3}  {d['name']}  ({d['channels']} ch, {d['samplerate']:.0f} Hz, {d['hostapi']})")
    return 0


def _add_monitor_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="default",
                   help="runtime preset (name or .toml path) for the ASR, segmenter, runtime, replay, dashboard and diarization "
                        "settings (default: default, which names every setting)")
    p.add_argument("--model",
                   help="emotion checkpoint: shipped name (hyfuser-tiny-en) or directory (default: the preset's runtime.model)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="compute device (default auto)")
    p.add_argument("--speaker", action="append", metavar="INDEX=NAME", help="name a stream, e.g. 0=Teacher (repeatable)")
    p.add_argument("--csv", help="session CSV path (default sessions/<date>_<time>.csv)")
    p.add_argument("--quiet-lines", action="store_true", help="do not print a line per utterance")
    p.add_argument("--save-audio", action="store_true", help="also keep each utterance's audio (0600 WAVs next to the CSV); off by default")
    p.add_argument("--diarize", action="store_true", help="tell apart several voices within one input (speaker embeddings)")


def cmd_ensemble(args: argparse.Namespace) -> int:
    from emomon.errors import OutputError
    from emomon.files import check_output_folder

    if len(args.checkpoints) < 2:  # a command-line mistake, caught before any checkpoint is read
        raise ConfigError(f"emomon ensemble OUT A B [...]: give two or more checkpoints to join (got {len(args.checkpoints)})")
    out = _output_arg(args.out, "OUT")
    # before torch and any checkpoint is read: the folder can take the ensemble, and nothing there is replaced unasked
    check_output_folder(out, what="the ensemble to", create=True)
    try:
        holds = out.is_dir() and any(out.iterdir())
    except OSError as exc:
        from emomon.files import output_error

        raise output_error(out, exc, "write the ensemble to") from None
    if holds and not args.overwrite:
        if os.path.lexists(out / "config.json"):
            raise OutputError(f"{out} already holds a checkpoint; choose another folder, or --overwrite to replace it")
        raise OutputError(f"{out} is not empty; choose another folder, or --overwrite to write the ensemble into it")
    from emomon.training.saving import save_ensemble

    out = save_ensemble(out, args.checkpoints, half=args.half)
    from emomon.models.checkpoint import read_checkpoint_config

    trainings = 1 + len(read_checkpoint_config(out)[1]["ensemble"])
    print(f"ensemble of {trainings} trainings written to {out}{' (weights in float16)' if args.half else ''}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from emomon.errors import OutputError
    from emomon.files import check_output_folder, check_output_path

    csv_path, out = Path(args.csv), _output_arg(args.out, "--out")
    if csv_path.is_file():  # (a missing CSV is the input error that reading it words)
        # before the CSV is read and the figure drawn: the folder and both files can be written, none replaced unasked
        folder = check_output_folder(out if out is not None else csv_path.parent, what="the report into", create=True)
        if folder.is_dir():
            for page in (folder / f"{csv_path.stem}.html", folder / f"{csv_path.stem}.png"):
                if page.exists() and page.resolve() == csv_path.resolve():
                    raise OutputError(f"cannot write the report {page}: it is the session CSV itself; give --out another folder")
                check_output_path(page, overwrite=args.overwrite, what="the report",
                                  exists_hint="choose another --out folder, or --overwrite to replace it")
    from emomon.monitor.views.report import write_report

    html, png = write_report(csv_path, out)
    print(f"report: {html}")
    print(f"image:  {png}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from emomon.config import DEFAULT_RUNTIME_PRESET, recipe_names, runtime_preset_names
    from emomon.models.checkpoint import CHECKPOINT_ALIASES, DEFAULT_CHECKPOINT, packaged_checkpoints, read_checkpoint, shipped_name

    if args.checkpoint:
        doc = read_checkpoint(args.checkpoint)  # config.json validated against its schema; the weights are not read
        directory, cfg = doc.directory, doc.config
        name = shipped_name(args.checkpoint) if Path(args.checkpoint).resolve() != directory.resolve() else None
        if name is None:
            print(f"checkpoint {directory}")
        else:  # a shipped name (or an old one): lead with the name it has now
            old = f"; {args.checkpoint} is its old name" if args.checkpoint != name else ""
            print(f"checkpoint {name} (shipped{old}; {directory})")
        print(f"  architecture {cfg.model.arch}, classes {', '.join(cfg.classes)}")
        print(f"  encoders: text {cfg.encoders.text.name}, speech {cfg.encoders.speech.name} ({cfg.encoders.speech.model})")
        if doc.is_ensemble:  # each member's test figures were measured alone; the ensemble's come from `emomon eval`
            print(f"  ensemble of {len(doc.members)} trainings, probabilities averaged")
        print(f"  parameters {doc.parameters}, created {doc.created}")

        def figure(value: float | None) -> str:
            return "  n/a" if value is None else f"{value:.3f}"

        for i, member in enumerate(doc.members):
            who = f"member {i + 1} " if doc.is_ensemble else ""
            for t in member.test:
                print(f"  {who}test {t.source:<12} {t.mode:<12} acc {figure(t.accuracy)}  wF1 {figure(t.weighted_f1)}  UAR {figure(t.uar)}")
        return 0
    old_names = [old for old, new in CHECKPOINT_ALIASES.items() if new == DEFAULT_CHECKPOINT]
    print(f"shipped model:    {DEFAULT_CHECKPOINT}" + (f" (old name: {', '.join(old_names)})" if old_names else "")
          + "; `emomon info " + DEFAULT_CHECKPOINT + "` describes it")
    print(f"runtime presets:  {', '.join(runtime_preset_names())} "
          f"(replay and live read {DEFAULT_RUNTIME_PRESET} unless --config names another)")
    print(f"training recipes: {', '.join(recipe_names())}")
    print(f"checkpoints:      {', '.join(packaged_checkpoints())}")
    return 0


# ---------------------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="emomon", description="Streaming speech emotion monitor (text + speech fusion).")
    p.add_argument("--version", action="version", version=f"emomon {__version__}")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    t = sub.add_parser("train", help="train a model from a TOML training recipe")
    t.add_argument("config", help="training recipe name (e.g. en-tiny; `emomon info` lists them) or path to a .toml file")
    t.add_argument("--member", type=int, metavar="K",
                   help="for a recipe with [[members]] (e.g. en-tiny-refit-member): train its member K")
    t.add_argument("--out", help="checkpoint directory (default runs/<recipe name>)")
    t.add_argument("--overwrite", action="store_true", help="replace a checkpoint (or an interrupted training) already in --out")
    t.add_argument("--resume", action="store_true",
                   help="continue the interrupted training in --out after its last finished epoch (same preset and options)")
    t.add_argument("--data-root", help="folder the preset's corpora live in (default: data.root, or $EMOMON_DATA)")
    t.add_argument("--epochs", type=int, help="override train.max_epochs")
    t.add_argument("--device", choices=("auto", "cpu", "cuda"), help="override train.device")
    t.add_argument("--cache", help="feature cache folder (default ~/.cache/emomon/features or $EMOMON_CACHE)")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", help="evaluate a checkpoint (default: its own held-out test sets)")
    e.add_argument("checkpoint", help="checkpoint directory or shipped name (e.g. hyfuser-tiny-en)")
    src = e.add_mutually_exclusive_group()
    src.add_argument("--manifest", help="CSV with columns audio,text,label,speaker,split")
    src.add_argument("--corpus", help="corpus adapter: ravdess, meld, goemotions, ased, nemo, kemdy19, kemdy20, aihub, iemocap")
    src.add_argument("--config", help="evaluate on the corpora of this training recipe (name or .toml path)")
    e.add_argument("--path", help="corpus folder for --corpus")
    e.add_argument("--speakers", help="test speakers for --corpus, e.g. 19-24 (default: the whole corpus)")
    e.add_argument("--split", choices=("train", "val", "test", "all"),
                   help="split to evaluate (default: test for the checkpoint's own corpora or named --speakers, else all)")
    e.add_argument("--text", choices=("transcript", "asr", "none"), help="text source for audio (default: corpus transcript)")
    e.add_argument("--mode", action="append", choices=("paired", "text-only", "speech-only"), help="modalities (repeatable; default all)")
    e.add_argument("--json", help="also write the metrics as JSON here (a new file, user-only; checked before the evaluation)")
    e.add_argument("--overwrite", action="store_true", help="replace the --json file if it exists")
    e.add_argument("--no-confusion", action="store_true", help="omit confusion matrices")
    e.add_argument("--cache", help="feature cache folder")
    e.set_defaults(func=cmd_eval)

    r = sub.add_parser("replay", help="run the monitor on recordings, as fast as possible (or --realtime)")
    r.add_argument("files", nargs="*", help="audio/video files (anything FFmpeg decodes)")
    r.add_argument("--sample", action="store_true", help="replay the bundled sample recording")
    r.add_argument("--realtime", action="store_true", help="pace the file like a live stream")
    r.add_argument("--split-channels", action="store_true", help="each channel of a multi-channel file is a speaker")
    r.add_argument("--audio-stream", type=int, metavar="N",
                   help="read the N-th audio stream of each file, from 0 (default: the first one with sound)")
    r.add_argument("--dashboard", action="store_true", help="show the live dashboard while replaying")
    r.add_argument("--as-live", action="store_true",
                   help="read speakers as a live session does (running baseline, one speed) instead of the preset's "
                        "[replay] reading (default: a first pass for whole-recording speaker baselines)")
    r.add_argument("--best", action="store_true",
                   help="also read every utterance at the [replay] best_speeds (0.95x and 1.05x) and average: about "
                        "twice the CPU of the default reading, for a small gain (docs/MODEL_CARD.md)")
    _add_monitor_options(r)
    r.set_defaults(func=cmd_replay)

    lv = sub.add_parser("live", help="monitor microphones or loopback devices until Ctrl-C")
    lv.add_argument("--input", action="append", metavar="DEVICE", help="input device name or index (repeatable; default: system default)")
    lv.add_argument("--duration", type=float, help="stop after this many seconds")
    lv.add_argument("--no-dashboard", action="store_true", help="plain lines instead of the dashboard (default on a terminal)")
    _add_monitor_options(lv)
    lv.set_defaults(func=cmd_live)

    d = sub.add_parser("devices", help="list audio input devices")
    d.set_defaults(func=cmd_devices)

    en = sub.add_parser("ensemble", help="join trained checkpoints of one architecture and encoders into one averaging checkpoint")
    en.add_argument("out", help="directory for the ensemble checkpoint")
    en.add_argument("checkpoints", nargs="+",
                    help="two or more checkpoint directories or shipped names; an ensemble stands for its trainings")
    en.add_argument("--half", action="store_true", help="store the members' weights in float16 (half the size; loaded as float32)")
    en.add_argument("--overwrite", action="store_true", help="replace a checkpoint already in OUT (or write into a folder that is not empty)")
    en.set_defaults(func=cmd_ensemble)

    rp = sub.add_parser("report", help="an HTML page and a PNG from a session CSV")
    rp.add_argument("csv", help="session CSV written by replay/live (a cut-short one works too)")
    rp.add_argument("--out", help="folder for the report (default: next to the CSV)")
    rp.add_argument("--overwrite", action="store_true", help="replace an earlier report of the same CSV in that folder")
    rp.set_defaults(func=cmd_report)

    i = sub.add_parser("info", help="name the shipped model, list runtime presets, training recipes and shipped checkpoints, "
                                    "or describe one checkpoint")
    i.add_argument("checkpoint", nargs="?")
    i.set_defaults(func=cmd_info)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    _setup_logging(-1 if args.quiet else args.verbose)
    # Everything emomon writes (sessions, checkpoints, reports, metrics, caches) is the user's only, whatever the
    # umask: the writers set 0600/0700 themselves, and this covers any file a library makes on the way.
    umask = os.umask(0o077)
    try:
        return int(args.func(args) or 0)
    except EmomonError as exc:
        print(f"emomon: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("emomon: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `emomon ... | head`
        return 0
    except (MemoryError, RuntimeError, OSError, ImportError) as exc:
        # out of memory or threads (e.g. under `ulimit -v`) is the machine's limit, not a bug: one line, exit 7
        resource = as_resource_error(exc)
        if resource is None:
            raise
        print(f"emomon: error: {resource}", file=sys.stderr)
        return resource.exit_code
    finally:
        os.umask(umask)


#: Longest wait, after the command returned, for threads still inside a native call (CTranslate2, PyTorch).
EXIT_JOIN_SECONDS = 1.0


def run() -> None:
    """The ``emomon`` console command: :func:`main`, then an exit that cannot abort.

    A stage thread can still be inside CTranslate2 or PyTorch when the command returns (a Ctrl-C during decoding, a
    stop during the model load). Finalising the interpreter under such a thread can end in SIGABRT ("terminate called
    without an active exception") instead of the documented exit code. So the command gives the threads a bounded
    join, and when any is still running it flushes the outputs and leaves with ``os._exit``: every file emomon writes
    is already closed by then (the sinks close before :func:`main` returns)."""
    code = main()
    deadline = time.monotonic() + EXIT_JOIN_SECONDS
    busy = [t for t in threading.enumerate() if t.name.startswith("emomon-") and t.is_alive()]
    for t in busy:
        t.join(max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() for t in busy):
        logging.getLogger("emomon").debug("leaving %d busy thread(s) behind", sum(t.is_alive() for t in busy))
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    run()
