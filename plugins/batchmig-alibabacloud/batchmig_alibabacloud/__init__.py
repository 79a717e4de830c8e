"""Alibabacloud provider for batchmig (``alibabacloud``), with its sandbox emulator."""

from __future__ import annotations

__version__ = "0.1.0"
