"""`python -m rlopt ...` is the same as `rlopt ...`."""

from rlopt.cli import main

if __name__ == "__main__":
    main()
