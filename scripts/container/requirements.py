"""Print the project's requirements (core + the extras named) one a line, for the image.

The Containerfile installs these before it copies the source, so a code change does not
reinstall every dependency. Only the standard library: it runs before anything is installed.

    python3 scripts/container/requirements.py pyproject.toml llamacpp ui bots
"""

import sys
import tomllib


def main(argv: list[str]) -> int:
    """Print the requirement lines of pyproject ``argv[0]`` with the extras ``argv[1:]``."""
    with open(argv[0], "rb") as handle:
        project = tomllib.load(handle)["project"]
    lines = list(project["dependencies"])
    for extra in argv[1:]:
        lines += project["optional-dependencies"][extra]
    print("\n".join(dict.fromkeys(lines)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
