"""lcchat: a terminal chat client for local GGUF models.

Importing this package must stay cheap: `lcchat --help` is timed in benchmarks/.
"""

__version__ = "0.1.0"
