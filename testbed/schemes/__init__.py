"""Key-management schemes, each registered by name (see `base.py` for the hooks).

Every module of this package registers its schemes with `register(...)` when imported; `base.create`, `names` and
`info` import them all on first use (not at package import, so the node can import `base` without a cycle):
adding a scheme is adding a file.
"""

from .base import Scheme, create, info, names, register  # noqa: F401
