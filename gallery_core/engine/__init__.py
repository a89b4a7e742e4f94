"""How the network runs over photos, below both training and the pipeline.

``execution`` (which engine, what chunking), ``features`` (the model on cached frozen-trunk features), the Ray
engine (``ray_engine``), a frozen module on the CPU through ONNX Runtime (``cpu_runtime``) and JPEGs decoded in
batches on the model's device (``device_decode``). Training and the pipeline's steps import from here; nothing
here imports them, so the layout keeps its direction (``tests/test_import_cycles.py``).
"""
