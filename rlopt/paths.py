"""Where the Hydra config tree lives.

`conf/` sits at the repository root (the design card's layout). A wheel ships a copy at
`rlopt/conf`; a source checkout or editable install reads the root one directly.
"""

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def conf_dir() -> str:
    for candidate in (_PACKAGE / "conf", _PACKAGE.parent / "conf"):
        if (candidate / "train.yaml").is_file():
            return str(candidate)
    raise FileNotFoundError(f"rlopt's config tree is missing: looked in {_PACKAGE / 'conf'} and {_PACKAGE.parent / 'conf'}")
