"""Progress bars on long work (initial collection, training steps, evaluation), shown only when
the output is a terminal: logs and CI output stay free of them."""

import sys
from typing import TextIO

from tqdm import tqdm


def progress_bar(total: int, desc: str, file: TextIO | None = None) -> tqdm:
    """A transient bar of `total` units on `file` (stderr), disabled unless it is a terminal."""
    stream = sys.stderr if file is None else file
    return tqdm(
        total=total,
        desc=desc,
        file=stream,
        disable=not stream.isatty(),
        leave=False,
        dynamic_ncols=True,
    )
