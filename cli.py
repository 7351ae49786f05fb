"""Run melody from a checkout without installing it: ``python cli.py --help``."""

from melody.cli import main

if __name__ == "__main__":
    main()
