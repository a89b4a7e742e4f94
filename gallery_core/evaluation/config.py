"""Settings of ``evaluate``: dataclasses, validated, recorded in ``report.json``.

Light on purpose (no torch): the CLI builds its parser from these defaults without loading models, and
checks ``skip`` against the sections' names (``registry.section_names``) without importing them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from gallery_core.errors import ConfigError
from gallery_core.evaluation.registry import section_names

MTL_WEIGHTINGS: tuple[str, ...] = ("pseudo_uniform", "uncertainty")  # the two the paper compares
# Measured on the demo (2-core CPU, quiet): ~34 s an epoch per model (the demo run's trunk cache is
# shared), 8 models in the quality section and 5 end-to-end ones in the hold-out; at 5 epochs the whole
# evaluation came to ~32 min, over its 30-minute target, hence 4.
DEFAULT_MAX_EPOCHS = 4


@dataclass
class ProbeConfig:
    """The shallow probe on frozen features: the paper's 2-layer head, trained with early stopping."""

    hidden: int | None = None  # None = the run's head_hidden: the same head as the MTL model's
    lr: float = 1e-3
    batch_size: int = 64
    max_epochs: int = 200
    patience: int = 20
    val_fraction: float = 0.1
    weight_decay: float = 1e-4

    def validate(self) -> ProbeConfig:
        checks = [(self.hidden is None or self.hidden >= 1, "hidden must be >= 1"), (self.lr > 0, "lr must be > 0"),
                  (self.batch_size >= 1, "batch_size must be >= 1"), (self.max_epochs >= 1, "max_epochs must be >= 1"),
                  (self.patience >= 1, "patience must be >= 1"),
                  (0 < self.val_fraction < 1, "val_fraction must be in (0, 1)"),
                  (self.weight_decay >= 0, "weight_decay must be >= 0")]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"probe: {message}")
        return self


@dataclass
class EvaluationConfig:
    # Hold-out task (the paper's Table 2): fractions of the labelled training listings.
    fractions: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8, 1.0)
    holdout_column: str | None = None  # default: the run's first hold-out column
    # Leave tasks out (sections/transfer.py): training tasks held out of training, the MTL model
    # retrained without them once per seed, every held-out task probed at ``fractions``.
    transfer_tasks: tuple[str, ...] | None = None  # None = the rule (transfer.RULE): a spread of kinds
    transfer_binary: int = 2  # binary tasks the rule holds out
    transfer_seeds: tuple[int, ...] = (0, 1, 2)
    # The end-to-end model trains once per held-out task, fraction and seed: the costliest part, hence
    # two fractions (the budget: 20% and 100%); () = none.
    transfer_end_to_end_fractions: tuple[float, ...] = (0.2, 1.0)
    # Task folds (sections/task_folds.py): the training tasks dealt into ``transfer_folds`` folds by a fixed rule
    # (task_folds.FOLD_RULE, seed ``fold_seed``), one model retrained without each fold per seed in
    # ``transfer_seeds``; every training task and the hold-out column probed from a model that never saw it, with
    # each probe in ``fold_probes``, at ``fold_fractions`` of its labels. 0 folds = skip. 5 folds of the demo's 21
    # tasks hold 4-5 out at a time, close to the single-set mode's 4 (+ the hold-out column).
    transfer_folds: int = 5
    fold_seed: int = 0
    fold_fractions: tuple[float, ...] = (0.2, 1.0)
    fold_probes: tuple[str, ...] = ("mlp", "linear")
    # Per-task quality (Figures 5 and 6): which tasks get a single-task model. None = a default spread:
    # ``n_single_task`` binary tasks evenly over class balance, plus one multiclass and one regression task.
    single_task_tasks: tuple[str, ...] | None = None
    n_single_task: int = 4  # + 1 multiclass + 1 regression: 6 single-task models
    # Epoch budget of every model evaluate trains (end-to-end, single-task, MTL with each weighting); None =
    # the run's own max_epochs, at most DEFAULT_MAX_EPOCHS (evaluate trains 13 models by default). Early
    # stopping (the run's patience) may end each sooner.
    epochs: int | None = None
    # Retrieval.
    completion_queries: int = 0  # listings queried in gallery completion; 0 = every listing with >= 2 photos
    precision_k: int = 10
    ann_queries: int = 500
    # Robustness (the reseller paper): validation listings queried with corrupted photos; 0 = skip.
    robustness_queries: int = 200
    # Objective ablation: the results of benchmarks/ablation_visual_search.py; None = <report dir>/
    # visual_search_ablation.json (where the script writes them for the run it was given).
    ablation_path: str | None = None
    # Audit: k of precision / recall at k.
    audit_ks: tuple[int, ...] = (10, 25, 50, 100)
    truth_dir: str | None = None  # default: <catalogue>/truth
    skip: tuple[str, ...] = ()
    # True: the sections run (those not in ``skip``) replace theirs in the report already in the report folder (of
    # the same model and catalogue, checked), which keeps its others; False: a new report.
    update: bool = False
    seed: int = 0
    probe: ProbeConfig = field(default_factory=ProbeConfig)

    def validate(self) -> EvaluationConfig:
        if not self.fractions:
            raise ConfigError("fractions: give at least one")
        if any(not 0 < f <= 1 for f in self.fractions):
            raise ConfigError(f"fractions must be in (0, 1], got {list(self.fractions)}")
        if len(set(self.fractions)) != len(self.fractions):
            raise ConfigError(f"fractions must be distinct, got {list(self.fractions)}")
        if not self.transfer_seeds or len(set(self.transfer_seeds)) != len(self.transfer_seeds):
            raise ConfigError(f"transfer_seeds must be distinct and at least one, got {list(self.transfer_seeds)}")
        if self.transfer_binary < 0:
            raise ConfigError(f"transfer_binary must be >= 0, got {self.transfer_binary}")
        if any(not 0 < f <= 1 for f in self.transfer_end_to_end_fractions):
            raise ConfigError(f"transfer_end_to_end_fractions must be in (0, 1], got "
                             f"{list(self.transfer_end_to_end_fractions)}")
        if self.transfer_folds < 0 or self.transfer_folds == 1:
            raise ConfigError(f"transfer_folds must be 0 (skip) or >= 2, got {self.transfer_folds}")
        if not self.fold_fractions or any(not 0 < f <= 1 for f in self.fold_fractions):
            raise ConfigError(f"fold_fractions must be in (0, 1], got {list(self.fold_fractions)}")
        if not self.fold_probes or set(self.fold_probes) - {"mlp", "linear"}:
            raise ConfigError(f"fold_probes must be among mlp, linear; got {list(self.fold_probes)}")
        if self.n_single_task < 0:
            raise ConfigError(f"n_single_task must be >= 0, got {self.n_single_task}")
        if self.epochs is not None and self.epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {self.epochs}")
        if self.completion_queries < 0:
            raise ConfigError(f"completion_queries must be >= 0, got {self.completion_queries}")
        if self.precision_k < 1:
            raise ConfigError(f"precision_k must be >= 1, got {self.precision_k}")
        if self.robustness_queries < 0:
            raise ConfigError(f"robustness_queries must be >= 0, got {self.robustness_queries}")
        if self.ann_queries < 1:
            raise ConfigError(f"ann_queries must be >= 1, got {self.ann_queries}")
        if not self.audit_ks or any(k < 1 for k in self.audit_ks):
            raise ConfigError(f"audit_ks must be >= 1, got {list(self.audit_ks)}")
        unknown = sorted(set(self.skip) - set(section_names()))
        if unknown:
            raise ConfigError(f"unknown sections to skip {unknown}; the sections are {list(section_names())}")
        self.probe.validate()
        return self

    def epoch_budget(self, run_max_epochs: int) -> int:
        """The epochs every model evaluate trains may run."""
        return self.epochs if self.epochs is not None else min(run_max_epochs, DEFAULT_MAX_EPOCHS)

    def to_dict(self) -> dict:
        return asdict(self)
