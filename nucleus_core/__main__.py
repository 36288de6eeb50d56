"""``python -m nucleus_core``: the ``nucleus`` command line."""

from .cli import main

if __name__ == "__main__":
    main()
