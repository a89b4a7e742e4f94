"""The multi-task training loop (``loop``) and what it draws on: the data it iterates (``data``), the
fine-tuning controls (``finetune``), the visual-search objectives (``objectives``, ``triplets``,
``augment``)."""
