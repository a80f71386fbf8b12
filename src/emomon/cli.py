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
    _check_corpora(cfg, "--data-root or $EMOMON_DATA names the folder the recipe's corpora live in")
    if cfg.train.init_from and not args.resume:  # the checkpoint to start from: its config.json, still without torch
        from emomon.errors import ModelError
        from emomon.models.shipped import read_checkpoint

        try:
            read_checkpoint(cfg.train.init_from)
        except ModelError as exc:
            raise ModelError(f"train.init_from: {exc} (train its recipe first)") from None
    from emomon.training.features import FeatureStore  # torch and the training code: only once --out is known good
    from emomon.training.loop import train

    try:
        result = train(cfg, out, store=FeatureStore(Path(args.cache)) if args.cache else None, device=args.compute, resume=args.resume)
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


#: The corpora's names as their readers (``emomon.training.data``) spell them in errors.
_CORPUS_NAMES = {"ravdess": "RAVDESS", "meld": "MELD", "goemotions": "GoEmotions", "ased": "ASED", "nemo": "nEMO",
                 "kemdy19": "KEMDy19", "kemdy20": "KEMDy20", "aihub": "AI-Hub", "iemocap": "IEMOCAP"}


def _check_corpora(cfg, hint: str) -> None:
    """Before torch and any feature extraction: every required corpus the preset names is where it says (a folder; a
    manifest, a file). The corpus readers check each one's layout when they read it."""
    from emomon.errors import InputError

    for src in cfg.data.sources:
        path = cfg.source_path(src)
        if src.required and not (path.is_file() if src.corpus == "manifest" else path.is_dir()):
            kind = "manifest" if src.corpus == "manifest" else f"{_CORPUS_NAMES.get(src.corpus, src.corpus)} corpus"
            raise InputError(f"{kind} not found at {path} ({hint})")


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
    from emomon.models.shipped import read_checkpoint

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
    # the checkpoint's config.json and the data it is to read, before torch (a missing one costs nothing)
    preset = read_checkpoint(args.checkpoint).config
    if sources is not None:
        preset = dataclasses.replace(preset, data=dataclasses.replace(preset.data, sources=tuple(sources)))
    _check_corpora(preset, "check --manifest" if args.manifest else "check --path" if args.corpus else
                   "$EMOMON_DATA names the folder the corpora live in")
    from emomon.models.checkpoint import load_checkpoint
    from emomon.training.evaluation import MODES, evaluate_checkpoint
    from emomon.training.features import FeatureStore

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
    if args.compute:
        rt = dataclasses.replace(rt, device=args.compute)
    cfg = dataclasses.replace(cfg, runtime=rt)
    if args.diarize:
        cfg = dataclasses.replace(cfg, diarization=dataclasses.replace(cfg.diarization, enabled=True))
    from emomon.models.shipped import read_checkpoint  # config.json only, no torch: a bad --model costs nothing

    read_checkpoint(cfg.runtime.model)
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
    start_time = _start_time(args.start_time)
    files = [Path(f) for f in args.files]
    if args.ray is not None and not args.ray.strip():
        raise ConfigError("--ray: empty address; give ADDRESS (host:port or ray://host:port), auto or local")
    if args.ray_upload and args.ray is None:
        raise ConfigError("--ray-upload ships recordings to a Ray cluster: give --ray ADDRESS too")
    if _batch_mode(args, files):
        return _replay_batch(args, files)
    if not files and not args.sample:
        raise ConfigError("give a recording to replay (or --sample for the bundled one)")
    for f in files:
        check_audio_file(f)
    cfg = _runtime_config(args)
    _check_session_outputs(args)
    from emomon.monitor.app import MonitorOptions, run_monitor, sample_recording

    if args.sample:  # a lesson: a teacher (Lesson/A with --diarize) and a student (Lesson/B)
        files.insert(0, sample_recording())
        speakers = {0: SAMPLE_SPEAKER, **speakers}  # the sample is input 0; --speaker 0=NAME renames it
    opts = MonitorOptions(files=files, realtime=args.realtime, split_channels=args.split_channels,
                          speakers=speakers, csv=_csv_path(args.csv),
                          printer=not args.quiet_lines, save_audio=args.save_audio, dashboard=bool(args.dashboard),
                          audio_stream=args.audio_stream, start_time=start_time)
    if args.as_live:
        cfg = dataclasses.replace(cfg, replay=dataclasses.replace(cfg.replay, baseline="running", tta_speeds=()))
    elif args.best:
        cfg = dataclasses.replace(cfg, replay=dataclasses.replace(cfg.replay, tta_speeds=cfg.replay.best_speeds))
    return run_monitor(cfg, opts, live=False)


def _batch_mode(args: argparse.Namespace, files: list[Path]) -> bool:
    """Several FILES alone are the inputs of one session; a folder, --manifest, --out-dir, --jobs (or --ray) make a
    batch: one session per recording."""
    return (any(f.is_dir() for f in files) or args.manifest is not None or args.out_dir is not None
            or args.jobs is not None or bool(getattr(args, "ray", False)))


#: Options of one session that a batch does not take (each recording is its own session).
_NOT_IN_BATCH = (("csv", "--csv (each recording gets <out-dir>/<name>.csv)"), ("realtime", "--realtime"),
                 ("dashboard", "--dashboard"), ("save_audio", "--save-audio"), ("start_time", "--start-time"),
                 ("audio_stream", "--audio-stream"), ("speaker", "--speaker (give speakers per recording in --manifest)"))


def _replay_batch(args: argparse.Namespace, files: list[Path]) -> int:
    """``emomon replay`` of many recordings: every check (inputs, manifest, out-dir) before the runtime loads."""
    from emomon.files import check_output_folder
    from emomon.monitor.batch import Recording, default_jobs, default_out_dir, discover

    # the inputs first (cheap: nothing is decoded): a folder with no audio in it says so, whatever else was given
    manifest = _output_arg(args.manifest, "--manifest")
    recordings = discover(files, manifest) if (files or manifest) else []
    for attr, flag in _NOT_IN_BATCH:
        if getattr(args, attr, None):
            raise ConfigError(f"{flag} is for one session; a batch replay (a folder, --manifest, --out-dir or --jobs) "
                              "does not take it")
    if args.jobs is not None and args.jobs < 1:
        raise ConfigError(f"--jobs: must be at least 1, got {args.jobs}")
    if args.ray is not None:
        from emomon.monitor.ray_pool import check_ray_installed  # ray itself is not imported here

        check_ray_installed()  # without the extra: one line naming it, exit 2, before anything heavy
        if args.jobs is not None:
            raise ConfigError("--jobs is for worker processes on this machine; --ray reads on the cluster's actors: give one")
    if args.split_channels:
        recordings = [dataclasses.replace(r, split_channels=True) for r in recordings]
    if args.sample:  # the bundled lesson, one recording named "sample"
        from emomon.monitor.app import sample_recording

        taken = {r.name for r in recordings}
        recordings.insert(0, Recording(sample_recording(), "sample" if "sample" not in taken else "sample-bundled",
                                       ((0, SAMPLE_SPEAKER),), args.split_channels))
    if not recordings:
        raise ConfigError("give recordings to replay: files, a folder, --manifest (or --sample)")
    out_dir = _output_arg(args.out_dir, "--out-dir") or default_out_dir()
    check_output_folder(out_dir, what="the batch folder", verb="write", create=True)
    cfg = _runtime_config(args)
    if args.as_live:
        cfg = dataclasses.replace(cfg, replay=dataclasses.replace(cfg.replay, baseline="running", tta_speeds=()))
    elif args.best:
        cfg = dataclasses.replace(cfg, replay=dataclasses.replace(cfg.replay, tta_speeds=cfg.replay.best_speeds))
    from emomon.monitor.batch import run_batch

    if args.ray is not None:
        from emomon.monitor.ray_pool import RayReaderPool

        with RayReaderPool(args.ray, cfg, upload=args.ray_upload) as pool:
            return run_batch(cfg, recordings, out_dir, jobs=pool.size, reader_pool=pool)
    from emomon.monitor.batch import uses_gpu

    gpu = uses_gpu(cfg)
    # a GPU: one process, reading several recordings at once into shared micro-batches; the CPU: a process per core
    jobs = args.jobs or (1 if gpu else default_jobs())
    if jobs > 1 and cfg.replay.recordings_at_once > 1:
        raise ConfigError("[replay] recordings_at_once is for one reader (--jobs 1, a GPU, or --ray actors); worker "
                          "processes of --jobs N read one recording at a time")
    return run_batch(cfg, recordings, out_dir, jobs=min(jobs, len(recordings)))


#: The bundled sample's input name: a lesson, whose two voices ``--diarize`` tells apart (``Lesson/A`` the teacher,
#: ``Lesson/B`` the student).
SAMPLE_SPEAKER = "Lesson"


def _start_time(arg: str | None):
    """``--start-time``: an ISO 8601 date and time of day, made aware (a time without a zone is local time)."""
    import datetime as dt

    if arg is None:
        return None
    text = arg.strip()
    example = "e.g. 2026-03-02T09:00:00+01:00 (a time without a zone is this machine's local time)"
    if len(text) < 16 or text[10:11] not in ("T", " "):
        raise ConfigError(f"--start-time {arg!r}: give the date and the time of day the recording began, {example}")
    try:
        t = dt.datetime.fromisoformat(text)
        return t if t.tzinfo is not None and t.utcoffset() is not None else t.astimezone()
    except (ValueError, OverflowError, OSError):
        raise ConfigError(f"--start-time {arg!r}: not an ISO 8601 date and time, {example}") from None


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

    dashboard = sys.stdout.isatty() if args.dashboard is None else args.dashboard
    opts = MonitorOptions(devices=list(args.input or []), speakers=speakers,
                          csv=_csv_path(args.csv), printer=not args.quiet_lines, duration=args.duration,
                          save_audio=args.save_audio, dashboard=dashboard)
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


class _RenamedOption(argparse.Action):
    """An option's old name, kept working: one warning line on stderr, then its value goes where the new one's does."""

    def __init__(self, option_strings, dest, new_name: str, **kwargs):
        self.new_name = new_name
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"emomon: warning: {option_string} is now {self.new_name}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def _add_compute_option(p: argparse.ArgumentParser, help: str) -> None:
    """``--compute {auto,cpu,cuda}``: where the models compute (not an audio device); ``--device``, its old name, is
    a hidden alias that warns."""
    p.add_argument("--compute", choices=("auto", "cpu", "cuda"), help=help)
    p.add_argument("--device", dest="compute", choices=("auto", "cpu", "cuda"), action=_RenamedOption,
                   new_name="--compute", help=argparse.SUPPRESS)


def _add_monitor_options(p: argparse.ArgumentParser, *, dashboard_default: str) -> None:
    p.add_argument("--dashboard", action=argparse.BooleanOptionalAction,
                   help=f"show the live dashboard, or not (--no-dashboard: a plain line per utterance); default: {dashboard_default}")
    p.add_argument("--speaker", action="append", metavar="INDEX=NAME",
                   help="name an input, e.g. 0=Teacher (repeatable; inputs count from 0: files in order, each channel with "
                        "--split-channels, each --input live). With --diarize it names the input and its voices become "
                        "NAME/A, NAME/B, ... in order of first appearance")
    p.add_argument("--diarize", action="store_true",
                   help="tell apart several voices within one input (speaker embeddings): S1/A, S1/B, or NAME/A with --speaker")
    p.add_argument("--csv", help="session CSV path (default sessions/<date>_<time>.csv; never overwritten)")
    p.add_argument("--quiet-lines", action="store_true",
                   help="no line per utterance on stdout (the CSV still gets every row). It is not -q: `emomon -q ...` "
                        "quiets the log messages on stderr (loading, the CSV path, notes) and keeps the lines; give both "
                        "for only the end-of-session summary and errors")
    p.add_argument("--save-audio", action="store_true", help="also keep each utterance's audio (0600 WAVs next to the CSV); off by default")
    p.add_argument("--config", default="default", metavar="PRESET",
                   help="runtime preset: a name (`emomon info` lists them) or a .toml file (`extends = \"default\"` plus "
                        "the keys to change). It sets how to run: ASR, segmenter, runtime, replay, dashboard, diarization, "
                        "and which emotion model (runtime.model). Not a training recipe. Default: default")
    p.add_argument("--model", metavar="NAME|DIR",
                   help="emotion model: a shipped name (hyfuser-tiny-en) or a checkpoint folder from `emomon train`; "
                        "replaces the preset's runtime.model. A model brings its own classes and encoders (`emomon info "
                        "NAME`); the preset only says how to run it. Default: the preset's, hyfuser-tiny-en")
    _add_compute_option(p, "where the models compute: auto (CUDA when present, else CPU), cpu or cuda; not an audio "
                           "device (default: the preset's runtime.device, auto)")


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
    from emomon.config import load_config
    from emomon.errors import OutputError
    from emomon.files import check_output_folder, check_output_path

    # the preset's [dashboard] unsure_below (a bad --config is an error before anything is read or checked): readings
    # below it are drawn unsure, as the dashboard shows them
    unsure_below = load_config(args.config).dashboard.unsure_below

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

    html, png = write_report(csv_path, out, unsure_below=unsure_below)
    print(f"report: {html}")
    print(f"image:  {png}")
    return 0


def _model_lines(doc, name: str | None) -> list[str]:
    """What a checkpoint is, in a few lines from its validated config.json: what it is, its test figures (each
    training's, measured alone when it was trained) and, for a shipped one, its licence."""
    from emomon.models.shipped import SHIPPED_LICENCES

    cfg, n = doc.config, len(doc.members)
    arch = {"hyfuser": "HyFusER"}.get(cfg.model.arch, cfg.model.arch)
    speech, text = cfg.encoders.speech, cfg.encoders.text
    what = (f"an ensemble of {n} trainings of {arch} (probabilities averaged), each" if doc.is_ensemble
            else f"a {arch} model") + (f" fusing text ({text.name}) and speech ({speech.name} {speech.model}); "
                                       f"{len(cfg.classes)} classes: {', '.join(cfg.classes)}")
    lines = [f"  what it is: {what}"]
    figures = []
    by_source: dict[str, list] = {}
    for member in doc.members:
        seen = set()
        for t in sorted(member.test, key=lambda t: t.mode != "paired"):  # text and speech together when measured so
            if t.source not in seen and t.accuracy is not None:
                seen.add(t.source)
                by_source.setdefault(t.source, []).append(t)
    for source, ts in by_source.items():
        accs = [t.accuracy for t in ts]
        shown = f"{sum(accs) / len(accs):.3f}" + (f" ({min(accs):.3f}-{max(accs):.3f})" if max(accs) - min(accs) >= 0.0005 else "")
        figures.append(f"{source} {shown}" + ("" if ts[0].mode == "paired" else f" {ts[0].mode}"))
    if figures:
        who = f"mean (range) of the {n} trainings, each measured alone" if doc.is_ensemble else "measured when it was trained"
        lines.append(f"  test accuracy on held-out test sets ({who}): {', '.join(figures)}")
    if doc.is_ensemble:
        lines.append(f"  the ensemble's own figures: `emomon eval {name or doc.directory}` (docs/MODEL_CARD.md)")
    if name in SHIPPED_LICENCES:
        lines.append(f"  licence: {SHIPPED_LICENCES[name]}")
    return lines


def cmd_info(args: argparse.Namespace) -> int:
    # config.json only, validated without torch: `emomon info` answers at once and loads no model
    from emomon.config import DEFAULT_RUNTIME_PRESET, recipe_names, runtime_preset_names
    from emomon.models.shipped import CHECKPOINT_ALIASES, DEFAULT_CHECKPOINT, packaged_checkpoints, read_checkpoint, shipped_name

    verbose = getattr(args, "verbose", 0) > 0
    if args.checkpoint:
        doc = read_checkpoint(args.checkpoint)  # config.json validated against its schema; the weights are not read
        directory, cfg = doc.directory, doc.config
        name = shipped_name(args.checkpoint) if Path(args.checkpoint).resolve() != directory.resolve() else None
        if name is None:
            print(f"checkpoint {directory}")
        else:  # a shipped name (or an old one): lead with the name it has now
            old = f"; {args.checkpoint} is its old name" if args.checkpoint != name else ""
            print(f"checkpoint {name} (shipped{old}; {directory})")
        for line in _model_lines(doc, name):
            print(line)
        print(f"  architecture {cfg.model.arch}, trained with the recipe {cfg.name}")
        print(f"  encoders: text {cfg.encoders.text.name}, speech {cfg.encoders.speech.name} ({cfg.encoders.speech.model})")
        print(f"  parameters {doc.parameters}, created {doc.created}")

        def figure(value: float | None) -> str:
            return "  n/a" if value is None else f"{value:.3f}"

        rows = [(i, t) for i, member in enumerate(doc.members) for t in member.test]
        if rows and doc.is_ensemble and not verbose:  # one training's rows are few: always shown
            print(f"  ({len(rows)} test rows, every source and mode of each training: `emomon info {args.checkpoint} -v`)")
        for i, t in rows if verbose or not doc.is_ensemble else ():
            who = f"member {i + 1} " if doc.is_ensemble else ""
            print(f"  {who}test {t.source:<12} {t.mode:<12} acc {figure(t.accuracy)}  wF1 {figure(t.weighted_f1)}  UAR {figure(t.uar)}")
        return 0
    old_names = [old for old, new in CHECKPOINT_ALIASES.items() if new == DEFAULT_CHECKPOINT]
    print(f"shipped model: {DEFAULT_CHECKPOINT}" + (f" (old name: {', '.join(old_names)})" if old_names else ""))
    for line in _model_lines(read_checkpoint(DEFAULT_CHECKPOINT), DEFAULT_CHECKPOINT):
        print(line)
    print(f"  more: `emomon info {DEFAULT_CHECKPOINT}` (encoders, parameters; -v: every test row)")
    print()
    print(f"runtime presets:  {', '.join(runtime_preset_names())} (how replay and live run, and which model: runtime.model; "
          f"they read {DEFAULT_RUNTIME_PRESET} unless --config names another, and --model replaces its model)")
    print(f"training recipes: {', '.join(recipe_names())} (for `emomon train`)")
    print(f"checkpoints:      {', '.join(packaged_checkpoints())} (shipped; --model NAME or a folder from `emomon train`)")
    return 0


# ---------------------------------------------------------------------------------------------------- parser
MAIN_EPILOG = """\
first run (fully offline):
  emomon replay --sample --diarize    the bundled lesson: a teacher (Lesson/A) and a student
                                      (Lesson/B), a line per utterance, a session CSV in sessions/

examples:
  emomon devices                                  list audio inputs
  emomon live --input 0 --speaker 0=Teacher       listen to a microphone until Ctrl-C
  emomon replay talk.m4a --start-time 2026-03-02T09:00:00+01:00
  emomon report sessions/2026-03-02_09-00-00.csv  HTML page + PNG of a session
  emomon info                                     the shipped model, its figures, its licence

`emomon COMMAND --help` shows each command's options and examples;
-v and -q go before or after COMMAND.
"""

REPLAY_EPILOG = """\
examples:
  emomon replay --sample --diarize      the bundled lesson, teacher and student told apart
  emomon replay talk.m4a                any format FFmpeg reads; as fast as possible
  emomon replay talk.m4a --dashboard    with the live dashboard
  emomon replay call.wav --split-channels --speaker 0=Counsellor --speaker 1=Client
  emomon replay class.wav --diarize --speaker 0=Room    several voices: Room/A, Room/B, ...
  emomon replay talk.wav --start-time 2026-03-02T09:00:00+01:00
  emomon replay talk.wav --realtime     paced like a live stream
  emomon replay talk.wav --as-live      full speed, each speaker read as live reads them

times in the CSV: start_s/end_s are seconds into the recording. A recording has no wall clock
of its own, so start_time/end_time are its start plus those offsets: the start is --start-time,
else the creation time its metadata states (MP4/M4A creation_time, a WAV's BWF origination date
and time, a date tag with a time of day); with neither, they are left empty (emomon says so
once). --realtime (paced like live) keeps the wall clock, as live does, unless --start-time.
"""

LIVE_EPILOG = """\
examples:
  emomon live                           the default input, until Ctrl-C
  emomon live --input 0 --input "Monitor of" --speaker 0=Teacher --speaker 1=Class
  emomon live --input 0 --diarize --speaker 0=Room      several voices: Room/A, Room/B, ...
  emomon live --duration 600 --no-dashboard --csv lesson.csv
  emomon live --compute cpu --config my-settings.toml

`emomon devices` lists the inputs (--input takes an index or part of a name).
start_time/end_time in the CSV are the wall clock.
"""

TRAIN_EPILOG = """\
examples (the corpora live in ../shared/data, or --data-root, or $EMOMON_DATA):
  emomon train en-tiny --out runs/en-tiny            stage 1 of the shipped model's line
  emomon train en-tiny-cut --out runs/en-tiny-cut    stage 2: on clips cut as the monitor cuts
  emomon train en-tiny-refit-member --member 4       one ensemble member (K = 2..5)
  emomon train en-tiny --out runs/en-tiny --resume   continue after the last finished epoch
  emomon train my-recipe.toml --epochs 2 --compute cuda

`emomon info` lists the recipes.
"""

EVAL_EPILOG = """\
examples:
  emomon eval hyfuser-tiny-en           a model's held-out test figures (its own corpora)
  emomon eval runs/my-model --corpus ravdess --path ../shared/data/ravdess --speakers 19-24 --text asr
  emomon eval runs/my-model --manifest clips.csv --json metrics.json
  emomon eval hyfuser-tiny-en --config en-tiny --mode paired --no-confusion
"""

DEVICES_EPILOG = """\
example:
  emomon devices      then `emomon live --input INDEX` (or part of its name); * marks the default
"""

ENSEMBLE_EPILOG = """\
examples:
  emomon ensemble runs/ens runs/a runs/b          join trainings; probabilities averaged
  emomon ensemble runs/ens5 hyfuser-tiny-en runs/d runs/e    an ensemble stands for its trainings
  emomon ensemble runs/ens runs/a runs/b --half   weights in float16 (half the size)
"""

REPORT_EPILOG = """\
examples:
  emomon report sessions/2026-03-02_09-00-00.csv   writes the .html and .png next to the CSV
  emomon report lesson.csv --out reports/ --overwrite

The report places rows by start_s/end_s; start_time/end_time (empty for a replay with no known
start) only add the clock time.
"""

INFO_EPILOG = """\
examples:
  emomon info                      the shipped model (what, figures, licence), presets, recipes
  emomon info hyfuser-tiny-en      one checkpoint: encoders, parameters, test figures
  emomon info hyfuser-tiny-en -v   ... and every test row of every training
  emomon info runs/my-model        a checkpoint you trained
"""


def build_parser() -> argparse.ArgumentParser:
    raw = argparse.RawDescriptionHelpFormatter
    # -v/-q also after the command (`emomon info -v`); SUPPRESS keeps a value given before it
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                        help="more output (-vv for debug logs); `emomon info -v` lists every test row")
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="only warnings and errors on stderr (the per-utterance lines are --quiet-lines)")

    p = argparse.ArgumentParser(prog="emomon", formatter_class=raw, epilog=MAIN_EPILOG,
                                description="Streaming speech emotion monitor (text + speech fusion), entirely on this machine. "
                                            "Try `emomon replay --sample --diarize` first.")
    p.add_argument("--version", action="version", version=f"emomon {__version__}")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="more output (-vv for debug logs); `emomon info -v` lists every test row")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="only warnings and errors on stderr (the per-utterance lines are --quiet-lines)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help: str, epilog: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".", epilog=epilog,
                              formatter_class=raw, parents=[common])

    t = command("train", "train a model from a TOML training recipe", TRAIN_EPILOG)
    t.add_argument("config", help="training recipe name (e.g. en-tiny; `emomon info` lists them) or path to a .toml file")
    t.add_argument("--member", type=int, metavar="K",
                   help="for a recipe with [[members]] (e.g. en-tiny-refit-member): train its member K")
    t.add_argument("--out", help="checkpoint directory (default runs/<recipe name>)")
    t.add_argument("--overwrite", action="store_true", help="replace a checkpoint (or an interrupted training) already in --out")
    t.add_argument("--resume", action="store_true",
                   help="continue the interrupted training in --out after its last finished epoch (same preset and options)")
    t.add_argument("--data-root", help="folder the preset's corpora live in (default: data.root, or $EMOMON_DATA)")
    t.add_argument("--epochs", type=int, help="override train.max_epochs")
    _add_compute_option(t, "where training computes: auto (CUDA when present), cpu or cuda (default: the recipe's train.device)")
    t.add_argument("--cache", help="feature cache folder (default ~/.cache/emomon/features or $EMOMON_CACHE)")
    t.set_defaults(func=cmd_train)

    e = command("eval", "evaluate a checkpoint (default: its own held-out test sets)", EVAL_EPILOG)
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

    r = command("replay", "run the monitor on recordings, as fast as possible (or --realtime)", REPLAY_EPILOG)
    r.add_argument("files", nargs="*", help="audio/video files (anything FFmpeg decodes); several play side by side, one input "
                                            "each, in one session; a folder (or --manifest, --out-dir, --jobs) makes a batch: "
                                            "one session CSV per recording, and a summary")
    r.add_argument("--sample", action="store_true",
                   help="replay the bundled sample: a lesson, a teacher and a student in one input named Lesson "
                        "(add --diarize to tell them apart: Lesson/A, Lesson/B)")
    r.add_argument("--start-time", metavar="ISO8601",
                   help="when the recording began, e.g. 2026-03-02T09:00:00+01:00 (without a zone: local time): the "
                        "CSV's start_time/end_time are this plus each row's offset (default: the recording's own "
                        "creation time if its metadata states one, else those columns stay empty)")
    r.add_argument("--realtime", action="store_true", help="pace the file like a live stream (times: the wall clock, unless --start-time)")
    r.add_argument("--split-channels", action="store_true", help="each channel of a multi-channel file is a speaker")
    r.add_argument("--audio-stream", type=int, metavar="N",
                   help="read the N-th audio stream of each file, from 0 (default: the first one with sound)")
    r.add_argument("--as-live", action="store_true",
                   help="read speakers as a live session does (running baseline, one speed) instead of the preset's "
                        "[replay] reading (default: a first pass for whole-recording speaker baselines)")
    r.add_argument("--best", action="store_true",
                   help="also read every utterance at the [replay] best_speeds (0.95x and 1.05x) and average: about "
                        "twice the CPU of the default reading, for a small gain (docs/MODEL_CARD.md)")
    r.add_argument("--out-dir", metavar="DIR",
                   help="batch: the folder for each recording's <name>.csv and summary.csv (default sessions/<date>_<time>/); "
                        "a re-run with the same folder skips the recordings already complete there")
    r.add_argument("--manifest", metavar="CSV",
                   help="batch: recordings listed in a CSV with columns path[,speakers][,split_channels] (speakers like "
                        "0=Counsellor;1=Client; relative paths from the manifest's folder)")
    r.add_argument("--jobs", type=int, metavar="N",
                   help="batch: N worker processes, each loading the models once; cores are split between them "
                        "(default: one per core, at most one per 1.5 GiB of available memory; with a GPU, 1: this process "
                        "reads [replay] recordings_at_once recordings at once on it)")
    r.add_argument("--ray", metavar="ADDRESS",
                   help="batch on a Ray cluster: ADDRESS (host:port, ray://host:port), auto (the cluster this machine is in) "
                        "or local (a local instance on this machine's CPUs); one model-holding actor per runtime.threads "
                        "CPUs (1 when 0) or per GPU with --compute cuda; CSVs are written here. Needs the ray extra: "
                        "pip install -e \".[ray]\" (docs/SCALING.md)")
    r.add_argument("--ray-upload", action="store_true",
                   help="with --ray: ship each recording's bytes through Ray's object store (default: the workers read "
                        "the path, which they must see, e.g. on shared storage)")
    _add_monitor_options(r, dashboard_default="off")
    r.set_defaults(func=cmd_replay)

    lv = command("live", "monitor microphones or loopback devices until Ctrl-C", LIVE_EPILOG)
    lv.add_argument("--input", action="append", metavar="DEVICE",
                    help="audio input: index or part of its name from `emomon devices` (repeatable; default: the system default)")
    lv.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (otherwise Ctrl-C)")
    _add_monitor_options(lv, dashboard_default="on when stdout is a terminal")
    lv.set_defaults(func=cmd_live)

    d = command("devices", "list audio input devices", DEVICES_EPILOG)
    d.set_defaults(func=cmd_devices)

    en = command("ensemble", "join trained checkpoints of one architecture and encoders into one averaging checkpoint",
                 ENSEMBLE_EPILOG)
    en.add_argument("out", help="directory for the ensemble checkpoint")
    en.add_argument("checkpoints", nargs="+",
                    help="two or more checkpoint directories or shipped names; an ensemble stands for its trainings")
    en.add_argument("--half", action="store_true", help="store the members' weights in float16 (half the size; loaded as float32)")
    en.add_argument("--overwrite", action="store_true", help="replace a checkpoint already in OUT (or write into a folder that is not empty)")
    en.set_defaults(func=cmd_ensemble)

    rp = command("report", "an HTML page and a PNG from a session CSV", REPORT_EPILOG)
    rp.add_argument("csv", help="session CSV written by replay/live (a cut-short one works too)")
    rp.add_argument("--out", help="folder for the report (default: next to the CSV)")
    rp.add_argument("--overwrite", action="store_true", help="replace an earlier report of the same CSV in that folder")
    rp.add_argument("--config", default="default",
                    help="runtime preset (name or .toml path) whose [dashboard] unsure_below marks unsure readings "
                         "(default: default); alerts are read from the CSV as the session wrote them")
    rp.set_defaults(func=cmd_report)

    i = command("info", "the shipped model (what it is, its figures, its licence), runtime presets, training recipes; "
                        "or one checkpoint", INFO_EPILOG)
    i.add_argument("checkpoint", nargs="?", help="a shipped name or a checkpoint folder to describe")
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
