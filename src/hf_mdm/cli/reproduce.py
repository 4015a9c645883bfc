"""`hf-mdm reproduce`: the research claims measured end to end, per research language (`trigram`, `hmm`).

For each language and each decoder (the exact oracle; with `pair` and `paper`, also an MDM trained at length, next
to an AR model of the same size, both with `WELL_TRAINED`'s budget):
1. SER claim: per strategy and length, the steps needed for SER <= target (`search_steps_needed`; a trained MDM up
   to S = L, the AR model's NFE), and b in steps ~ c L^b with its standard error and 95% interval (theory: b ~ 1).
2. TER claim: a fixed-steps sweep over the lengths (`sweep_steps`, with the AR row for a trained model); per step
   count, the slope of the TER gap per doubling of L with its interval (the theory: flat), and the steps needed for
   a TER gap <= `ter_target` nats/token with its b (the theory: b ~ 0; from the swept grid, so as coarse as it).
3. Next to an AR model, the TER sweep adds S = L (the AR model's NFE) at every length, and results.md gives the
   quality of the pair per length and the latency at matched TER and matched SER with their intervals
   (`latency_at_matched_quality` over the sweep's ancestral rows and the AR row).
4. Outputs in `<output_dir>/<language>/<decoder>/`: the probe and sweep files (JSON lines; a rerun resumes from them),
   `results.md` (both fits and the tables), `steps_needed.png` (steps needed against L with their intervals),
   `step_vs_error.png` and a model card (README.md); `<output_dir>/summary.md`
   gathers every fit. Trained models live in `<output_dir>/<language>/models/{mdm,autoregressive}` with their
   training time; a rerun loads them.
With `--block_sizes` (e.g. `1 4 L`), block size is an axis: the oracle's SER is searched at each decoding block size
(one fit per strategy and size), and the `trained` decoder also trains one block-diffusion MDM per integer B
(`models/mdm-block{B}`, BD3-LM objective) and measures it at its own B as the decoder `trained-block{B}`.
Under `accelerate launch` the sweep cells and the training are split across processes; a search probes one cell at a
time (each length starts from the steps the shorter ones predict), so its probes run on one process while the others
wait.
"""

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from accelerate import PartialState

from ..evaluation import LanguageTask, fit_step_scaling, markdown_table, search_steps_needed, sweep_steps
from ..evaluation.latency_at_matched_quality import latency_at_matched_quality, matched_quality_table, with_uncertainty
from ..evaluation.research_models import ResearchTraining, train_block_models, train_research_models, training_record
from ..evaluation.step_scaling import check_target, fixed_steps_trend_table, step_scaling_table
from ..evaluation.sweep import AUTOREGRESSIVE, block_count, cell_block_size, cell_key
from ..evaluation.sweep_table import ONE_BLOCK
from ..generation import DiffusionGenerationConfig, enable_diffusion_generation
from ..hub import ModelCard, plot_steps_needed
from ..languages import describe_research_language, research_language
from .sweep import block_size_argument, block_sizes


@dataclass(frozen=True)
class Preset:
    """What one preset measures; `train_lengths` empty: the oracle only."""

    languages: tuple[str, ...]
    lengths: tuple[int, ...]
    strategies: tuple[str, ...]
    num_samples: int
    max_steps_per_token: int
    ter_steps: tuple[int, ...]
    ter_strategy: str = "random"
    train_lengths: tuple[int, ...] = ()
    # A trained MDM is searched up to S = L, the AR model's NFE: needing more would already mean no speed-up.
    trained_max_steps_per_token: int = 1
    # `ResearchTraining` fields of the trained pair (the rest its defaults).
    training: dict = field(default_factory=dict)


# The research pair trained until the MDM-vs-AR comparison means something (issue P): 10x the tokens of
# `ResearchTraining`'s defaults (3,000 steps at batch 32, 24,000 fresh sequences per length: one epoch, 23M tokens),
# the same size (0.20M parameters). Measured results and training cost: docs/benchmarks.md.
WELL_TRAINED = {"train_steps": 3000, "batch_size": 32, "examples_per_length": 24000}

PRESETS = {
    # The trigram's oracle is slower (at L = 1024, 0.4 s per forward at 50% masked and 3 s at 90% compiled, 3-6x
    # that in torch) and its SER search needs S ~ L, so `quick` measures the HMM only; `--languages trigram` adds it
    # at the cost of tens of minutes.
    "quick": Preset(("hmm",), (32, 64, 128, 256), ("confidence", "random"), 100, 4, (1, 2, 4, 8, 16, 32)),
    "paper": Preset(
        ("hmm", "trigram"),
        (64, 128, 256, 512, 1024),
        ("confidence", "random"),
        200,
        8,
        (1, 2, 4, 8, 16, 32, 64),
        train_lengths=(64, 128, 256, 512),
        training=WELL_TRAINED,
    ),  # fmt: skip
    # The HMM end to end on a 2-core machine in under three hours: its oracle, and the well-trained pair at 64-512.
    "pair": Preset(
        ("hmm",),
        (64, 128, 256, 512),
        ("confidence", "random"),
        100,
        4,
        (1, 2, 4, 8, 16, 32, 64),
        train_lengths=(64, 128, 256, 512),
        training=WELL_TRAINED,
    ),  # fmt: skip
}


DECODERS = ("oracle", "trained")


@dataclass
class ReproduceArguments:
    preset: str = field(default="quick", metadata={"help": f"What to measure: {sorted(PRESETS)}."})
    output_dir: str = field(default="outputs/reproduce", metadata={"help": "Where results go (rerun to resume)."})
    languages: list[str] | None = field(default=None, metadata={"help": "Subset of the preset's languages."})
    lengths: list[int] | None = field(
        default=None, metadata={"help": "Subset of the preset's lengths to measure (models still train on all)."}
    )
    strategies: list[str] | None = field(default=None, metadata={"help": "Replace the preset's SER strategies."})
    decoders: list[str] | None = field(
        default=None, metadata={"help": f"Which of {DECODERS} to measure (default: all the preset has)."}
    )
    target: float = field(default=0.05, metadata={"help": "The SER whose steps needed are searched."})
    ter_target: float = field(default=0.2, metadata={"help": "The TER gap (nats/token) for the TER fit."})
    batch_size: int = field(default=100, metadata={"help": "Sequences per generate() call."})
    train_steps: int | None = field(default=None, metadata={"help": "Override the trained models' optimizer steps."})
    device: str = field(default="cpu", metadata={"help": "Where the models decode (and train)."})
    block_size: list[str] | None = block_size_argument(
        "Decoding block sizes of the SER searches (ints; L: one block); the trained decoder also trains a "
        "block-diffusion model per integer size. Default: one block.", "--block_sizes", "--block-sizes",
    )  # fmt: skip
    progress: bool = True


ARGUMENTS = (ReproduceArguments,)


def check_arguments(args: ReproduceArguments) -> Preset:
    """The preset, after every argument is checked (before any training or decoding)."""
    if args.preset not in PRESETS:
        raise ValueError(f"--preset must be one of {sorted(PRESETS)}, got {args.preset!r}.")
    preset = PRESETS[args.preset]
    for name in args.languages or ():
        research_language(name)  # names the choices
    available = sorted(set(preset.lengths) | set(preset.train_lengths))
    if args.lengths is not None and (not args.lengths or set(args.lengths) - set(available)):
        raise ValueError(f"--lengths must list some of the preset's lengths {available}, got {args.lengths}.")
    if args.decoders is not None and (not args.decoders or set(args.decoders) - set(DECODERS)):
        raise ValueError(f"--decoders must list some of {list(DECODERS)}, got {args.decoders}.")
    if "trained" in (args.decoders or ()) and not preset.train_lengths:
        raise ValueError(f"--preset {args.preset} trains no model; use --preset paper for --decoders trained.")
    for strategy in args.strategies or ():
        DiffusionGenerationConfig(strategy=strategy).validate()
    if args.strategies is not None:
        preset = dataclasses.replace(preset, strategies=tuple(args.strategies))
    lengths = [length for length in available if args.lengths is None or length in args.lengths]
    for size in block_sizes(args.block_size) or ():
        if size != ONE_BLOCK and any(length % size for length in lengths):
            raise ValueError(f"--block_size {size} must divide every measured length {lengths}.")
    check_target(args.target)
    check_target(args.ter_target)
    if args.batch_size < 1 or (args.train_steps is not None and args.train_steps < 1):
        raise ValueError("--batch_size and --train_steps must be positive integers.")
    return preset


def measure(
    model, tokenizer, task, lengths, preset, args, folder: Path, steps_per_token: int, autoregressive=None,
    block_sizes=None,
):  # fmt: skip
    """Steps 1-3 of the module docstring for one decoder, its SER searched up to `steps_per_token` * L at each of
    `block_sizes` (None: one block, or a block-causal model's own); the TER sweep decodes one block (a block-causal
    model: its own blocks, at the swept steps with one per block at least). Returns (probe rows, sweep rows, fits)."""
    probes, fits = [], []
    max_steps = {length: steps_per_token * length for length in lengths}
    for strategy in preset.strategies:
        table, scalings = search_steps_needed(
            model, tokenizer, task, args.target, max_steps=max_steps,
            strategies=[strategy], lengths=list(lengths), num_samples=preset.num_samples, batch_size=args.batch_size,
            progress=args.progress, output_path=folder / f"ser_probes-{strategy}.jsonl", block_sizes=block_sizes,
        )  # fmt: skip
        probes += list(table)
        fits += scalings
    # next to an AR model, also S = L: the MDM's own sampling quality at the AR model's NFE
    grids = {length: set(preset.ter_steps) | ({length} if autoregressive is not None else set()) for length in lengths}
    cells = [(preset.ter_strategy, length, steps) for length in lengths for steps in sorted(grids[length])
             if steps >= block_count(length, cell_block_size(model, None, length))]  # fmt: skip
    sweep = list(
        sweep_steps(
            model, tokenizer, task, steps=sorted(set().union(*grids.values())), strategies=[preset.ter_strategy],
            lengths=list(lengths), num_samples=preset.num_samples, batch_size=args.batch_size,
            autoregressive_model=autoregressive, output_path=folder / "ter_sweep.jsonl", resume=True,
            progress=args.progress, cells=cells,
        )
    )  # fmt: skip
    fits.append(fit_step_scaling(sweep, preset.ter_strategy, "ter_gap", args.ter_target))
    return probes, sweep, fits


def pair_sections(sweep: list[dict], ter_strategy: str) -> str:
    """For a sweep with AR rows: the quality of the pair per length (the AR model's TER gap and SER, the MDM's at
    S = L with `ter_strategy`), and per length the latency at matched TER and SER (`latency_at_matched_quality`)."""
    by_length = {}
    for row in sweep:
        by_length.setdefault(row["length"], {})[(row["strategy"], row["steps"])] = row
    if not any((AUTOREGRESSIVE, length) in cells for length, cells in by_length.items()):
        return ""
    lines = [
        f"## Quality of the pair (the MDM with `{ter_strategy}` at S = L, the AR model's NFE)\n",
        "| length | AR TER gap ± SE | AR SER [95% interval] | MDM TER gap ± SE | MDM SER [95% interval] |",
        "|---:|---:|---:|---:|---:|",
    ]
    matched = []
    for length, cells in sorted(by_length.items()):
        pair = [cells.get((AUTOREGRESSIVE, length)), cells.get((ter_strategy, length))]
        if None in pair:
            continue
        shown = [f"{with_uncertainty(metric, row)}" for row in pair for metric in ("ter_gap", "ser")]
        lines.append(f"| {length} | " + " | ".join(shown) + " |")
        rows = [row for (strategy, _), row in cells.items() if strategy in (AUTOREGRESSIVE, ter_strategy)]
        matched.append(f"### L = {length}\n\n" + matched_quality_table(latency_at_matched_quality(rows)))
    return "\n".join(lines) + "\n\n## Latency at matched quality (MDM vs AR)\n\n" + "\n\n".join(matched) + "\n\n"


def write_results(folder: Path, title: str, probes, sweep, fits, card_model, ter_strategy, training=None) -> str:
    """results.md, the plot and the card of one decoder; returns the fits table."""
    table = step_scaling_table(fits)
    text = (
        f"# {title}\n\n## Steps needed and their growth with length\n\n{table}\n\n"
        + "\n".join(f"- {scaling.describe()}" for scaling in fits)
        + "\n\n" + pair_sections(sweep, ter_strategy)
        + f"## Token error at fixed steps, against length ({ter_strategy})\n\n"
        + fixed_steps_trend_table(sweep, ter_strategy)
        + f"\n\n## Fixed-steps sweep (TER)\n\n{markdown_table(sweep)}\n"
        + f"\n## Every SER probe\n\n{markdown_table(probes)}\n"
    )  # fmt: skip
    if plot_steps_needed(fits, folder / "steps_needed.png"):
        text += "\n![steps needed against length, 95% intervals](steps_needed.png)\n"
    (folder / "results.md").write_text(text)
    cells = list({cell_key(row): row for row in sweep + probes}.values())
    card = ModelCard.from_sweep(
        cells, model=card_model, model_name=title, task_name=title.split(": ")[0], training=training,
        step_scaling=fits,
    )  # fmt: skip
    card.save_pretrained(folder)  # README.md and its plot, step_vs_error.png
    return table


def training_facts(models_dir: Path, kinds) -> dict:
    """The card's training facts of the finished model folders `kinds` under `models_dir`."""
    return {
        kind: "{wall_s:.0f} s wall, {cpu_s:.0f} s CPU, {train_steps} steps".format(**record)
        for kind in kinds
        if (record := training_record(models_dir / kind))
    }


def run(args: ReproduceArguments):
    preset = check_arguments(args)
    sizes = block_sizes(args.block_size)
    state = PartialState(cpu=args.device == "cpu")
    output_dir = Path(args.output_dir)
    summary = [f"# hf-mdm reproduce --preset {args.preset}\n"]
    for name in args.languages or preset.languages:
        language = research_language(name)
        tokenizer = language.tokenizer()
        task = LanguageTask(language, name=name)
        described = f"{name} ({describe_research_language(name)})"
        decoders = [("oracle", preset.lengths)] + ([("trained", preset.train_lengths)] if preset.train_lengths else [])
        for decoder, all_lengths in decoders:
            lengths = [length for length in all_lengths if args.lengths is None or length in args.lengths]
            if decoder not in (args.decoders or DECODERS) or not lengths:
                continue
            models_dir = output_dir / name / "models"
            if decoder == "oracle":
                model = enable_diffusion_generation(language.oracle_model(), tokenizer)
                measured = [("oracle", "exact oracle", model, None, preset.max_steps_per_token, sizes, None)]
            else:
                size = ResearchTraining(**{**preset.training, **({"train_steps": args.train_steps} if
                                                                  args.train_steps else {})})  # fmt: skip
                model, autoregressive = train_research_models(language, list(all_lengths), models_dir, size)
                measured = [("trained", "trained MDM", model, autoregressive, preset.trained_max_steps_per_token, None,
                             training_facts(models_dir, ("mdm", "autoregressive")))]  # fmt: skip
                integers = [b for b in sizes or () if b != ONE_BLOCK]
                block_models = train_block_models(language, list(all_lengths), models_dir, size, integers) if (
                    integers) else {}  # fmt: skip
                for b, block_model in block_models.items():
                    measured.append((f"trained-block{b}", f"trained block-diffusion MDM (block size {b})", block_model,
                                     None, preset.trained_max_steps_per_token, None,
                                     training_facts(models_dir, (f"mdm-block{b}",))))  # fmt: skip
            for folder_name, words, model, autoregressive, steps_per_token, axis, training in measured:
                folder = output_dir / name / folder_name
                folder.mkdir(parents=True, exist_ok=True)
                model, autoregressive = model.to(args.device), autoregressive and autoregressive.to(args.device)
                probes, sweep, fits = measure(
                    model, tokenizer, task, lengths, preset, args, folder, steps_per_token, autoregressive, axis
                )
                if state.is_main_process:
                    title = f"{described}: {words}"
                    table = write_results(folder, title, probes, sweep, fits, model, preset.ter_strategy, training)
                    summary.append(f"## {title}\n\n{table}\n")
                    print(f"\n## {title}\n\n{table}\n", flush=True)
    if state.is_main_process:
        (output_dir / "summary.md").write_text("\n".join(summary))
        print(f"Wrote {output_dir}/summary.md and, per language and decoder, results.md, plots and cards.")
