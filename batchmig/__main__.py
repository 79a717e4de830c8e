"""``python -m batchmig`` runs the CLI (handy when the script directory is not on PATH)."""

from batchmig.cli import main

main()
