"""`python -m fewshotv2v ...` (also `torchrun -m fewshotv2v train ...`)."""

from fewshotv2v.cli import main

if __name__ == "__main__":
    main()
