"""Where ``Execution`` was before the engines moved below training and the pipeline (``gallery_core.engine``).

Kept only for ``training/loop.py``, which imports it from here; import ``gallery_core.engine.execution``.
"""

from gallery_core.engine.execution import ENGINES, Execution

__all__ = ["ENGINES", "Execution"]
