"""`python -m training score`: label a folder or a bucket of photos with a stored version on Apache Beam.

Any flag this command does not know goes to Beam as a pipeline option (`--runner DataflowRunner --project
... --region ... --temp_location gs://...`, `--direct_num_workers 2`). Without `--runner`, the job runs
here on Beam's FnApiRunner (nothing is downloaded at run time), in this process: the model call already
uses every core. With `--direct_num_workers N` (worker processes), each worker's model gets cores / N.
"""

from __future__ import annotations

import argparse
import glob
import logging
import os
import time

import runtimes
from scoring import MAX_FILE_BYTES

log = logging.getLogger(__name__)


def pipeline_options(beam_args: list[str]):
    """(runner, options): Beam's options from the leftover flags. Without --runner (or with DirectRunner) the
    FnApiRunner (DirectRunner itself would first try to download the Prism runner): in this process by
    default, since the model already uses every core; `--direct_num_workers N` runs N worker processes."""
    from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    options = PipelineOptions(beam_args)
    runner = options.view_as(StandardOptions).runner
    if runner not in (None, "DirectRunner", "FnApiRunner"):
        return runner, options
    direct = options.view_as(DirectOptions)
    if direct.direct_num_workers > 1 and not any(a.startswith("--direct_running_mode") for a in beam_args):
        direct.direct_running_mode = "multi_processing"
    return FnApiRunner(), options


def _input_pattern(value: str) -> str:
    # A local folder means every file in it (recursively); a pattern or gs:// glob is used as given.
    if not value.startswith("gs://") and os.path.isdir(value):
        return os.path.join(os.path.abspath(value), "**")
    return value


def _count_lines(prefix: str, errors: bool) -> int:
    if prefix.startswith("gs://"):
        return -1  # counted by Beam's metrics instead
    files = glob.glob(f"{prefix}-errors-*.jsonl") if errors else [
        f for f in glob.glob(f"{prefix}-*.jsonl") if not f.startswith(f"{prefix}-errors-")]
    total = 0
    for name in files:
        with open(name) as fh:
            total += sum(1 for _ in fh)
    return total


def run(args: argparse.Namespace, beam_args: list[str]) -> int:
    """Build and run the pipeline; print the counts and the throughput."""
    try:
        import apache_beam as beam
    except ImportError:
        raise SystemExit("batch scoring needs Apache Beam: pip install -r requirements-beam.txt") from None

    from scoring import pipeline
    from scoring.handler import RuntimeModelHandler

    logging.getLogger("apache_beam").setLevel(logging.WARNING)  # the workers' chatter; progress lines stay
    runner, options = pipeline_options(beam_args)
    threads = None
    if not isinstance(runner, str):  # local: the worker processes share this machine's cores
        from apache_beam.options.pipeline_options import DirectOptions

        direct = options.view_as(DirectOptions)
        if direct.direct_running_mode == "multi_processing":  # one model per process: split the cores
            threads = runtimes.share_of_cores(direct.direct_num_workers or 1)
    handler = RuntimeModelHandler(args.model_store, args.version, args.runtime, args.batch_size, args.cache_dir,
                                  threads)
    started = time.monotonic()
    with beam.Pipeline(runner=runner, options=options) as p:
        pipeline.build(p, _input_pattern(args.input), args.output, handler, args.max_file_bytes)
    seconds = time.monotonic() - started
    scored, failed = _count_lines(args.output, False), _count_lines(args.output, True)
    if scored >= 0:
        print(f"scored {scored} files, {failed} failed (dead letters in {args.output}-errors-*.jsonl) in "
              f"{seconds:.1f} s: {scored / max(seconds, 1e-9):.1f} img/s", flush=True)
    else:
        print(f"done in {seconds:.1f} s: results in {args.output}-*.jsonl", flush=True)
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of the score command (the rest are Beam pipeline options)."""
    parser.add_argument("--model-store", default="model_store", help="a folder or gs://bucket/prefix")
    parser.add_argument("--version", type=int, help="default: newest")
    parser.add_argument("--input", required=True,
                        help="a folder, a glob ('photos/**/*.jpg') or a gs:// glob ('gs://bucket/prefix/*.jpg')")
    parser.add_argument("--output", required=True,
                        help="prefix: results to PREFIX-NNNNN-of-NNNNN.jsonl, failures to PREFIX-errors-*.jsonl")
    parser.add_argument("--runtime", default="auto", choices=runtimes.CHOICES,
                        help="as the server's MODEL_RUNTIME: auto picks int8 when it keeps the accuracy")
    parser.add_argument("--batch-size", type=int, default=32, help="images per model call")
    parser.add_argument("--max-file-bytes", type=int, default=MAX_FILE_BYTES,
                        help="larger files go to the dead letters (the server's request limit)")
    parser.add_argument("--cache-dir", help="where a gs:// version is downloaded on each worker")
    parser.set_defaults(func=run, beam_args=True)
