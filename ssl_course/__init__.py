"""ssl_course: a small, tested PyTorch library behind the contrastive and semi-supervised learning course.

Sub-packages: ``config``, ``data``, ``models``, ``losses``, ``methods``, ``train``, ``evaluate``,
``viz``, ``exercises``. See ``docs/ARCHITECTURE.md`` for how they fit together.
"""
__version__ = "0.1.0"
