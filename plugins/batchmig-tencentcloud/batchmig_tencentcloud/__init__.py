"""batchmig providers for Tencent Cloud: ``tencent-sqlserver`` and ``tencent-dts``.

The plugin is loaded by batchmig through the ``batchmig`` entry-point group
(``batchmig_tencentcloud.plugin``); it imports only batchmig's public API. Its
modules: ``signing`` (TC3-HMAC-SHA256), ``connection`` (the API 3.0 client),
``codes`` (error classification), ``sqlserver`` and ``dts`` (the providers) and
``emulator`` (the sandbox's Tencent endpoints).
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
